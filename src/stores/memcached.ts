/**
 * A session store on Memcached, through a `memjs` client the application creates.
 *
 * @packageDocumentation
 */
import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserRecord,
} from '../store.js';
import { MAX_TIMER_DELAY, clockOption, invalidOption, numberOption } from '../options.js';
import {
  encodeRecord,
  decodeRecord,
  RECORD_FLAGS,
  type Decoded,
  type Snapshot,
} from './memcached/format.js';
import {
  MAX_ATTEMPTS,
  MemcachedWire,
  Opcode,
  type MemcachedClient,
  type WriteOutcome,
} from './memcached/protocol.js';
import { MemcachedUserIndex } from './memcached/user-index.js';
import { clientOption, indexMarginOption, optionsObject } from './shared.js';

export type { MemcachedClient } from './memcached/protocol.js';

/** Options of {@link MemcachedStore}. */
export interface MemcachedStoreOptions {
  /**
   * A `memjs` client the application created and owns (servers, timeouts, SASL credentials);
   * the store never closes it. Keep memjs's `failover` off: a failed-over request reads another
   * server, where every session looks missing.
   *
   * @example
   * ```ts
   * import memjs from 'memjs';
   * const client = memjs.Client.create('127.0.0.1:11211', { timeout: 0.5, retries: 2, keepAlive: true });
   * ```
   */
  client: MemcachedClient;
  /**
   * Prepended to every key, so that several applications (or tests) can share a server.
   * Printable ASCII without spaces, at most 200 characters.
   * @defaultValue `'tessera:'`
   */
  prefix?: string;
  /**
   * `'best-effort'` keeps a user index (`listByUser` and `deleteByUser`), so that the manager can
   * list a user's sessions, revoke them all and cap them (`maxSessionsPerUser`). Memcached may
   * evict an index item like any other, and then the sessions it listed escape all three until
   * they are written again: "sign out everywhere" may leave a session signed in. Without it the
   * store has no user index, and the manager refuses those calls with `UNSUPPORTED`. Where
   * ending every session of a user must be guaranteed, use Redis or an SQL store.
   * @defaultValue `false`: no user index
   */
  userIndex?: false | 'best-effort';
  /**
   * With `userIndex`: how far past a session's expiry its entry in the user index reaches, in
   * milliseconds, a whole number from 0 to 365 days. A touch or update rewrites the index only
   * when the session would outlive its entry, so a larger margin means fewer index writes and a
   * longer-lived entry after the session ends.
   * @defaultValue 3_600_000 (one hour)
   */
  indexMargin?: number;
  /**
   * How many CAS tokens, from the last read or write of a key, this store keeps, so that an
   * update right after a read costs one round trip instead of two. The server still checks
   * every token, so a stale one only costs the second round trip. `0` turns this off.
   * @defaultValue 10_000
   */
  casCacheSize?: number;
  /**
   * The longest one request may take, in milliseconds, before the store call rejects. memjs
   * fails requests on its own timeouts; this is a backstop for the requests memjs 1.3 can leave
   * unanswered after an outage (when an old connection closes after a new one opened). Keep it
   * above memjs's own worst case, `retries × (conntimeout + timeout)` plus the retry delays.
   * @defaultValue 5_000
   */
  requestTimeout?: number;
  /**
   * The clock, in epoch milliseconds. Memcached drops items on its own clock, with one-second
   * granularity; reads also compare `expiresAt` with this clock, to the millisecond.
   * @defaultValue `Date.now`
   */
  now?: () => number;
}

const OWNER = 'MemcachedStore';

const PREFIX_PATTERN = /^[\x21-\x7e]{0,200}$/;

/**
 * Keeps sessions in Memcached, which expires them natively. Each session is one item,
 * `{prefix}s:{key}`, holding its version, expiry, user and data; every write is an ADD or a
 * compare-and-set (binary protocol, CAS token), so concurrent writers never lose each other's
 * work and an update never brings back a deleted session.
 *
 * Round trips: `get` one; `create` one; `update` one right after this store read the key (two
 * otherwise); `touch` two; `delete` one. With `userIndex: 'best-effort'`, writing a session's
 * user into the index costs two more, when the session first gets its user and when its expiry
 * passes its index entry.
 *
 * Memcached is a cache: under memory pressure it may evict a session (the user is signed out).
 * It may evict a user index too, which is why the store keeps one only when asked (see
 * {@link MemcachedStoreOptions.userIndex}).
 *
 * @example
 * ```ts
 * import memjs from 'memjs';
 * import { SessionManager } from 'tessera-session';
 * import { MemcachedStore } from 'tessera-session/stores/memcached';
 *
 * const client = memjs.Client.create('127.0.0.1:11211', { timeout: 0.5, retries: 2, keepAlive: true });
 * const store = new MemcachedStore({ client, prefix: 'myapp:' });
 * const manager = new SessionManager({ store, secrets: [process.env.SESSION_SECRET!] });
 * ```
 */
export class MemcachedStore implements SessionStore {
  readonly name = 'memcached';
  /**
   * Every live record of `userId`: present with `userIndex: 'best-effort'` only, and then it
   * misses sessions whose index item Memcached evicted.
   */
  readonly listByUser?: (userId: string) => Promise<UserRecord[]>;
  /**
   * Removes every record of `userId` but `exceptKey`'s and answers how many live ones: present
   * with `userIndex: 'best-effort'` only, and then it misses sessions whose index item Memcached
   * evicted.
   */
  readonly deleteByUser?: (userId: string, exceptKey?: string) => Promise<number>;
  readonly #wire: MemcachedWire;
  readonly #prefix: string;
  readonly #index: MemcachedUserIndex | undefined;
  readonly #casCacheSize: number;
  readonly #now: () => number;
  readonly #snapshots = new Map<string, Snapshot>();

  /** Validates the options; a bad one throws `SessionError` with code `INVALID_OPTION`. */
  constructor(options: MemcachedStoreOptions) {
    optionsObject(OWNER, options, 'a memjs client');
    const client = clientOption<MemcachedClient>(
      OWNER,
      'client',
      options.client,
      ['perform', 'incrSeq'],
      'a memjs Client',
    );
    const prefix = options.prefix ?? 'tessera:';
    if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
      invalidOption(OWNER, 'prefix must be printable ASCII without spaces, at most 200 characters');
    }
    const userIndex = options.userIndex ?? false;
    if (userIndex !== false && userIndex !== 'best-effort') {
      invalidOption(OWNER, "userIndex must be 'best-effort' (Memcached may evict it) or false");
    }
    const margin = indexMarginOption(OWNER, 'indexMargin', options.indexMargin);
    this.#casCacheSize = numberOption(OWNER, 'casCacheSize', options.casCacheSize, 10_000, {
      integer: true,
    });
    const requestTimeout = numberOption(OWNER, 'requestTimeout', options.requestTimeout, 5_000, {
      exclusiveMin: true,
      max: MAX_TIMER_DELAY,
    });
    this.#now = clockOption(OWNER, options.now);
    this.#prefix = prefix;
    this.#wire = new MemcachedWire(client, requestTimeout, this.#now);
    if (userIndex === 'best-effort') {
      const index = new MemcachedUserIndex(
        this.#wire,
        { prefix, margin, now: this.#now },
        {
          readLive: (key) => this.#readLive(key),
          recordKey: (key) => this.#recordKey(key),
          forget: (key) => this.#forget(key),
        },
      );
      this.#index = index;
      this.listByUser = (userId) => index.list(userId);
      this.deleteByUser = (userId, exceptKey) => index.deleteAll(userId, exceptKey);
    }
  }

  #recordKey(key: string): string {
    return `${this.#prefix}s:${key}`;
  }

  #remember(key: string, snapshot: Snapshot): void {
    if (this.#casCacheSize === 0) return;
    this.#snapshots.delete(key);
    this.#snapshots.set(key, snapshot);
    while (this.#snapshots.size > this.#casCacheSize) {
      const oldest = this.#snapshots.keys().next();
      if (oldest.done === true) break;
      this.#snapshots.delete(oldest.value);
    }
  }

  #forget(key: string): void {
    this.#snapshots.delete(key);
  }

  /** Reads the record under `key` if it is live on this store's clock. */
  async #readLive(key: string): Promise<(Decoded & { cas: Buffer }) | null> {
    const item = await this.#wire.fetch(this.#recordKey(key));
    const record = item === null ? null : decodeRecord(item);
    if (item === null || record === null || !(record.expiresAt > this.#now())) {
      this.#forget(key);
      return null;
    }
    const { data: _data, ...snapshot } = record;
    this.#remember(key, { ...snapshot, cas: item.cas });
    return { ...record, cas: item.cas };
  }

  /** The index reach a record needs: 0 without a user index (see `MemcachedUserIndex.reach`). */
  async #indexFor(
    key: string,
    userId: string | null,
    expiresAt: number,
    before: Snapshot | null,
  ): Promise<number> {
    return this.#index === undefined ? 0 : this.#index.reach(key, userId, expiresAt, before);
  }

  /** Compare-and-set of a whole record over `before`. */
  async #replace(key: string, before: Snapshot, next: Decoded): Promise<WriteOutcome> {
    const outcome = await this.#wire.write(
      Opcode.Set,
      this.#recordKey(key),
      encodeRecord(next),
      RECORD_FLAGS,
      next.expiresAt,
      before.cas,
    );
    if (outcome.status === 'ok') {
      const { data: _data, ...snapshot } = next;
      this.#remember(key, { ...snapshot, cas: outcome.cas });
    } else if (outcome.status === 'missing') {
      this.#forget(key);
    }
    return outcome;
  }

  async get(key: string): Promise<StoredRecord | null> {
    const record = await this.#readLive(key);
    if (record === null) return null;
    return {
      data: record.data,
      expiresAt: record.expiresAt,
      userId: record.userId,
      version: record.version,
    };
  }

  async create(key: string, record: SessionRecord): Promise<boolean> {
    // The index entry goes first: a live record is then always reachable through its user.
    const indexedUntil = await this.#indexFor(key, record.userId, record.expiresAt, null);
    const next: Decoded = { ...record, version: 1, indexedUntil };
    const { data: _data, ...snapshot } = next;
    const value = encodeRecord(next);
    const recordKey = this.#recordKey(key);
    const wire = this.#wire;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const added = await wire.write(Opcode.Add, recordKey, value, RECORD_FLAGS, record.expiresAt);
      if (added.status === 'ok') {
        this.#remember(key, { ...snapshot, cas: added.cas });
        return true;
      }
      // Memcached counts whole seconds: an item this clock finds expired may still be there.
      const item = await wire.fetch(recordKey);
      if (item === null) continue;
      if (decodeRecord(item).expiresAt > this.#now()) return false;
      const replaced = await wire.write(
        Opcode.Set,
        recordKey,
        value,
        RECORD_FLAGS,
        record.expiresAt,
        item.cas,
      );
      if (replaced.status === 'ok') {
        this.#remember(key, { ...snapshot, cas: replaced.cas });
        return true;
      }
    }
    throw new Error('MemcachedStore: create kept racing with other writers of the key');
  }

  async update(key: string, record: SessionRecord, expectedVersion: number): Promise<UpdateResult> {
    const cached = this.#snapshots.get(key);
    let before: Snapshot | null =
      cached !== undefined && cached.version === expectedVersion && cached.expiresAt > this.#now()
        ? cached
        : null;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (before === null) {
        const current = await this.#readLive(key);
        if (current === null) return { status: 'missing' };
        if (current.version !== expectedVersion) return { status: 'conflict' };
        before = current;
      }
      const indexedUntil = await this.#indexFor(key, record.userId, record.expiresAt, before);
      const next: Decoded = { ...record, version: expectedVersion + 1, indexedUntil };
      const outcome = await this.#replace(key, before, next);
      if (outcome.status === 'ok') return { status: 'ok', version: next.version };
      if (outcome.status === 'missing') return { status: 'missing' };
      // The item changed since it was read: a newer version (a conflict) or only a touch.
      before = null;
    }
    throw new Error('MemcachedStore: update kept racing with other writers of the key');
  }

  async touch(key: string, expiresAt: number): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.#readLive(key);
      if (current === null) return false;
      const indexedUntil = await this.#indexFor(key, current.userId, expiresAt, current);
      const outcome = await this.#replace(key, current, { ...current, expiresAt, indexedUntil });
      if (outcome.status === 'ok') return true;
      if (outcome.status === 'missing') return false;
    }
    throw new Error('MemcachedStore: touch kept racing with other writers of the key');
  }

  async delete(key: string): Promise<void> {
    this.#forget(key);
    await this.#wire.remove(this.#recordKey(key));
  }

  /** Forgets the CAS tokens this store kept. It does not close the client, which the application owns. */
  async close(): Promise<void> {
    this.#snapshots.clear();
  }
}
