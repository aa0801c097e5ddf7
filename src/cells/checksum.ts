// A stable checksum of a routing table, so that gateways can prove they hold the same one.
// Stable = independent of key order and whitespace: the table is serialised canonically
// (object keys sorted, no spaces) before hashing. node:crypto is computation, not I/O.
//
// Validated tables are deep-frozen, and the next version of a table reuses the previous
// one's frozen objects for what did not change (table-decoder.ts), so the canonical text of
// a frozen object need not be made again: checksumming a version costs the changed parts,
// the joins and the hash, not a re-serialisation of 10,000 unchanged cells. Two memories:
//  - canonicalJson/tableChecksum remember the text of every deep-frozen object they meet
//    (a WeakMap), for callers that checksum unrelated tables;
//  - a TableChecksummer, held by whoever follows one table through its versions (a watch's
//    decoder), remembers only the texts of the last version's cells and zones, by position:
//    a list lookup instead of a WeakMap entry per object, which a gateway following a table
//    for days would otherwise keep making (and its garbage collector keep tracing).
import { createHash } from 'node:crypto';
import type { RoutingTable } from './types';

const canonicalOfFrozen = new WeakMap<object, string>();

export function canonicalJson(value: unknown): string {
  return canonical(value, { deep: true }, canonicalOfFrozen);
}

/**
 * The canonical text of `value`; clears `within.deep` unless `value` is frozen all the way
 * down (only such values are remembered, in `memo` when there is one). Primitives cost no
 * allocation: a version's changed cells are a few hundred of them, on every gateway, on
 * every version.
 */
function canonical(value: unknown, within: { deep: boolean }, memo: WeakMap<object, string> | null): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  const known = memo?.get(value);
  if (known !== undefined) return known;
  const mine = { deep: Object.isFrozen(value) };
  let text: string;
  if (Array.isArray(value)) {
    text = '[';
    for (let i = 0; i < value.length; i++) text += (i === 0 ? '' : ',') + canonical(value[i], mine, memo);
    text += ']';
  } else if (isFlatRecord(value)) {
    // A cell, a ring's point counts: the engine's serialiser writes the keys in the order
    // listed, as one flat string (the same text as the loop below makes, at a fraction of its
    // allocations).
    text = JSON.stringify(value, sortedKeys(value));
  } else {
    const obj = value as Record<string, unknown>;
    const keys = sortedKeys(obj);
    text = '{';
    let first = true;
    for (const k of keys) {
      const v = obj[k];
      if (v === undefined) continue;
      text += `${first ? '' : ','}${JSON.stringify(k)}:${canonical(v, mine, memo)}`;
      first = false;
    }
    text += '}';
  }
  if (mine.deep) memo?.set(value, text);
  else within.deep = false;
  return text;
}

/**
 * Whether JSON.stringify(obj, keys) is obj's canonical text: a plain object (JSON.stringify
 * unwraps boxed primitives) whose values are all strings, numbers, booleans, null or
 * undefined (omitted by both), and no toJSON (which JSON.stringify would call). A function
 * value would be omitted there but written as null by canonical(), so it does not qualify.
 */
function isFlatRecord(obj: object): obj is Record<string, unknown> {
  const proto: unknown = Object.getPrototypeOf(obj);
  if ((proto !== Object.prototype && proto !== null) || typeof (obj as { toJSON?: unknown }).toJSON === 'function') return false;
  for (const k in obj) {
    const v = (obj as Record<string, unknown>)[k];
    const t = typeof v;
    if (t !== 'string' && t !== 'number' && t !== 'boolean' && t !== 'undefined' && v !== null) return false;
  }
  return true;
}

/**
 * Object.keys(obj).sort(), without the built-in sort's work arrays for the few keys of a cell
 * or a zone (insertion sort; `<` orders strings by UTF-16 code units, as sort() does).
 */
function sortedKeys(obj: object): string[] {
  const keys = Object.keys(obj);
  if (keys.length > 16) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
  return keys;
}

/** `sha256:` + the first 32 hex digits (128 bits) of the canonical JSON's SHA-256. */
export function tableChecksum(table: RoutingTable): string {
  return checksumOfCanonical(canonicalJson(table));
}

function checksumOfCanonical(text: string): string {
  return 'sha256:' + createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** The deep-frozen items of one list of the last table, and their canonical texts. */
interface ListTexts {
  /** `null` where the item was not frozen all the way down (its text is not reused). */
  readonly items: readonly (object | null)[];
  readonly texts: readonly string[];
}

/** A top-level value of the last table and its canonical text (kept only when deep-frozen). */
interface ValueText {
  readonly value: unknown;
  readonly text: string;
}

const NO_LIST: ListTexts = { items: [], texts: [] };

/**
 * tableChecksum for the versions of one table, one after the other: what it returns is
 * always exactly tableChecksum(table). An item of `cells` or `zones` that is the very same
 * deep-frozen object at the same position as in the last table checksummed, and a top-level
 * value (ring, overrides, global) that is the very same deep-frozen object, reuse the text
 * made for it then. Lists are joined in one go (one flat string for the hash to read).
 */
export class TableChecksummer {
  private lastTable: RoutingTable | null = null;
  private lastChecksum = '';
  private lists = new Map<string, ListTexts>();
  private values = new Map<string, ValueText>();

  checksum(table: RoutingTable): string {
    if (table === this.lastTable && Object.isFrozen(table)) return this.lastChecksum;
    if (table === null || typeof table !== 'object' || Array.isArray(table)) return checksumOfCanonical(canonical(table, { deep: true }, null));
    const obj = table as unknown as Record<string, unknown>;
    const lists = new Map<string, ListTexts>();
    const values = new Map<string, ValueText>();
    // The canonical text in pieces, joined once: one flat string for the hash to read.
    const pieces: string[] = ['{'];
    for (const k of sortedKeys(obj)) {
      const v = obj[k];
      if (v === undefined) continue;
      pieces.push(`${pieces.length === 1 ? '' : ','}${JSON.stringify(k)}:`);
      if (Array.isArray(v)) this.listText(k, v, lists, pieces);
      else pieces.push(this.valueText(k, v, values));
    }
    pieces.push('}');
    const sum = checksumOfCanonical(pieces.join(''));
    this.lists = lists;
    this.values = values;
    this.lastTable = table;
    this.lastChecksum = sum;
    return sum;
  }

  /** Appends the canonical text of `list` to `pieces`, item by item. */
  private listText(key: string, list: readonly unknown[], next: Map<string, ListTexts>, pieces: string[]): void {
    const prev = this.lists.get(key) ?? NO_LIST;
    const items = new Array<object | null>(list.length);
    const texts = new Array<string>(list.length);
    pieces.push('[');
    for (let i = 0; i < list.length; i++) {
      const item = list[i];
      if (item !== null && typeof item === 'object' && item === prev.items[i]) {
        items[i] = item;
        texts[i] = prev.texts[i]!;
      } else {
        const within = { deep: true };
        texts[i] = canonical(item, within, null);
        items[i] = within.deep && item !== null && typeof item === 'object' ? item : null;
      }
      if (i > 0) pieces.push(',');
      pieces.push(texts[i]!);
    }
    pieces.push(']');
    next.set(key, { items, texts });
  }

  private valueText(key: string, value: unknown, next: Map<string, ValueText>): string {
    const prev = this.values.get(key);
    if (prev !== undefined && prev.value === value) {
      next.set(key, prev);
      return prev.text;
    }
    const within = { deep: true };
    const text = canonical(value, within, null);
    if (within.deep && value !== null && typeof value === 'object') next.set(key, { value, text });
    return text;
  }
}
