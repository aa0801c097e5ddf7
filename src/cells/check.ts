// Small helpers for validating untrusted documents (topologies, tables, configs): every
// problem is collected with the path of the offending key, so one run reports them all.

export interface Problem {
  readonly path: string;
  readonly message: string;
}

/**
 * Where a value sits: its path, or its parent's path and its key, joined only when a problem
 * is reported (a watch checks every changed cell of every version: valid documents then cost
 * no path strings).
 */
export type Where = string | readonly [parent: string, key: string | number];

export class Problems {
  readonly list: Problem[] = [];

  add(where: Where, message: string): void {
    const path = typeof where === 'string' ? where : join(where[0], where[1]);
    this.list.push({ path: path || '(root)', message });
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  /** "zones[1].name: duplicate zone name "sh-a"; cells: must be > 0" */
  summary(): string {
    return this.list.map((p) => `${p.path}: ${p.message}`).join('; ');
  }
}

export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? (path ? `${path}.${key}` : key) : `${path}[${JSON.stringify(key)}]`;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reports keys of `obj` not in `allowed`; returns whether `obj` is an object at all. */
export function checkObject(p: Problems, obj: unknown, path: string, allowed: readonly string[]): obj is Record<string, unknown> {
  if (!isRecord(obj)) {
    p.add(path, `must be an object, got ${describe(obj)}`);
    return false;
  }
  // A long list (a ring's point counts name every cell) is looked up in a set: 10,000 cells
  // would otherwise cost 10^8 comparisons.
  const known = allowed.length > 16 ? new Set(allowed) : null;
  for (const key in obj) if (Object.hasOwn(obj, key) && !(known ? known.has(key) : allowed.includes(key))) p.add(join(path, key), 'unknown key');
  return true;
}

// Each check below is its predicate (is*) plus the problem it reports at `where`.

export function isNonEmptyString(v: unknown, pattern?: RegExp): v is string {
  return typeof v === 'string' && v.length > 0 && (pattern === undefined || pattern.test(v));
}

export function checkString(p: Problems, v: unknown, path: Where, pattern?: RegExp): v is string {
  if (isNonEmptyString(v, pattern)) return true;
  if (typeof v !== 'string' || v.length === 0) p.add(path, `must be a non-empty string, got ${describe(v)}`);
  else p.add(path, `${JSON.stringify(v)} must match ${pattern}`);
  return false;
}

export function isIntegerIn(v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

export function checkInteger(p: Problems, v: unknown, path: Where, min: number, max = Number.MAX_SAFE_INTEGER): v is number {
  if (isIntegerIn(v, min, max)) return true;
  p.add(path, `must be an integer in [${min}, ${max}], got ${describe(v)}`);
  return false;
}

export function isFiniteAtLeast(v: unknown, min: number): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= min;
}

export function checkNumber(p: Problems, v: unknown, path: Where, min: number): v is number {
  if (isFiniteAtLeast(v, min)) return true;
  p.add(path, `must be a finite number >= ${min}, got ${describe(v)}`);
  return false;
}

export function isOneOf<T extends string>(v: unknown, values: readonly T[]): v is T {
  return typeof v === 'string' && values.includes(v as T);
}

export function checkOneOf<T extends string>(p: Problems, v: unknown, path: Where, values: readonly T[]): v is T {
  if (isOneOf(v, values)) return true;
  p.add(path, `must be one of ${values.join(', ')}, got ${describe(v)}`);
  return false;
}

/**
 * An upstream base URL: http(s)://host[:port] with at most "/" as path. A path would be
 * dropped (the client's path is sent as is), so it is refused rather than ignored; so are
 * credentials, query and fragment. Link-local and cloud-metadata addresses are refused
 * unless `allowLinkLocal` (they are what an SSRF aims at). Names are not resolved here.
 */
export function checkHttpUrl(p: Problems, v: unknown, path: Where, allowLinkLocal = false): v is string {
  if (!checkString(p, v, path)) return false;
  const accepted = allowLinkLocal ? acceptedUrls.linkLocal : acceptedUrls.strict;
  if (accepted.has(v)) return true;
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    p.add(path, `${JSON.stringify(v)} is not a URL`);
    return false;
  }
  const problem = upstreamUrlProblem(v, url, allowLinkLocal);
  if (problem) p.add(path, `${JSON.stringify(v)} ${problem}`);
  else remember(accepted, v);
  return problem === null;
}

/**
 * URLs checkHttpUrl accepted, by whether link-local addresses were allowed: a watch checks the
 * same few upstreams again on every version of the table, and parsing them is most of its
 * zones' cost. Only acceptances are remembered (a refusal is worded afresh each time).
 * Bounded in count and bytes: a set that is full is emptied.
 */
const acceptedUrls = { strict: new Set<string>(), linkLocal: new Set<string>() };
const MAX_ACCEPTED_URLS = 4096;
const MAX_REMEMBERED_URL_LENGTH = 256;

function remember(accepted: Set<string>, url: string): void {
  if (url.length > MAX_REMEMBERED_URL_LENGTH) return;
  if (accepted.size >= MAX_ACCEPTED_URLS) accepted.clear();
  accepted.add(url);
}

function upstreamUrlProblem(raw: string, url: URL, allowLinkLocal: boolean): string | null {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http(s) URL';
  if (url.username || url.password || raw.includes('@')) return 'must be a base URL without credentials';
  if (raw.includes('?') || raw.includes('#')) return 'must be a base URL without query or fragment';
  if (url.pathname !== '/') return `must be a base URL without a path (got ${JSON.stringify(url.pathname)}): requests keep their own path`;
  if (!allowLinkLocal && isLinkLocalOrMetadata(url.hostname)) {
    return 'is a link-local or cloud-metadata address (set allowLinkLocal: true in the topology to allow it)';
  }
  return null;
}

const METADATA_NAMES = new Set(['metadata.google.internal', 'metadata.goog']);
/** Alibaba Cloud's metadata address (the others are in 169.254.0.0/16). */
const METADATA_V4 = '100.100.100.200';

/** 169.254.0.0/16, fe80::/10, fd00:ec2::254, those IPv4s inside IPv6 (mapped, NAT64), and known metadata names. */
export function isLinkLocalOrMetadata(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  if (METADATA_NAMES.has(host)) return true;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return isBadV4(host.split('.').map(Number));
  if (!host.startsWith('[')) return false;
  const h = ipv6Hextets(host.slice(1, -1));
  if (!h) return false;
  if ((h[0]! & 0xffc0) === 0xfe80) return true;
  if (h[0] === 0xfd00 && h[1] === 0xec2 && h.slice(2, 7).every((x) => x === 0) && h[7] === 0x254) return true;
  const mapped = h.slice(0, 5).every((x) => x === 0) && h[5] === 0xffff;
  const nat64 = h[0] === 0x64 && h[1] === 0xff9b && h.slice(2, 6).every((x) => x === 0);
  if (mapped || nat64) return isBadV4([h[6]! >> 8, h[6]! & 0xff, h[7]! >> 8, h[7]! & 0xff]);
  return false;
}

function isBadV4(o: readonly number[]): boolean {
  return (o[0] === 169 && o[1] === 254) || o.join('.') === METADATA_V4;
}

/** The 8 groups of an IPv6 address as the URL parser writes it (compressed, hex, no dotted IPv4). */
function ipv6Hextets(addr: string): number[] | null {
  const halves = addr.split('::');
  if (halves.length > 2) return null;
  const part = (s: string): number[] => (s === '' ? [] : s.split(':').map((x) => parseInt(x, 16)));
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  const zeros = 8 - head.length - tail.length;
  if (zeros < 0 || (halves.length === 1 && zeros !== 0)) return null;
  const all = [...head, ...new Array<number>(zeros).fill(0), ...tail];
  return all.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffff) ? all : null;
}

/** Reports each name seen before under the same list. */
export function checkUnique(p: Problems, names: readonly (string | undefined)[], path: (i: number) => string, what: string): void {
  const seen = new Set<string>();
  names.forEach((name, i) => {
    if (name === undefined) return;
    if (seen.has(name)) p.add(path(i), `duplicate ${what} ${JSON.stringify(name)}`);
    seen.add(name);
  });
}

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  // JSON.stringify writes Infinity and NaN (YAML's .inf, .nan) as "null".
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Freezes `value` and everything in it, stopping at what is frozen already (reused parts of a table). */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    // Indexed and for-in loops: Object.values would allocate an array per object, and a
    // watch freezes every object of every version it decodes.
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) deepFreeze(value[i]);
    } else {
      const obj = value as Record<string, unknown>;
      for (const k in obj) if (Object.hasOwn(obj, k)) deepFreeze(obj[k]);
    }
  }
  return value;
}

/** Name pattern for cells, zones, regions, cities. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * The known name nearest to `word` when it is plausibly a typo ("did you mean"): a case slip,
 * or an edit distance of at most a third of its length (git's habit; at least 1).
 */
export function closest(word: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== null && bestDistance <= Math.max(1, Math.floor(Math.max(word.length, 3) / 3)) ? best : null;
}

/** Edit distance with adjacent transpositions ("prot" is one step from "port"); names are short. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
