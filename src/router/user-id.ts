// Where a request's user id comes from: the configured sources, tried in order, compiled
// once into small functions so the hot path does no parsing beyond what it reads.
import type { IncomingHttpHeaders } from 'node:http';
import { MAX_USER_ID_LENGTH } from '../cells/table';
import type { UserIdSource } from './config';

/** What the extractor found: a user id, nothing, or something that is not a valid user id. */
export type UserIdResult = string | null | typeof BAD_USER_ID;
export const BAD_USER_ID: unique symbol = Symbol('bad user id');

type Reader = (url: string, headers: IncomingHttpHeaders) => string | null | typeof BAD_USER_ID;

/** Compiles the sources into one function of (raw url, headers). */
export function compileUserIdExtractor(sources: readonly UserIdSource[]): (url: string, headers: IncomingHttpHeaders) => UserIdResult {
  const readers = sources.map(compileSource);
  if (readers.length === 1) {
    const only = readers[0]!;
    return (url, headers) => checked(only(url, headers));
  }
  return (url, headers) => {
    for (const read of readers) {
      const found = read(url, headers);
      if (found !== null) return checked(found);
    }
    return null;
  };
}

function compileSource(source: UserIdSource): Reader {
  if ('header' in source) {
    const name = source.header;
    return (_url, headers) => {
      const v = headers[name];
      const s = typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined;
      return s === undefined || s === '' ? null : s;
    };
  }
  if ('cookie' in source) {
    const name = source.cookie;
    return (_url, headers) => {
      const cookie = headers.cookie;
      return cookie === undefined ? null : decoded(cookieValue(cookie, name), false);
    };
  }
  if ('query' in source) {
    const name = source.query;
    return (url) => {
      const q = url.indexOf('?');
      return q < 0 ? null : decoded(queryValue(url, q + 1, name), true);
    };
  }
  return compilePathPattern(source.path);
}

/** `/users/:user` → reads the segment at the `:user` position when every literal segment matches. */
function compilePathPattern(pattern: string): Reader {
  const parts = pattern.split('/');
  const at = parts.indexOf(':user');
  return (url) => {
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const segments = path.split('/');
    if (segments.length < parts.length) return null;
    for (let i = 0; i < parts.length; i++) if (i !== at && segments[i] !== parts[i]) return null;
    return decoded(segments[at]!, false);
  };
}

function cookieValue(header: string, name: string): string | null {
  // Cookies are "a=1; b=2"; names are compared exactly, the first match wins (RFC 6265 5.4).
  let start = 0;
  while (start < header.length) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', start);
    if (eq > start && eq < end && header.slice(start, eq).trim() === name) {
      let value = header.slice(eq + 1, end).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      return value;
    }
    start = end + 1;
  }
  return null;
}

function queryValue(url: string, from: number, name: string): string | null {
  let start = from;
  while (start < url.length) {
    let end = url.indexOf('&', start);
    if (end < 0) end = url.length;
    const eq = url.indexOf('=', start);
    const keyEnd = eq >= 0 && eq < end ? eq : end;
    if (keyEnd - start === name.length && url.startsWith(name, start)) return keyEnd === end ? '' : url.slice(eq + 1, end);
    start = end + 1;
  }
  return null;
}

function decoded(raw: string | null, plusIsSpace: boolean): string | null | typeof BAD_USER_ID {
  if (raw === null || raw === '') return null;
  const s = plusIsSpace ? raw.replace(/\+/g, ' ') : raw;
  if (s.indexOf('%') < 0) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return BAD_USER_ID;
  }
}

function checked(v: string | null | typeof BAD_USER_ID): UserIdResult {
  if (typeof v !== 'string') return v;
  if (v.length > MAX_USER_ID_LENGTH) return BAD_USER_ID;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    // C0 controls, DEL and C1 controls: never part of an id, and dangerous in logs and headers.
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return BAD_USER_ID;
  }
  return v;
}
