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
  return canonical(value, { deep: true });
}

/**
 * The canonical text of `value`; clears `within.deep` unless `value` is frozen all the way
 * down (only such values are remembered). Primitives cost no allocation: a version's changed
 * cells are a few hundred of them, on every gateway, on every version.
 */
function canonical(value: unknown, within: { deep: boolean }): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  const known = canonicalOfFrozen.get(value);
  if (known !== undefined) return known;
  const mine = { deep: Object.isFrozen(value) };
  let text: string;
  if (Array.isArray(value)) {
    text = '[';
    for (let i = 0; i < value.length; i++) text += (i === 0 ? '' : ',') + canonical(value[i], mine);
    text += ']';
  } else {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).sort();
    text = '{';
    let first = true;
    for (const k of keys) {
      const v = obj[k];
      if (v === undefined) continue;
      text += `${first ? '' : ','}${JSON.stringify(k)}:${canonical(v, mine)}`;
      first = false;
    }
    text += '}';
  }
  if (mine.deep) canonicalOfFrozen.set(value, text);
  else within.deep = false;
  return text;
}

/** `sha256:` + the first 32 hex digits (128 bits) of the canonical JSON's SHA-256. */
export function tableChecksum(table: RoutingTable): string {
  return 'sha256:' + createHash('sha256').update(canonicalJson(table)).digest('hex').slice(0, 32);
}
