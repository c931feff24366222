/**
 * The Memcached store's optional user index: one item per user, `{prefix}u:{SHA-256 of the user
 * ID}`, listing the store keys of the user's sessions, each with the instant its entry lasts
 * until. Every change is a compare-and-set, retried while other writers change the item first.
 *
 * Memcached may evict this item like any other: the sessions it listed then escape `listByUser`
 * and `deleteByUser` until they are written again. That is why the store offers the index only
 * when asked (`userIndex: 'best-effort'`).
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import type { UserRecord } from '../../store.js';
import { delay } from '../../options.js';
import { decodeIndex, decodeRecord, encodeIndex, INDEX_FLAGS } from './format.js';
import type { Decoded, Snapshot } from './format.js';
import { MAX_ATTEMPTS, Opcode, type MemcachedWire } from './protocol.js';

/** What the index needs of its store's records. */
export interface IndexedRecords {
  /** The record under `key` if it is live on the store's clock, with its CAS token. */
  readLive(key: string): Promise<(Decoded & { cas: Buffer }) | null>;
  /** The Memcached key of the record under `key`. */
  recordKey(key: string): string;
  /** Drops the CAS token the store keeps for `key`. */
  forget(key: string): void;
}

/** Lists and removes a user's sessions through one index item per user. */
export class MemcachedUserIndex {
  readonly #wire: MemcachedWire;
  readonly #prefix: string;
  readonly #margin: number;
  readonly #now: () => number;
  readonly #records: IndexedRecords;

  constructor(
    wire: MemcachedWire,
    options: { prefix: string; margin: number; now: () => number },
    records: IndexedRecords,
  ) {
    this.#wire = wire;
    this.#prefix = options.prefix;
    this.#margin = options.margin;
    this.#now = options.now;
    this.#records = records;
  }

  #indexKey(userId: string): string {
    return `${this.#prefix}u:${createHash('sha256').update(userId).digest('base64url')}`;
  }

  /**
   * Applies `edit` to a user's index with compare-and-set, dropping members whose reach has
   * passed, and retries while other writers change the index first.
   */
  async #edit(userId: string, edit: (members: Map<string, number>) => void): Promise<void> {
    const indexKey = this.#indexKey(userId);
    const wire = this.#wire;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await delay(Math.random() * Math.min(20, 2 ** attempt));
      const item = await wire.fetch(indexKey);
      const members = item === null ? new Map<string, number>() : decodeIndex(item);
      const before = encodeIndex(members);
      edit(members);
      const now = this.#now();
      for (const [key, until] of members) if (!(until > now)) members.delete(key);
      const after = encodeIndex(members);
      const reach = Math.max(0, ...members.values());
      if (item === null) {
        if (members.size === 0) return;
        const added = await wire.write(Opcode.Add, indexKey, after, INDEX_FLAGS, reach);
        if (added.status === 'ok') return;
        continue;
      }
      if (after.equals(before)) return;
      if (members.size === 0) {
        if ((await wire.remove(indexKey, item.cas)) !== 'exists') return;
        continue;
      }
      const written = await wire.write(Opcode.Set, indexKey, after, INDEX_FLAGS, reach, item.cas);
      if (written.status === 'ok') return;
    }
    throw new Error('MemcachedStore: the user index kept changing under concurrent writers');
  }

  /**
   * The reach of the index entry a record written with `userId` and `expiresAt` needs (0 for
   * none), extending the entry first when the record as it was (`before`) is not covered.
   */
  async reach(
    key: string,
    userId: string | null,
    expiresAt: number,
    before: Snapshot | null,
  ): Promise<number> {
    if (userId === null || !(expiresAt > this.#now())) return 0;
    if (before !== null && before.userId === userId && expiresAt <= before.indexedUntil) {
      return before.indexedUntil;
    }
    const until = expiresAt + this.#margin;
    await this.#edit(userId, (members) => {
      if (!((members.get(key) ?? 0) >= until)) members.set(key, until);
    });
    return until;
  }

  /** Every live record of `userId` the index lists: two round trips. */
  async list(userId: string): Promise<UserRecord[]> {
    const item = await this.#wire.fetch(this.#indexKey(userId));
    if (item === null) return [];
    const now = this.#now();
    const keys = [...decodeIndex(item)].filter(([, until]) => until > now).map(([key]) => key);
    const records = await Promise.all(keys.map((key) => this.#records.readLive(key)));
    const rows: UserRecord[] = [];
    records.forEach((record, i) => {
      if (record === null || record.userId !== userId) return;
      rows.push({
        key: keys[i]!,
        data: record.data,
        expiresAt: record.expiresAt,
        userId,
        version: record.version,
      });
    });
    return rows;
  }

  /** Removes every record of `userId` the index lists but `exceptKey`'s; answers how many live ones. */
  async deleteAll(userId: string, exceptKey?: string): Promise<number> {
    const item = await this.#wire.fetch(this.#indexKey(userId));
    if (item === null) return 0;
    const keys = [...decodeIndex(item).keys()].filter((key) => key !== exceptKey);
    const outcomes = await Promise.all(keys.map((key) => this.#deleteOwned(key, userId)));
    const deleted = keys.filter((_, i) => outcomes[i] !== 'kept');
    if (deleted.length > 0) {
      // Only what was deleted here leaves the index: a member without a record may be a
      // create in progress, whose record must stay reachable.
      await this.#edit(userId, (members) => {
        for (const key of deleted) members.delete(key);
      }).catch(() => undefined);
    }
    return outcomes.filter((outcome) => outcome === 'live').length;
  }

  /** Deletes the record under `key` if it still belongs to `userId`; answers what it removed. */
  async #deleteOwned(key: string, userId: string): Promise<'live' | 'expired' | 'kept'> {
    const recordKey = this.#records.recordKey(key);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const item = await this.#wire.fetch(recordKey);
      if (item === null) return 'kept';
      const record = decodeRecord(item);
      if (record.userId !== userId) return 'kept';
      const removed = await this.#wire.remove(recordKey, item.cas);
      if (removed === 'missing') return 'kept';
      if (removed === 'ok') {
        this.#records.forget(key);
        return record.expiresAt > this.#now() ? 'live' : 'expired';
      }
    }
    throw new Error('MemcachedStore: a session kept changing while its user was being signed out');
  }
}
