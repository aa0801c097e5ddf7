// Argument parsing shared by the CLIs: node's parseArgs in strict mode (unknown flags are
// usage errors, exit 2), and opening the store named by --file / --etcd / CELLGATE_ETCD.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { cgError } from '../errors';
import { openStore } from '../store/open';
import type { TableStore } from '../store/types';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Flags every cellctl command understands. */
export const COMMON_OPTIONS = {
  file: { type: 'string' },
  etcd: { type: 'string' },
  prefix: { type: 'string' },
  json: { type: 'boolean' },
  yes: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export interface Parsed {
  readonly values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  readonly positionals: string[];
}

export function parseCommandArgs(argv: readonly string[], options: OptionSpec): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: { ...COMMON_OPTIONS, ...options }, strict: true, allowPositionals: true });
    return { values: values as Parsed['values'], positionals };
  } catch (err) {
    throw cgError('USAGE', (err as Error).message);
  }
}

export function stringOption(values: Parsed['values'], name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** The store the flags point at: --file PATH, or --etcd HOST:PORT[,…] (env CELLGATE_ETCD) with --prefix. */
export function storeFromFlags(values: Parsed['values'], env: NodeJS.ProcessEnv = process.env): TableStore {
  const file = stringOption(values, 'file');
  const etcd = stringOption(values, 'etcd') ?? env.CELLGATE_ETCD;
  const prefix = stringOption(values, 'prefix') ?? '/cellgate';
  if (file && stringOption(values, 'etcd')) throw cgError('USAGE', 'give either --file or --etcd, not both');
  if (file) return openStore(`file:${file}`, { prefix });
  if (etcd) return openStore(`etcd:${etcd}`, { prefix });
  throw cgError('USAGE', 'no store: give --file PATH or --etcd HOST:PORT (or set CELLGATE_ETCD)');
}
