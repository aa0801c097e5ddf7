// CELLGATE_<KEY> environment overrides, derived from the schema: a key's variable is its path
// in upper snake case under CELLGATE_ (port → CELLGATE_PORT, upstream.requestTimeoutMs →
// CELLGATE_UPSTREAM_REQUEST_TIMEOUT_MS, tls.cert → CELLGATE_TLS_CERT). Values are typed by the
// key's schema: integers and booleans (true/false/1/0) are converted, lists (routes,
// userId.sources) are JSON (a list of strings may also be "a,b,c"), a key of several kinds
// (e.g. a path or false) takes JSON and else the text, `null` sets a nullable key to null, an
// empty variable is unset.
// A value that does not fit is left as text, so the schema reports it with its key path.
import type { TSchema } from '@sinclair/typebox';
import { type Problems, isRecord } from '../../cells/check';

interface Node {
  readonly type?: string;
  readonly items?: Node;
  readonly anyOf?: readonly Node[];
  readonly properties?: Readonly<Record<string, Node>>;
}

export interface EnvKey {
  /** e.g. CELLGATE_UPSTREAM_REQUEST_TIMEOUT_MS */
  readonly name: string;
  /** e.g. ['upstream', 'requestTimeoutMs'] */
  readonly path: readonly string[];
  readonly kind: 'integer' | 'boolean' | 'string' | 'json';
  readonly nullable: boolean;
  /** A `json` key that also takes plain text (it has a string form): text that is not JSON is kept as it is. */
  readonly text: boolean;
  /** A list of strings: "a,b,c" is the list ["a", "b", "c"]. */
  readonly stringList: boolean;
}

/** Every settable key of the schema with its variable: each leaf, and the leaves of a nullable object (tls). */
export function envKeys(schema: TSchema): EnvKey[] {
  const out: EnvKey[] = [];
  const walk = (node: Node, path: string[]): void => {
    const branches = node.anyOf ?? [node];
    const nonNull = branches.filter((b) => b.type !== 'null');
    const nullable = nonNull.length < branches.length;
    if (nonNull.length === 1 && nonNull[0]!.type === 'object' && nonNull[0]!.properties) {
      for (const [key, child] of Object.entries(nonNull[0]!.properties)) walk(child, [...path, key]);
      return;
    }
    out.push({
      name: envName(path), path, kind: kindOf(nonNull), nullable,
      text: nonNull.some((b) => b.type === 'string'),
      stringList: nonNull.some((b) => b.type === 'array' && b.items?.type === 'string'),
    });
  };
  walk(schema as Node, []);
  return out;
}

export function envName(path: readonly string[]): string {
  return ['CELLGATE', ...path.map((k) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())].join('_');
}

function kindOf(branches: readonly Node[]): EnvKey['kind'] {
  const types = new Set(branches.map((b) => b.type ?? 'json'));
  if (types.size === 1 && types.has('integer')) return 'integer';
  if (types.size === 1 && types.has('boolean')) return 'boolean';
  if ([...types].every((t) => t === 'string')) return 'string';
  return 'json';
}

/**
 * Writes every CELLGATE_* variable of `keys` found in `env` into `doc` (the file's document,
 * a copy), recording for each path the variable it came from (named in problems).
 */
export function applyEnv(doc: Record<string, unknown>, env: NodeJS.ProcessEnv, keys: readonly EnvKey[], p: Problems, origins: Map<string, string>): void {
  for (const key of keys) {
    const raw = env[key.name];
    if (raw === undefined || raw === '') continue;
    const dotted = key.path.join('.');
    let value: unknown = raw;
    if (key.nullable && raw === 'null') value = null;
    else if (key.kind === 'integer' && /^[+-]?\d+$/.test(raw.trim())) value = Number(raw.trim());
    else if (key.kind === 'boolean') value = { true: true, '1': true, false: false, '0': false }[raw.trim().toLowerCase()] ?? raw;
    else if (key.kind === 'json') {
      try {
        value = JSON.parse(raw);
      } catch (err) {
        if (key.stringList && !raw.trim().startsWith('[')) value = raw.split(',').map((x) => x.trim()).filter(Boolean);
        else if (!key.text) {
          p.add(dotted, `${key.name} is not JSON: ${(err as Error).message}`);
          continue;
        }
      }
    }
    setPath(doc, key.path, value);
    origins.set(dotted, key.name);
  }
}

function setPath(doc: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let at = doc;
  for (const key of path.slice(0, -1)) {
    if (!isRecord(at[key])) at[key] = {};
    at = at[key] as Record<string, unknown>;
  }
  at[path[path.length - 1]!] = value;
}
