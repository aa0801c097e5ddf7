// `--version` of both binaries: the package's version and the Node it runs on.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The package root (dist/src/cli -> ../../..). */
export const PACKAGE_ROOT = join(__dirname, '..', '..', '..');

export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function versionText(program: string): string {
  return `${program} ${packageVersion()} (node ${process.version})\n`;
}
