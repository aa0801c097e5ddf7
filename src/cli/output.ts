// Terminal output helpers for the CLIs: aligned tables and one-line errors.
import { isCellgateError } from '../errors';

/** Aligned columns; the first row is the header. */
export function formatTable(rows: readonly (readonly (string | number)[])[]): string {
  if (rows.length === 0) return '';
  const widths = rows[0].map((_, col) => Math.max(...rows.map((r) => String(r[col] ?? '').length)));
  return rows
    .map((r) => r.map((cell, col) => String(cell ?? '').padEnd(widths[col])).join('  ').trimEnd())
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
    text: (s) => { if (!json) stdout.write(s.endsWith('\n') ? s : s + '\n'); },
    data: (value) => { stdout.write(JSON.stringify(value) + '\n'); },
    note: (s) => { stderr.write(s.endsWith('\n') ? s : s + '\n'); },
  };
}

/** Prints an error as one line (or JSON with --json) and returns the exit code to use. */
export function reportError(err: unknown, json: boolean, program: string): number {
  if (isCellgateError(err)) {
    if (json) process.stdout.write(JSON.stringify({ error: err.error, message: err.message, detail: err.detail }) + '\n');
    else {
      process.stderr.write(`${program}: ${err.message}\n`);
      const problems = Array.isArray(err.detail) ? (err.detail as { path?: string; message?: string }[]) : [];
      if (problems.length > 1 && problems.every((p) => p.path)) {
        for (const p of problems) process.stderr.write(`  ${p.path}: ${p.message}\n`);
      }
    }
    return err.exit;
  }
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stdout.write(JSON.stringify({ error: 'ERROR', message }) + '\n');
  else process.stderr.write(`${program}: ${message}\n`);
  return 1;
}
