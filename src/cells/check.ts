// Small helpers for validating untrusted documents (topologies, tables, configs): every
// problem is collected with the path of the offending key, so one run reports them all.

export interface Problem {
  readonly path: string;
  readonly message: string;
}

export class Problems {
  readonly list: Problem[] = [];

  add(path: string, message: string): void {
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
  for (const key of Object.keys(obj)) if (!(known ? known.has(key) : allowed.includes(key))) p.add(join(path, key), 'unknown key');
  return true;
}

export function checkString(p: Problems, v: unknown, path: string, pattern?: RegExp): v is string {
  if (typeof v !== 'string' || v.length === 0) {
    p.add(path, `must be a non-empty string, got ${describe(v)}`);
    return false;
  }
  if (pattern && !pattern.test(v)) {
    p.add(path, `${JSON.stringify(v)} must match ${pattern}`);
    return false;
  }
  return true;
}

export function checkInteger(p: Problems, v: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    p.add(path, `must be an integer in [${min}, ${max}], got ${describe(v)}`);
    return false;
  }
  return true;
}

export function checkNumber(p: Problems, v: unknown, path: string, min: number): v is number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
    p.add(path, `must be a number >= ${min}, got ${describe(v)}`);
    return false;
  }
  return true;
}

export function checkOneOf<T extends string>(p: Problems, v: unknown, path: string, values: readonly T[]): v is T {
  if (typeof v !== 'string' || !values.includes(v as T)) {
    p.add(path, `must be one of ${values.join(', ')}, got ${describe(v)}`);
    return false;
  }
  return true;
}

export function checkHttpUrl(p: Problems, v: unknown, path: string): v is string {
  if (!checkString(p, v, path)) return false;
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    p.add(path, `${JSON.stringify(v)} is not a URL`);
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    p.add(path, `${JSON.stringify(v)} must be an http(s) URL`);
    return false;
  }
  if (url.search || url.hash || url.username) {
    p.add(path, `${JSON.stringify(v)} must be a base URL without query, fragment or credentials`);
    return false;
  }
  return true;
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
  return `${typeof v} ${JSON.stringify(v)}`;
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

/** Name pattern for cells, zones, regions, cities. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
