// A stable checksum of a routing table, so that gateways can prove they hold the same one.
// Stable = independent of key order and whitespace: the table is serialised canonically
// (object keys sorted, no spaces) before hashing. node:crypto is computation, not I/O.
import { createHash } from 'node:crypto';
import type { RoutingTable } from './types';

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value as Record<string, unknown>)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}

/** `sha256:` + the first 32 hex digits (128 bits) of the canonical JSON's SHA-256. */
export function tableChecksum(table: RoutingTable): string {
  return 'sha256:' + createHash('sha256').update(canonicalJson(table)).digest('hex').slice(0, 32);
}
