/**
 * How the Memcached store writes its two kinds of items: a session record (a JSON header line,
 * then the data) and a user index (a JSON object from store key to the instant its entry lasts
 * until). Each carries flags of its own, so that a foreign value is refused, never misread.
 *
 * @packageDocumentation
 */
import type { Item } from './protocol.js';

/** Item flags marking Tessera's two value formats. */
export const RECORD_FLAGS = 0x54530001;
export const INDEX_FLAGS = 0x54530002;

/** What the store keeps of a record besides its data, with the CAS token it was read with. */
export interface Snapshot {
  cas: Buffer;
  version: number;
  expiresAt: number;
  userId: string | null;
  /** Until when the record's entry in its user's index reaches (0 without one). */
  indexedUntil: number;
}

/** A record as stored: its data and what the store keeps besides. */
export interface Decoded extends Omit<Snapshot, 'cas'> {
  data: string;
}

function corrupt(what: string): Error {
  return new Error(`MemcachedStore: the value under a ${what} key is not in Tessera's format`);
}

export function encodeRecord(record: Decoded): Buffer {
  const header = JSON.stringify({
    v: record.version,
    e: record.expiresAt,
    u: record.userId,
    i: record.indexedUntil,
  });
  return Buffer.from(`${header}\n${record.data}`, 'utf8');
}

export function decodeRecord(item: Item): Decoded {
  if (item.flags !== RECORD_FLAGS) throw corrupt('session');
  const text = item.value.toString('utf8');
  const newline = text.indexOf('\n');
  let header: unknown;
  try {
    header = newline < 0 ? null : JSON.parse(text.slice(0, newline));
  } catch {
    header = null;
  }
  if (typeof header !== 'object' || header === null) throw corrupt('session');
  const { v, e, u, i } = header as Record<string, unknown>;
  if (
    !Number.isInteger(v) ||
    typeof e !== 'number' ||
    typeof i !== 'number' ||
    (u !== null && typeof u !== 'string')
  ) {
    throw corrupt('session');
  }
  return {
    data: text.slice(newline + 1),
    version: v as number,
    expiresAt: e,
    userId: u,
    indexedUntil: i,
  };
}

export function encodeIndex(members: Map<string, number>): Buffer {
  return Buffer.from(JSON.stringify(Object.fromEntries(members)), 'utf8');
}

export function decodeIndex(item: Item): Map<string, number> {
  if (item.flags !== INDEX_FLAGS) throw corrupt('user index');
  let parsed: unknown;
  try {
    parsed = JSON.parse(item.value.toString('utf8'));
  } catch {
    parsed = null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw corrupt('user index');
  }
  const members = new Map<string, number>();
  for (const [key, until] of Object.entries(parsed)) {
    if (typeof until !== 'number') throw corrupt('user index');
    members.set(key, until);
  }
  return members;
}
