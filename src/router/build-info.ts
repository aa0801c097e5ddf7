// What cellgate_build_info reports: the version in cellgate's package.json (found by walking
// up from this file, so it works from src/ and from dist/) and the Node.js version.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface BuildInfo {
  readonly version: string;
  readonly node: string;
}

let cached: BuildInfo | null = null;

export function buildInfo(): BuildInfo {
  cached ??= { version: packageVersion(), node: process.version };
  return cached;
}

function packageVersion(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'cellgate' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no (readable) package.json here: look further up
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}
