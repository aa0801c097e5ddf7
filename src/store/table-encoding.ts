// How the etcd store keeps the table's bytes. Every version of the table is sent to every
// gateway watching it (1,000 gateways x 5.8 KB = 5.8 MB per version at 64 cells, 415 MB at
// 5,000 cells), so the value is written compressed: the tag `cellgate:deflate:` and the
// table's JSON compressed with raw DEFLATE (64 cells: 5.8 KB -> 0.7 KB; 5,000 cells: 415 KB
// -> 30 KB). The tag is readable text, so `etcdctl get` shows what the value is, and no
// JSON document starts with it. Readers accept both: a value without the tag is plain JSON.
//
// Writers still write plain JSON by default: a gateway older than this reader cannot read
// the compressed form and would keep its last table, so a fleet turns compression on
// (`tableEncoding: 'deflate'`, CELLGATE_ETCD_TABLE_ENCODING=deflate for the CLIs) only once
// every gateway reads it — the usual two-step rollout of a storage format. Inflating is bounded (a value cannot expand into
// more than MAX_TABLE_JSON_BYTES), and it costs ~25 us at 64 cells, less than the JSON.parse
// that follows it.
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { TableDecoder } from '../cells/table-decoder';
import type { RoutingTable, VersionedTable } from '../cells/types';
import { decodeTable, parseJsonDocument, rejectedDocument } from './table-doc';

export type TableEncoding = 'deflate' | 'json';

export const DEFAULT_TABLE_ENCODING: TableEncoding = 'json';

const DEFLATE_TAG = 'cellgate:deflate:';
const DEFLATE_TAG_BYTES = Buffer.from(DEFLATE_TAG, 'latin1');

/** The most JSON one stored value may inflate to (etcd refuses requests of more than 1.5 MiB by default; 100 MiB is far past any table). */
export const MAX_TABLE_JSON_BYTES = 100 * 1024 * 1024;

/** The bytes stored for `table` (already validated by the caller). */
export function encodeTableValue(table: RoutingTable, encoding: TableEncoding = DEFAULT_TABLE_ENCODING): Buffer {
  const json = Buffer.from(JSON.stringify(table), 'utf8');
  switch (encoding) {
    case 'json':
      return json;
    case 'deflate':
      return Buffer.concat([DEFLATE_TAG_BYTES, deflateRawSync(json)]);
    default: {
      const never: never = encoding;
      throw new Error(`unknown table encoding ${String(never)}`);
    }
  }
}

/** Which encoding a stored value uses. */
export function tableValueEncoding(value: Buffer): TableEncoding {
  return value.length >= DEFLATE_TAG_BYTES.length && value.subarray(0, DEFLATE_TAG_BYTES.length).equals(DEFLATE_TAG_BYTES) ? 'deflate' : 'json';
}

/** The JSON text of a stored value; INVALID_TABLE (naming `where` and `version`) when it cannot be read. */
export function tableValueText(value: Buffer, where: string, version: number | null, maxBytes = MAX_TABLE_JSON_BYTES): string {
  if (tableValueEncoding(value) === 'json') return value.toString('utf8');
  try {
    return inflateRawSync(value.subarray(DEFLATE_TAG_BYTES.length), { maxOutputLength: maxBytes }).toString('utf8');
  } catch (err) {
    const tooBig = (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
    throw rejectedDocument(where, version, new Error(tooBig ? `the compressed table expands to more than ${maxBytes} bytes` : `not a valid ${DEFLATE_TAG} value (${(err as Error).message})`));
  }
}

/** The parsed (not yet validated) document of a stored value. */
export function parseTableValue(value: Buffer, where: string, version: number | null): unknown {
  return parseJsonDocument(tableValueText(value, where, version), where, version);
}

/**
 * The table a stored value holds at `version` (INVALID_TABLE naming both when it cannot be
 * read or is not valid). The document parsed here is seen by nobody else, so it is handed
 * over to the validation (frozen in place, not copied).
 */
export function decodeTableValue(value: Buffer, where: string, version: number, decoder?: TableDecoder): VersionedTable {
  return decodeTable(parseTableValue(value, where, version), version, where, decoder, 'take');
}
