// A stable checksum of a routing table, so that gateways can prove they hold the same one.
// Stable = independent of key order and whitespace: the table is serialised canonically
// (object keys sorted, no spaces) before hashing. node:crypto is computation, not I/O.
//
// Validated tables are deep-frozen, and the next version of a table reuses the previous
// one's frozen objects for what did not change (table-decoder.ts), so the canonical text of
// a frozen object is remembered: checksumming a version costs the changed parts, the joins
// and the hash, not a re-serialisation of 10,000 unchanged cells.
import { createHash } from 'node:crypto';
import type { RoutingTable } from './types';

const canonicalOfFrozen = new WeakMap<object, string>();

export function canonicalJson(value: unknown): string {
  return canonical(value).text;
}

/** The canonical text, and whether `value` is frozen all the way down (only then is it remembered). */
function canonical(value: unknown): { text: string; deep: boolean } {
  if (value === null || typeof value !== 'object') return { text: JSON.stringify(value) ?? 'null', deep: true };
  const known = canonicalOfFrozen.get(value);
  if (known !== undefined) return { text: known, deep: true };
  let deep = Object.isFrozen(value);
  const part = (v: unknown): string => {
    const c = canonical(v);
    deep &&= c.deep;
    return c.text;
  };
  let text: string;
  if (Array.isArray(value)) text = `[${value.map(part).join(',')}]`;
  else {
    const obj = value as Record<string, unknown>;
    const entries = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${part(obj[k])}`);
    text = `{${entries.join(',')}}`;
  }
  if (deep) canonicalOfFrozen.set(value, text);
  return { text, deep };
}

/** `sha256:` + the first 32 hex digits (128 bits) of the canonical JSON's SHA-256. */
export function tableChecksum(table: RoutingTable): string {
  return 'sha256:' + createHash('sha256').update(canonicalJson(table)).digest('hex').slice(0, 32);
}
