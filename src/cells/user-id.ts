// User ids: one decoding for every place that turns bytes into the id that is hashed to a
// cell (the gateway's header/cookie/query/path sources, /admin/route, `cellctl route`, the
// fencing check of the services behind the gateway). An id is Unicode text sent as UTF-8;
// the same text must give the same cell whichever way it arrived.
//
// Pure: no I/O. Node hands header values (and the request target) over as latin1 strings,
// one char per byte, so `fromWire` re-reads those bytes as UTF-8.
import { MAX_USER_ID_LENGTH } from './table';

/** Why a value is not a user id. */
export type UserIdProblem = 'empty' | 'tooLong' | 'control' | 'notUtf8';

/** How the raw value reached us. */
export type UserIdEncoding =
  /** A JS string that already is text (argv, stdin lines, JSON). */
  | 'text'
  /** A header or cookie value: latin1 chars, one per byte, of UTF-8. */
  | 'wire'
  /** A path segment or cookie value: wire bytes, then %XX escapes of UTF-8. */
  | 'percent'
  /** A query value: like 'percent', and '+' is a space (HTML forms). */
  | 'form';

export const USER_ID_PROBLEM_TEXT: Readonly<Record<UserIdProblem, string>> = Object.freeze({
  empty: 'is empty',
  tooLong: `is longer than ${MAX_USER_ID_LENGTH} characters`,
  control: 'has control characters',
  notUtf8: 'is not valid UTF-8',
});

/** The user id `raw` stands for, or why it is none. The one decoding used everywhere. */
export function decodeUserId(raw: string, encoding: UserIdEncoding): string | { readonly problem: UserIdProblem } {
  if (isPlainAscii(raw, encoding !== 'text' && encoding !== 'wire')) return raw; // the usual case: one pass, no copy
  // At most 3 bytes per UTF-16 unit (and % escapes take 3 chars per byte): longer raw text
  // cannot decode to 256 units. Refused before any decoding work.
  if (raw.length > 9 * MAX_USER_ID_LENGTH) return PROBLEMS.tooLong;
  let s = encoding === 'text' ? raw : fromWire(raw);
  if (s === null) return NOT_UTF8;
  if (encoding === 'form' && s.indexOf('+') >= 0) s = s.replace(/\+/g, ' ');
  if ((encoding === 'percent' || encoding === 'form') && s.indexOf('%') >= 0) {
    try {
      s = decodeURIComponent(s);
    } catch {
      return NOT_UTF8; // a stray "%" or escapes that are not UTF-8
    }
  }
  const problem = userIdProblem(s);
  return problem === null ? s : PROBLEMS[problem];
}

/** 1-256 printable ASCII chars (and, where escapes apply, no "%" or "+"): already the id. */
function isPlainAscii(raw: string, escapes: boolean): boolean {
  const n = raw.length;
  if (n === 0 || n > MAX_USER_ID_LENGTH) return false;
  for (let i = 0; i < n; i++) {
    const c = raw.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f || (escapes && (c === 0x25 || c === 0x2b))) return false;
  }
  return true;
}

/** Whether a decoded id is acceptable: 1-256 UTF-16 units, no C0, DEL or C1 controls, no lone surrogates. */
export function userIdProblem(s: string): UserIdProblem | null {
  if (s.length === 0) return 'empty';
  if (s.length > MAX_USER_ID_LENGTH) return 'tooLong';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // Controls are never part of an id and are dangerous in logs, headers and terminals.
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return 'control';
    if (c >= 0xd800 && c <= 0xdfff) {
      // A lone surrogate has no UTF-8 form: two spellings of "the same" id would hash apart.
      const pair = c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
      if (!pair) return 'notUtf8';
      i++;
    }
  }
  return null;
}

/** latin1 chars (bytes) -> the UTF-8 text they encode; null if they are not UTF-8. ASCII is returned as is. */
export function fromWire(raw: string): string | null {
  let i = 0;
  const n = raw.length;
  while (i < n && raw.charCodeAt(i) < 0x80) i++;
  if (i === n) return raw;
  // Decoded by hand (no Buffer per request); strict like TextDecoder's fatal mode: no
  // overlong forms, no surrogates, nothing above U+10FFFF.
  let out = raw.slice(0, i);
  while (i < n) {
    const b0 = raw.charCodeAt(i);
    if (b0 < 0x80) {
      out += raw[i];
      i++;
      continue;
    }
    let need: number;
    let cp: number;
    let min: number;
    if (b0 >= 0xc2 && b0 <= 0xdf) [need, cp, min] = [1, b0 & 0x1f, 0x80];
    else if (b0 >= 0xe0 && b0 <= 0xef) [need, cp, min] = [2, b0 & 0x0f, 0x800];
    else if (b0 >= 0xf0 && b0 <= 0xf4) [need, cp, min] = [3, b0 & 0x07, 0x10000];
    else return null; // a continuation byte first, 0xc0/0xc1 (overlong), 0xf5+, or not a byte
    if (i + need >= n) return null; // cut short
    for (let k = 1; k <= need; k++) {
      const b = raw.charCodeAt(i + k);
      if ((b & 0xc0) !== 0x80 || b > 0xff) return null;
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
    out += String.fromCodePoint(cp);
    i += need + 1;
  }
  return out;
}

const NOT_UTF8 = Object.freeze({ problem: 'notUtf8' as const });
const PROBLEMS: Readonly<Record<UserIdProblem, { readonly problem: UserIdProblem }>> = Object.freeze({
  empty: Object.freeze({ problem: 'empty' as const }),
  tooLong: Object.freeze({ problem: 'tooLong' as const }),
  control: Object.freeze({ problem: 'control' as const }),
  notUtf8: NOT_UTF8,
});
