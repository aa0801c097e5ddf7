// The table file's envelope: `{ "version": N, "table": {...} }`. The version is the file
// store's CAS counter; the table is validated separately (see table-doc.ts).
import { rejectedDocument, parseJsonDocument } from './table-doc';

export interface TableFileDoc {
  readonly version: number;
  readonly table: unknown;
}

/** Parses the envelope; throws INVALID_TABLE (with detail.version when it could be read). */
export function parseTableFile(text: string, path: string): TableFileDoc {
  const doc = parseJsonDocument(text, path, null) as { version?: unknown; table?: unknown } | null;
  const version = doc !== null && typeof doc === 'object' ? doc.version : undefined;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw rejectedDocument(path, null, new Error('the file must hold {"version": <positive integer>, "table": {...}}'));
  }
  return { version, table: (doc as { table?: unknown }).table };
}

export function encodeTableFile(version: number, table: unknown): string {
  // Indented: operators read (and in emergencies, edit) this file.
  return `${JSON.stringify({ version, table }, null, 2)}\n`;
}
