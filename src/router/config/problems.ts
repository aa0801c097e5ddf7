// Schema problems in cellgate's words: every one with the path of its key ("upstream.ejectMaxMs",
// "userId.sources[3].smell"), a message that says what is expected and what was found, and
// "did you mean" for an unknown key close to a known one. TypeBox finds the problems; this
// file only names them.
import type { TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { type Problems, closest, describe, isRecord, join } from '../../cells/check';

export { closest };

type Schema = TSchema & {
  readonly type?: string;
  readonly anyOf?: readonly Schema[];
  readonly const?: unknown;
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly items?: Schema;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly pattern?: string;
  readonly expect?: string;
  readonly secret?: boolean;
};

/** Adds to `p` every way `value` fails `schema`, under `base` (the path of `value`). */
export function schemaProblems(p: Problems, schema: TSchema, value: unknown, base = ''): void {
  const reported: string[] = [];
  for (const e of Value.Errors(schema, value)) {
    const path = pointerToPath(base, e.path);
    // One problem per key: a value failing two constraints, or a key under one already named, once.
    if (reported.some((r) => path === r || path.startsWith(`${r}.`) || path.startsWith(`${r}[`))) continue;
    reported.push(path);
    if (e.type === ValueErrorType.ObjectAdditionalProperties) {
      const key = lastKey(e.path);
      p.add(path, unknownKey(key, Object.keys((e.schema as Schema).properties ?? {})));
    } else {
      explain(p, e.schema as Schema, e.value, path);
    }
  }
}

/** The problem of one value against the schema it failed. */
function explain(p: Problems, schema: Schema, value: unknown, path: string): void {
  if (value === undefined) return p.add(path, 'is required');
  if (schema.anyOf) return explainUnion(p, schema, value, path);
  p.add(path, mismatch(schema, value));
}

function explainUnion(p: Problems, schema: Schema, value: unknown, path: string): void {
  const branches = schema.anyOf as readonly Schema[];
  const literals = branches.filter((b) => b.const !== undefined).map((b) => String(b.const));
  if (literals.length === branches.length) return p.add(path, `must be one of ${literals.join(', ')}, got ${describe(value)}`);
  const others = branches.filter((b) => b.type !== 'null');
  const nullable = others.length < branches.length;
  // A value of the one non-null kind: its own problems (e.g. tls.key missing).
  if (nullable && others.length === 1 && value !== null) {
    if (others[0]!.type === 'object' && isRecord(value)) return schemaProblems(p, others[0]!, value, path);
    return p.add(path, schema.expect ?? `${mismatch(others[0]!, value)}, or null`);
  }
  // A union of one-key objects ({header: …} | {cookie: …}): the branch the key names, or the unknown key.
  if (isRecord(value) && others.every((b) => b.type === 'object')) {
    const keys = Object.keys(value);
    const branch = others.find((b) => keys.length > 0 && keys.every((k) => k in (b.properties ?? {})));
    if (branch && keys.length === 1) return schemaProblems(p, branch, value, path);
    const known = others.flatMap((b) => Object.keys(b.properties ?? {}));
    if (keys.length === 1) return p.add(join(path, keys[0]!), `${unknownKey(keys[0]!, known)} (expected ${known.join(', ')})`);
  }
  p.add(path, schema.expect ?? `must be one of its allowed forms, got ${describe(value)}`);
}

/** What a value of the wrong type or out of range is told. */
function mismatch(schema: Schema, value: unknown): string {
  // A secret's value is never echoed, not even in an error.
  if (schema.secret) return schema.expect ?? 'has the wrong type or form (its value is not shown)';
  switch (schema.type) {
    case 'integer':
      return `must be an integer in [${schema.minimum ?? '-∞'}, ${schema.maximum ?? '∞'}], got ${describe(value)}`;
    case 'boolean':
      return `must be true or false, got ${describe(value)}`;
    case 'string':
      if (typeof value !== 'string' || value === '') return `must be a non-empty string, got ${describe(value)}`;
      if (schema.expect) return schema.expect;
      if (schema.pattern && !new RegExp(schema.pattern).test(value)) return `${JSON.stringify(value)} must match /${schema.pattern}/`;
      return `must be at least ${schema.minLength ?? 1} characters long`;
    case 'array':
      return schema.expect ?? `must be a list, got ${describe(value)}`;
    case 'object':
      return `must be an object, got ${describe(value)}`;
    case 'null':
      return `must be null, got ${describe(value)}`;
    default:
      return schema.expect ?? `is not valid: got ${describe(value)}`;
  }
}

export function unknownKey(key: string, known: readonly string[]): string {
  const guess = closest(key, known);
  return guess ? `unknown key (did you mean ${guess}?)` : 'unknown key';
}

/** "/userId/sources/3/smell" under "" → "userId.sources[3].smell". */
function pointerToPath(base: string, pointer: string): string {
  let path = base;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    path = join(path, /^\d+$/.test(seg) ? Number(seg) : seg);
  }
  return path;
}

function lastKey(pointer: string): string {
  return (pointer.split('/').pop() ?? '').replace(/~1/g, '/').replace(/~0/g, '~');
}
