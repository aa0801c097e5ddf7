import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { parseTableJson, validateTable } from '../../cells/table';
import type { RoutingTable } from '../../cells/types';
import { parseTableFile } from '../../store/file-doc';
import { MAX_DOCUMENT_BYTES, tableFromTopologyText } from '../../cells/topology';
import { tableChecksum } from '../../cells/checksum';
import { type ErrorName, cgError } from '../../errors';
import type { Command } from '../command';
import { escapeForTerminal as esc } from '../output';

/**
 * Reads a topology or table file, at most MAX_DOCUMENT_BYTES: a larger file (or an endless
 * one such as a pipe from /dev/zero) is refused before it is parsed, having read no more
 * than one chunk past the limit. `refusal` names the error for the document kind (exit 3),
 * judged from the file's first bytes.
 */
export function readInputFile(path: string, refusal: (head: string) => ErrorName = () => 'INVALID_TOPOLOGY'): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw cannotRead(path, err);
  }
  const chunks: Buffer[] = [];
  let used = 0;
  let size = 0;
  try {
    size = fstatSync(fd).size;
    const limit = size > MAX_DOCUMENT_BYTES ? 4096 : MAX_DOCUMENT_BYTES + 1; // a regular file says its size: read its head only
    while (used < limit) {
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, limit - used));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      used += n;
    }
  } catch (err) {
    throw cannotRead(path, err);
  } finally {
    closeSync(fd);
  }
  if (size > MAX_DOCUMENT_BYTES || used > MAX_DOCUMENT_BYTES) {
    const head = chunks[0]?.toString('utf8', 0, 4096) ?? '';
    const bytes = size > MAX_DOCUMENT_BYTES ? `${size} bytes` : `more than ${MAX_DOCUMENT_BYTES} bytes`;
    throw cgError(refusal(head), `${path} is ${bytes}, over the limit of ${MAX_DOCUMENT_BYTES} bytes (16 MiB) for a topology or table`);
  }
  return Buffer.concat(chunks, used).toString('utf8');
}

const CHUNK_BYTES = 1024 * 1024;

function cannotRead(path: string, err: unknown): Error {
  return cgError('USAGE', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
}

/** A table document is JSON with "format" (bare, or in the file store's {version, table}); anything else is a topology. */
function looksLikeTable(head: string): boolean {
  return /^\s*\{[\s\S]*"(format|table)"\s*:/.test(head);
}

/** A bare table, or the file store's own document `{version, table}` (what --file PATH holds). */
function parseTableText(text: string, path: string): { table: RoutingTable; version?: number } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { table: parseTableJson(text) }; // its error names the JSON problem
  }
  if (doc !== null && typeof doc === 'object' && 'table' in doc && !('format' in doc)) {
    const file = parseTableFile(text, path);
    return { table: validateTable(file.table), version: file.version };
  }
  return { table: validateTable(doc) };
}

export const validateCommand: Command = {
  words: ['validate'],
  usage: 'cellctl validate FILE [--json]',
  summary: 'check a topology (YAML), a routing table (JSON) or a file store\'s table file without touching any store',
  examples: ['cellctl validate config/demo-topology.yaml'],
  options: {},
  async run({ args, out }) {
    const [file, ...rest] = args.positionals;
    if (!file || rest.length) throw cgError('USAGE', 'validate takes exactly one FILE');
    const text = readInputFile(file, (head) => (looksLikeTable(head) ? 'INVALID_TABLE' : 'INVALID_TOPOLOGY'));
    const isTable = looksLikeTable(text);
    const { table, version } = isTable ? parseTableText(text, file) : { table: tableFromTopologyText(text), version: undefined };
    const summary = {
      valid: true, kind: version !== undefined ? 'table file' : isTable ? 'table' : 'topology', name: table.name,
      cells: table.cells.length, zones: table.zones.length, checksum: tableChecksum(table), ...(version !== undefined ? { version } : {}),
    };
    if (out.json) out.data(summary);
    else out.text(`${esc(file)}: valid ${summary.kind} "${esc(table.name)}"${version !== undefined ? ` at version ${version}` : ''} (${summary.cells} cells, ${summary.zones} zones, ${summary.checksum})`);
    return 0;
  },
};
