// Argument parsing shared by the CLIs: node's parseArgs in strict mode (an unknown flag is a
// usage error, exit 2, with the nearest known flag suggested), and opening the store named
// by --file / --etcd (env CELLGATE_ETCD) with etcd's TLS and user flags (env CELLGATE_ETCD_*).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { cgError } from '../errors';
import type { TableEncoding } from '../store/table-encoding';
import type { EtcdSecurity } from '../store/etcd-security';
import { openStore } from '../store/open';
import type { TableStore } from '../store/types';
import { closest } from './flags';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** How etcd is reached securely: on every command that opens a store (cellctl and cellgate). */
export const ETCD_SECURITY_OPTIONS = {
  'etcd-cacert': { type: 'string' },
  'etcd-cert': { type: 'string' },
  'etcd-key': { type: 'string' },
  'etcd-user': { type: 'string' },
} as const satisfies OptionSpec;

/** cellctl's store flags. */
export const STORE_OPTIONS = {
  file: { type: 'string' },
  etcd: { type: 'string' },
  prefix: { type: 'string' },
  ...ETCD_SECURITY_OPTIONS,
} as const satisfies OptionSpec;

/** Flags of both binaries. */
export const PROGRAM_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const satisfies OptionSpec;

/** Flags every cellctl command understands, before or after the command words. */
export const COMMON_OPTIONS = {
  ...STORE_OPTIONS,
  json: { type: 'boolean' },
  yes: { type: 'boolean' },
  ...PROGRAM_OPTIONS,
} as const satisfies OptionSpec;

export interface Parsed {
  readonly values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  readonly positionals: string[];
}

/**
 * Strict parse of `argv` against `options` plus COMMON_OPTIONS. `where` names the command
 * in messages ("cellctl zone down"), so that a typo gets one line: what is wrong, the
 * nearest flag, and where the help is.
 */
export function parseCommandArgs(argv: readonly string[], options: OptionSpec, where = '', common: OptionSpec = COMMON_OPTIONS): Parsed {
  const all = { ...common, ...options };
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: all, strict: true, allowPositionals: true });
    return { values: values as Parsed['values'], positionals };
  } catch (err) {
    throw cgError('USAGE', usageMessage(err as Error & { code?: string }, Object.keys(all), where));
  }
}

function usageMessage(err: Error & { code?: string }, known: readonly string[], where: string): string {
  const help = where ? ` (see ${where} --help)` : '';
  const flag = /'(-[^'\s]+)/.exec(err.message)?.[1] ?? '';
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const name = flag.replace(/^-+/, '').replace(/=.*$/, '');
      const near = closest(name, known);
      return `unknown flag ${flag}${near ? `: did you mean --${near}?` : ''}${help}`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /argument missing/.test(err.message) ? `${flag} needs a value${help}` : `${flag} takes no value${help}`;
    default:
      return `${err.message}${help}`;
  }
}

export function stringOption(values: Parsed['values'], name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

const nonEmpty = (s: string | undefined): string | undefined => (s === undefined || s === '' ? undefined : s);

/**
 * etcd TLS files and user from the flags, else the environment (CELLGATE_ETCD_CACERT,
 * _CERT, _KEY, _USER, _PASSWORD), else `fallback` (the gateway config's etcd block).
 * `--etcd-user NAME:PASSWORD` carries its password; otherwise it comes from
 * CELLGATE_ETCD_PASSWORD (which keeps it out of `ps`).
 */
export function etcdSecurityFromFlags(values: Parsed['values'], env: NodeJS.ProcessEnv = process.env, fallback: EtcdSecurity = {}): EtcdSecurity {
  const pick = (flag: string, envName: string, configured: string | undefined) =>
    nonEmpty(stringOption(values, flag)) ?? nonEmpty(env[envName]) ?? configured;
  const userSpec = pick('etcd-user', 'CELLGATE_ETCD_USER', fallback.user);
  const colon = userSpec?.indexOf(':') ?? -1;
  const user = userSpec !== undefined && colon >= 0 ? userSpec.slice(0, colon) : userSpec;
  const inlinePassword = userSpec !== undefined && colon >= 0 ? userSpec.slice(colon + 1) : undefined;
  const password = inlinePassword ?? nonEmpty(env.CELLGATE_ETCD_PASSWORD) ?? fallback.password;
  const security: EtcdSecurity = {
    cacert: pick('etcd-cacert', 'CELLGATE_ETCD_CACERT', fallback.cacert),
    cert: pick('etcd-cert', 'CELLGATE_ETCD_CERT', fallback.cert),
    key: pick('etcd-key', 'CELLGATE_ETCD_KEY', fallback.key),
    user,
    password,
  };
  return Object.fromEntries(Object.entries(security).filter(([, v]) => v !== undefined)) as EtcdSecurity;
}

const SECURITY_FLAGS = Object.keys(ETCD_SECURITY_OPTIONS);

/** The store the flags point at: --file PATH, or --etcd HOST:PORT[,…] (env CELLGATE_ETCD) with --prefix and the etcd security flags. */
export function storeFromFlags(values: Parsed['values'], env: NodeJS.ProcessEnv = process.env): TableStore {
  const file = stringOption(values, 'file');
  const etcd = stringOption(values, 'etcd') ?? nonEmpty(env.CELLGATE_ETCD);
  const prefix = stringOption(values, 'prefix') ?? '/cellgate';
  if (file && stringOption(values, 'etcd')) throw cgError('USAGE', 'give either --file or --etcd, not both');
  if (file) {
    const stray = SECURITY_FLAGS.find((f) => values[f] !== undefined);
    if (stray) throw cgError('USAGE', `--${stray} applies to an etcd store, not --file`);
    return openStore(`file:${file}`, { prefix });
  }
  if (etcd) return openStore(`etcd:${etcd}`, { prefix, etcd: { security: etcdSecurityFromFlags(values, env), tableEncoding: tableEncodingFromEnv(env) } });
  throw cgError('USAGE', 'no store: give --file PATH or --etcd HOST:PORT (or set CELLGATE_ETCD)');
}

/**
 * A number as an operator writes it in decimal ("30", "0.25", "-1"), or NaN: JavaScript's
 * Number() would also take "1e3", "0x50", " 7 " and "" (= 0), none of which an operator means.
 */
export function decimal(raw: string): number {
  return /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
}

/**
 * How etcd stores write the table: CELLGATE_ETCD_TABLE_ENCODING=deflate compresses it
 * (src/store/table-encoding.ts) once every gateway of the fleet reads that; json (the default) otherwise.
 */
export function tableEncodingFromEnv(env: NodeJS.ProcessEnv): TableEncoding | undefined {
  const raw = env.CELLGATE_ETCD_TABLE_ENCODING;
  if (raw === undefined || raw === '') return undefined;
  if (raw !== 'json' && raw !== 'deflate') throw cgError('USAGE', `CELLGATE_ETCD_TABLE_ENCODING must be json or deflate, got "${raw}"`);
  return raw;
}

/** An integer flag in [min, max], or undefined when not given. */
export function intFlag(values: Parsed['values'], name: string, min: number, max: number): number | undefined {
  const raw = stringOption(values, name);
  if (raw === undefined) return undefined;
  const n = decimal(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw cgError('USAGE', `--${name} must be an integer in [${min}, ${max}], got "${raw}"`);
  return n;
}

export const NO_STORE = 'no store: give --store file:PATH or --store etcd:HOST:PORT (or `store:` / `etcd.endpoints` in the config, or set CELLGATE_STORE)';

/** Opens `spec` (cellgate --store) with etcd's TLS files and user from the flags, CELLGATE_ETCD_*, or the config's etcd block. */
export function openWithSecurity(spec: string, prefix: string | undefined, values: Parsed['values'], config: EtcdSecurity = {}): TableStore {
  if (spec.startsWith('file:')) {
    const stray = SECURITY_FLAGS.find((f) => values[f] !== undefined);
    if (stray) throw cgError('USAGE', `--${stray} applies to an etcd store, not ${spec}`);
    return openStore(spec, { prefix });
  }
  // cellgate's commands name etcd with --store: unreachable-etcd hints must say so.
  return openStore(spec, { prefix, etcd: { security: etcdSecurityFromFlags(values, process.env, config), tableEncoding: tableEncodingFromEnv(process.env), flagHint: '--store' } });
}
