// The gateway's configuration: one schema (config/schema.ts) with defaults and units in the
// names, validated once before anything listens, then frozen. Sources, lowest first:
// defaults < file < CELLGATE_* environment < command-line flags. Every problem is reported
// with the path of its key, all of them in one INVALID_CONFIG, so a bad configuration stops
// `cellgate serve` (or `serve --check`) before it starts.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { extname } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { Problems, deepFreeze, describe, isRecord } from '../cells/check';
import { cgError } from '../errors';
import { applyEnv, envKeys } from './config/env';
import { closest, schemaProblems } from './config/problems';
import { CROSS_FIELD_RULES } from './config/rules';
import { GatewayConfigSchema, type GatewayConfig } from './config/schema';

export type {
  BufferConfig, EtcdConfig, FreezeConfig, GatewayConfig, LogLevel, RouteRule, ServerConfig, TlsConfig, UpstreamConfig, UserIdSource,
} from './config/schema';
export { GatewayConfigSchema } from './config/schema';

/** Top-level keys a flag may set (a record is merged into the file's, key by key). */
export type ConfigOverrides = Partial<Record<keyof GatewayConfig, unknown>>;

export interface ConfigSources {
  /** CELLGATE_* variables are read from here (cellgate passes process.env; none by default). */
  readonly env?: NodeJS.ProcessEnv;
}

const ENV_KEYS = envKeys(GatewayConfigSchema);

/** Every default, as the schema gives them (`id` is HOSTNAME-PID, made per process). */
export const DEFAULT_CONFIG: Omit<GatewayConfig, 'id'> = deepFreeze(Value.Default(GatewayConfigSchema, {}) as Omit<GatewayConfig, 'id'>);

/**
 * Validates a configuration document (as read from YAML/JSON) with the environment's and the
 * flags' values on top. Returns a deep-frozen config or throws INVALID_CONFIG listing every problem.
 */
export function parseGatewayConfig(doc: unknown, overrides: ConfigOverrides = {}, sources: ConfigSources = {}): GatewayConfig {
  const p = new Problems();
  if (doc !== undefined && doc !== null && !isRecord(doc)) {
    p.add('', `must be an object, got ${describe(doc)}`);
    throw invalid(p, new Map());
  }
  const input = structuredClone((doc ?? {}) as Record<string, unknown>);
  const origins = new Map<string, string>();
  if (sources.env) applyEnv(input, sources.env, ENV_KEYS, p, origins);
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    input[key] = isRecord(value) && isRecord(input[key]) ? { ...input[key], ...value } : value;
    origins.delete(key);
  }
  input.id ??= `${hostname()}-${process.pid}`;
  const graceGiven = isRecord(input.freeze) && input.freeze.inflightGraceMs !== undefined;
  const config = Value.Default(GatewayConfigSchema, input) as Record<string, unknown>;
  schemaProblems(p, GatewayConfigSchema, config);
  for (const rule of CROSS_FIELD_RULES) rule.check(config, p, { graceGiven });
  if (!p.empty) throw invalid(p, origins);
  return deepFreeze(normalized(config as unknown as GatewayConfig, graceGiven));
}

/** Reads a YAML or JSON configuration file (by extension; YAML otherwise) and validates it. */
export async function loadGatewayConfigFile(path: string, overrides?: ConfigOverrides, sources?: ConfigSources): Promise<GatewayConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw cgError('INVALID_CONFIG', `cannot read gateway config ${path}: ${(err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw cgError('INVALID_CONFIG', `gateway config ${path} does not parse: ${(err as Error).message}`, { cause: err });
  }
  return parseGatewayConfig(doc, overrides, sources);
}

/** What the schema cannot say: header names match lower-cased; an unset grace fits the window. */
function normalized(c: GatewayConfig, graceGiven: boolean): GatewayConfig {
  const sources = c.userId.sources.map((s) => ('header' in s ? { header: s.header.toLowerCase() } : s));
  const inflightGraceMs = graceGiven ? c.freeze.inflightGraceMs : Math.min(c.freeze.inflightGraceMs, Math.floor(c.buffer.windowMs / 2));
  // snapshotPath null is an older spelling of false (fail-static off).
  return { ...c, userId: { sources }, freeze: { inflightGraceMs }, snapshotPath: c.snapshotPath ?? false };
}

function invalid(p: Problems, origins: ReadonlyMap<string, string>): Error {
  // A value that came from the environment is named with its variable.
  const list = p.list.map((problem) => {
    const origin = [...origins].find(([path]) => problem.path === path || problem.path.startsWith(`${path}.`) || problem.path.startsWith(`${path}[`));
    return origin ? { path: `${problem.path} (${origin[1]})`, message: problem.message } : problem;
  });
  const summary = list.map((x) => `${x.path}: ${x.message}`).join('; ');
  return cgError('INVALID_CONFIG', `invalid gateway configuration: ${summary}`, { detail: list });
}

/** CELLGATE_* variables that are not about the gateway configuration but read elsewhere. */
const OTHER_VARIABLES = new Set(['CELLGATE_ETCD', 'CELLGATE_WORKER_INDEX']);

/** CELLGATE_* variables that set nothing (a typo is silently ignored otherwise), each with the nearest known one. */
export function unknownVariables(env: NodeJS.ProcessEnv): string[] {
  const known = ENV_KEYS.map((k) => k.name);
  return Object.keys(env)
    .filter((name) => name.startsWith('CELLGATE_') && !known.includes(name) && !OTHER_VARIABLES.has(name))
    .sort()
    .map((name) => {
      const guess = closest(name, known);
      return guess ? `${name} is not a configuration variable (did you mean ${guess}?)` : `${name} is not a configuration variable`;
    });
}

/** The config with every secret key replaced by "<redacted>" (for printing). */
export function redactedConfig(config: GatewayConfig): unknown {
  type Node = { properties?: Record<string, unknown>; anyOf?: Node[]; secret?: boolean };
  const walk = (node: Node, value: unknown): unknown => {
    if (node.secret === true) return value === null ? null : '<redacted>';
    // A section that may be null (tls, etcd) is a union: its object branch names the secrets.
    const schema = node.anyOf?.find((b) => b.properties) ?? node;
    if (!schema.properties || !isRecord(value)) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, schema.properties?.[k] ? walk(schema.properties[k] as never, v) : v]));
  };
  return walk(GatewayConfigSchema as never, config);
}
