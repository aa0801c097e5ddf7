// Turning stored bytes into a VersionedTable, the same way in both stores: a document that
// is not JSON or fails validateTable is INVALID_TABLE, and the error says which version
// it was (detail.version) so that an operator (or cellctl) can overwrite it by CAS.
import { validateTable, versioned, type DocumentHandling } from '../cells/table';
import type { TableDecoder } from '../cells/table-decoder';
import type { RoutingTable, VersionedTable } from '../cells/types';
import { cgError, type CellgateError } from '../errors';

/** `version` is null when it could not be read (a file that is not even an envelope). */
export function rejectedDocument(where: string, version: number | null, err: unknown): CellgateError {
  const cause = err as { message?: string; detail?: unknown };
  const at = version === null ? where : `${where} version ${version}`;
  return cgError('INVALID_TABLE', `${at}: ${cause.message ?? String(err)}`, {
    cause: err,
    detail: version === null ? { problems: cause.detail } : { version, problems: cause.detail },
  });
}

export function parseJsonDocument(text: string, where: string, version: number | null): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw rejectedDocument(where, version, new Error(`not JSON (${(err as Error).message})`));
  }
}

/**
 * Validates `doc` as the table stored at `version`; throws INVALID_TABLE naming both. A watch
 * passes its `decoder`, which validates only what changed since the version before.
 * `handling` as for validateTable: `take` when the caller has just parsed `doc` and drops it.
 */
export function decodeTable(doc: unknown, version: number, where: string, decoder?: TableDecoder, handling: DocumentHandling = 'copy'): VersionedTable {
  try {
    return decoder ? decoder.decode(doc, version, handling) : versioned(validateTable(doc, handling), version);
  } catch (err) {
    const rejected = rejectedDocument(where, version, err);
    // What epochs the bad document shows, so that whoever replaces it issues higher ones.
    const seenEpoch = epochsSeenIn(doc);
    throw seenEpoch === null ? rejected : cgError('INVALID_TABLE', rejected.message, { cause: err, detail: { ...(rejected.detail as object), seenEpoch } });
  }
}

/** The highest epoch (or high-water mark) readable in a document that may be invalid; null when none is. */
export function epochsSeenIn(doc: unknown): number | null {
  if (doc === null || typeof doc !== 'object') return null;
  const d = doc as { epochHighWater?: unknown; cells?: unknown; global?: unknown };
  const cells = Array.isArray(d.cells) ? [...d.cells, d.global] : [d.global];
  const numbers = [d.epochHighWater, ...cells.map((c) => (c !== null && typeof c === 'object' ? (c as { epoch?: unknown }).epoch : undefined))]
    .filter((n): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0);
  return numbers.length ? Math.max(...numbers) : null;
}

/** What both stores do first in compareAndSwap: a sane expected version and a valid table. */
export function casInput(expectedVersion: number, table: RoutingTable): RoutingTable {
  if (!Number.isSafeInteger(expectedVersion) || expectedVersion < 0) throw cgError('USAGE', `expected version must be an integer >= 0, got ${expectedVersion}`);
  return validateTable(table);
}
