// Terminal output helpers for the CLIs: aligned tables and one-line errors.
//
// Operator text is data, not terminal control: a --reason, --actor, table name or gateway id
// can hold newlines (forged rows), escape sequences (terminal title, cleared screen) or bidi
// overrides (text shown in another order than stored). Every human output goes through
// escapeForTerminal; --json output keeps the text exactly (JSON escapes controls itself).
import { isCellgateError } from '../errors';

// C0 controls, DEL, C1 controls; the Unicode marks that reorder or break lines
// (ALM, LRM/RLM, LRE…RLO, LRI…PDI, line and paragraph separators).
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const SHORT: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function visible(c: string): string {
  const code = c.charCodeAt(0);
  return SHORT[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
}

/**
 * `s` with every control character shown as a visible escape (`\n`, `\x1b`, `\u202e`), so
 * it prints as one inert line. With `keepLineBreaks`, "\n" stays a line break: for whole
 * texts whose lines the program made (their fields are escaped one by one first).
 */
export function escapeForTerminal(s: string, keepLineBreaks = false): string {
  const unsafe = keepLineBreaks ? UNSAFE_BUT_NEWLINE : UNSAFE;
  unsafe.lastIndex = 0;
  return unsafe.test(s) ? s.replace(unsafe, visible) : s;
}

/** Aligned columns; the first row is the header. Every cell is escaped (one line each). */
export function formatTable(rows: readonly (readonly (string | number)[])[]): string {
  if (rows.length === 0) return '';
  const text = rows.map((r) => r.map((cell) => escapeForTerminal(String(cell ?? ''))));
  const widths = text[0].map((_, col) => Math.max(...text.map((r) => (r[col] ?? '').length)));
  return text
    .map((r) => r.map((cell, col) => cell.padEnd(widths[col])).join('  ').trimEnd())
    .join('\n');
}

export interface Output {
  readonly json: boolean;
  /** Human text on stdout (suppressed with --json). */
  text(s: string): void;
  /** One JSON document (or one line of many) on stdout. */
  data(value: unknown): void;
  /** Progress and notes on stderr. */
  note(s: string): void;
}

export function makeOutput(json: boolean, stdout = process.stdout, stderr = process.stderr): Output {
  return {
    json,
    text: (s) => { if (!json) stdout.write(line(s)); },
    data: (value) => { stdout.write(JSON.stringify(value) + '\n'); },
    note: (s) => { stderr.write(line(s)); },
  };
}

/** Human text, escaped (its line breaks kept), ending in one newline. */
function line(s: string): string {
  const safe = escapeForTerminal(s, true);
  return safe.endsWith('\n') ? safe : safe + '\n';
}

/**
 * One message per failure. A list of problems (validation) is printed once, one per line,
 * under a headline: the message's own "; "-joined copy of the list is not printed again.
 */
function humanError(message: string, detail: unknown, program: string): string {
  const problems = Array.isArray(detail) ? (detail as { path?: string; message?: string }[]) : [];
  if (problems.length < 2 || !problems.every((p) => p.path)) return `${program}: ${escapeForTerminal(message)}\n`;
  const lines = problems.map((p) => `${p.path}: ${p.message}`);
  const joined = lines.join('; ');
  const headline = message.endsWith(joined) ? message.slice(0, message.length - joined.length).replace(/[:\s]+$/, '') : message;
  return `${program}: ${escapeForTerminal(headline)} (${problems.length} problems):\n${lines.map((l) => `  ${escapeForTerminal(l)}\n`).join('')}`;
}

/** Prints an error as one line (or JSON with --json) and returns the exit code to use. */
export function reportError(err: unknown, json: boolean, program: string): number {
  if (isCellgateError(err)) {
    if (json) process.stdout.write(JSON.stringify({ error: err.error, message: err.message, detail: err.detail }) + '\n');
    else process.stderr.write(humanError(err.message, err.detail, program));
    return err.exit;
  }
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stdout.write(JSON.stringify({ error: 'ERROR', message }) + '\n');
  else process.stderr.write(`${program}: ${escapeForTerminal(message)}\n`);
  return 1;
}
