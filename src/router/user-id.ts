// Where a request's user id comes from: the configured sources, compiled once into small
// functions so the hot path does no parsing beyond what it reads. Every source is decoded
// by the one shared decoding (src/cells/user-id.ts), so `café` is the same user in a
// header, a cookie, a query or a path.
//
// One request, one user: every configured source is read, and a request whose sources
// carry different ids (a repeated header, cookie or query key with two values, or a header
// saying one user and the path another) is refused, never routed by whichever came first.
// The same id from several sources is fine.
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';
import { USER_ID_PROBLEM_TEXT, type UserIdEncoding, type UserIdProblem, decodeUserId } from '../cells/user-id';
import { errorSpec } from '../errors';
import type { UserIdSource } from './config';

/** A request whose user id cannot be used, with the reason (fixed text made from the configuration, never from the request). */
export class BadUserId {
  readonly body: string;
  constructor(readonly message: string) {
    this.body = JSON.stringify({ error: 'BAD_USER_ID', message });
  }
}

/** What the extractor found: a user id, nothing, or something that is not a usable user id. */
export type UserIdResult = string | null | BadUserId;

/** (raw url, parsed headers, raw header list) -> the request's user id. `rawHeaders` reveals repeated headers. */
export type UserIdExtractor = (url: string, headers: IncomingHttpHeaders, rawHeaders?: readonly string[]) => UserIdResult;

/** Answers 400 BAD_USER_ID with the reason. */
export function sendBadUserId(reply: FastifyReply, bad: BadUserId): FastifyReply {
  return reply.code(errorSpec('BAD_USER_ID').status).header('content-type', 'application/json; charset=utf-8').send(bad.body);
}

type Reader = (url: string, headers: IncomingHttpHeaders, rawHeaders: readonly string[] | undefined) => UserIdResult;

/** How a source is named in messages: "header x-user-id", "query user", "path /u/:user". */
export function describeSource(source: UserIdSource): string {
  if ('header' in source) return `header ${source.header}`;
  if ('cookie' in source) return `cookie ${source.cookie}`;
  if ('query' in source) return `query parameter ${source.query}`;
  return `path ${source.path}`;
}

/** Compiles the sources into one function. */
export function compileUserIdExtractor(sources: readonly UserIdSource[]): UserIdExtractor {
  const readers = sources.map(compileSource);
  const names = sources.map(describeSource);
  const disagree = names.map((a) => names.map((b) => new BadUserId(`the ${a} and the ${b} carry different user ids`)));
  if (readers.length === 1) return readers[0]!;
  return (url, headers, rawHeaders) => {
    let id: string | null = null;
    let from = 0;
    for (let i = 0; i < readers.length; i++) {
      const found = readers[i]!(url, headers, rawHeaders);
      if (found === null) continue;
      if (typeof found !== 'string') return found;
      if (id === null) {
        id = found;
        from = i;
      } else if (found !== id) return disagree[from]![i]!;
    }
    return id;
  };
}

/** A source's verdicts, made once: one BadUserId per problem, and one for "two different ids". */
class SourceVerdicts {
  private readonly problems: Record<UserIdProblem, BadUserId>;
  readonly repeated: BadUserId;

  constructor(name: string) {
    const bad = (p: UserIdProblem): BadUserId => new BadUserId(`the user id in the ${name} ${USER_ID_PROBLEM_TEXT[p]}`);
    this.problems = { empty: bad('empty'), tooLong: bad('tooLong'), control: bad('control'), notUtf8: bad('notUtf8') };
    this.repeated = new BadUserId(`the ${name} is repeated with different user ids`);
  }

  /** Decodes every value found (null: none); all must decode to the same id. */
  decodeAll(values: readonly string[] | string | null, encoding: UserIdEncoding): UserIdResult {
    if (values === null) return null;
    if (typeof values === 'string') return this.decodeOne(values, encoding);
    let id: string | null = null;
    for (const v of values) {
      const found = this.decodeOne(v, encoding);
      if (found === null) continue;
      if (typeof found !== 'string') return found;
      if (id === null) id = found;
      else if (id !== found) return this.repeated;
    }
    return id;
  }

  private decodeOne(raw: string, encoding: UserIdEncoding): UserIdResult {
    if (raw === '') return null; // an empty value is no id (as if the source were absent)
    const r = decodeUserId(raw, encoding);
    return typeof r === 'string' ? r : this.problems[r.problem];
  }
}

function compileSource(source: UserIdSource): Reader {
  const verdicts = new SourceVerdicts(describeSource(source));
  if ('header' in source) {
    const name = source.header.toLowerCase();
    // Node keeps only the first of a repeated header on this list, and joins others with ", ":
    // for those the raw list is read always, for the others only when a comma shows a join.
    const firstOnly = NODE_KEEPS_FIRST.has(name) || name === 'cookie';
    return (_url, headers, rawHeaders) => {
      const v = headers[name];
      if (v === undefined) return null;
      if (typeof v !== 'string') return verdicts.decodeAll(v, 'wire');
      if (rawHeaders === undefined || (!firstOnly && v.indexOf(',') < 0)) return verdicts.decodeAll(v, 'wire');
      return verdicts.decodeAll(rawValues(rawHeaders, name), 'wire');
    };
  }
  if ('cookie' in source) {
    const name = source.cookie;
    return (_url, headers) => {
      const cookie = headers.cookie;
      return cookie === undefined ? null : verdicts.decodeAll(cookieValues(cookie, name), 'percent');
    };
  }
  if ('query' in source) {
    const name = source.query;
    return (url) => {
      const q = url.indexOf('?');
      return q < 0 ? null : verdicts.decodeAll(queryValues(url, q + 1, name), 'form');
    };
  }
  return compilePathPattern(source.path, verdicts);
}

/** `/users/:user` → reads the segment at the `:user` position when every literal segment matches. */
function compilePathPattern(pattern: string, verdicts: SourceVerdicts): Reader {
  const parts = pattern.split('/');
  const at = parts.indexOf(':user');
  return (url) => {
    // Walks the segments in place (no split: this runs on every request).
    let start = 0;
    let segment: string | null = null;
    const end = url.indexOf('?') < 0 ? url.length : url.indexOf('?');
    for (let i = 0; i < parts.length; i++) {
      if (start > end) return null; // fewer segments than the pattern
      let stop = url.indexOf('/', start);
      if (stop < 0 || stop > end) stop = end;
      if (i === at) segment = url.slice(start, stop);
      else if (stop - start !== parts[i]!.length || !url.startsWith(parts[i]!, start)) return null;
      start = stop + 1;
    }
    return verdicts.decodeAll(segment as string, 'percent');
  };
}

/** Every value of header `name` (lower case) in Node's raw [name, value, name, value…] list. */
function rawValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const n = rawHeaders[i]!;
    if (n.length === name.length && n.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  }
  return out;
}

/** Every value of cookie `name` in "a=1; b=2" (names compared exactly; quotes removed). */
function cookieValues(header: string, name: string): string[] | null {
  let out: string[] | null = null;
  let start = 0;
  while (start < header.length) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', start);
    if (eq > start && eq < end && header.slice(start, eq).trim() === name) {
      let value = header.slice(eq + 1, end).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      (out ??= []).push(value);
    }
    start = end + 1;
  }
  return out;
}

/**
 * Every value of query key `name` (a key without "=" has the empty value). Keys are compared
 * decoded, as the upstream's URLSearchParams will read them: `us%65r=bob` is a `user` too.
 */
function queryValues(url: string, from: number, name: string): string[] | null {
  let out: string[] | null = null;
  let start = from;
  while (start < url.length) {
    let end = url.indexOf('&', start);
    if (end < 0) end = url.length;
    const eq = url.indexOf('=', start);
    const keyEnd = eq >= 0 && eq < end ? eq : end;
    if (keyMatches(url, start, keyEnd, name)) (out ??= []).push(keyEnd === end ? '' : url.slice(eq + 1, end));
    start = end + 1;
  }
  return out;
}

function keyMatches(url: string, start: number, end: number, name: string): boolean {
  if (end - start === name.length && url.startsWith(name, start)) return true;
  const key = url.slice(start, end);
  if (key.indexOf('%') < 0 && key.indexOf('+') < 0) return false;
  try {
    return decodeURIComponent(key.replace(/\+/g, ' ')) === name;
  } catch {
    return false; // a malformed escape: URLSearchParams would not read it as `name` either
  }
}

// From Node's http docs ("Duplicates of age, authorization, ... are discarded").
const NODE_KEEPS_FIRST: ReadonlySet<string> = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer',
  'retry-after', 'server', 'user-agent',
]);
