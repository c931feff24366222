/**
 * The store contract. A store keeps records under opaque keys (the SHA-256 of a session ID,
 * never the ID) and never reads their `data`.
 *
 * - Answers: every method answers a value or a promise of one. A store that answers values
 *   (memory, SQLite) lets a request through without waiting; the manager bounds a promise by its
 *   `storeTimeout`. Trouble is a throw or a rejection (reported as `STORE_UNAVAILABLE`), never
 *   "not found" for a server that could not be reached.
 * - Expiry: a record lives until `expiresAt` (epoch ms); no method returns, updates or touches
 *   one past it. The manager checks it again on every read.
 * - Versions: `create` writes version 1; `update` is a compare-and-set that writes the next
 *   version and never creates, so concurrent requests lose nothing and a deleted session stays
 *   dead.
 * - User index: an optional capability, {@link UserIndex}, that a store offers where it can keep
 *   it exact (or where the application asked for less, as Memcached's `userIndex: 'best-effort'`).
 *   Without it the manager refuses to list, revoke or cap a user's sessions (`UNSUPPORTED`);
 *   {@link hasUserIndex} tells whether a store has it.
 *
 * `defineStoreConformance` in `tessera-session/testing` checks all of this on a real server.
 *
 * @packageDocumentation
 */
import type { MaybePromise } from './maybe.js';

export type { MaybePromise } from './maybe.js';

/** What a store keeps for one session. */
export interface SessionRecord {
  /** The encoded session, opaque to the store. */
  data: string;
  /** When the record stops existing, in epoch milliseconds. */
  expiresAt: number;
  /** The user the session belongs to (`null` when anonymous), for the user index. */
  userId: string | null;
}

/** A record as read back, with its version (1 after `create`, one more per `update`). */
export interface StoredRecord extends SessionRecord {
  version: number;
}

/** A record found through the user index, with its store key. */
export interface UserRecord extends StoredRecord {
  key: string;
}

/** What `update` did: `ok` with the new version, or nothing (`conflict`: another version). */
export type UpdateResult =
  { status: 'ok'; version: number } | { status: 'conflict' } | { status: 'missing' };

/**
 * A session store.
 *
 * @example
 * ```ts
 * const manager = new SessionManager({ store: new MemoryStore(), secrets: [process.env.SESSION_SECRET!] });
 * ```
 */
export interface SessionStore {
  /**
   * What kind of store this is, for the `storeError` event, metrics and traces: the server's
   * name as OpenTelemetry knows it (`'postgresql'`, `'mysql'`, `'redis'`, `'memcached'`,
   * `'sqlite'`), or `'memory'`. Never an address or a key. @defaultValue absent: reported as
   * `'custom'`
   */
  readonly name?: string;
  /** The live record under `key`, or `null`. A read-only request costs this one call. */
  get(key: string): MaybePromise<StoredRecord | null>;
  /** Inserts at version 1; `false`, writing nothing, when a live record holds `key`. */
  create(key: string, record: SessionRecord): MaybePromise<boolean>;
  /** Replaces the live record if its version is `expectedVersion` (see {@link UpdateResult}). */
  update(key: string, record: SessionRecord, expectedVersion: number): MaybePromise<UpdateResult>;
  /** Moves a live record's expiry, nothing else; `false` when there is none. */
  touch(key: string, expiresAt: number): MaybePromise<boolean>;
  /** Removes the record, if any. */
  delete(key: string): MaybePromise<void>;
  /** Removes expired records, for stores without native expiry. @defaultValue absent */
  prune?(): MaybePromise<number>;
  /** Releases the store's timers, not a client it was given. @defaultValue absent */
  close?(): MaybePromise<void>;
}

/**
 * The optional user index: listing and removing a user's sessions, for
 * `SessionManager.listUserSessions`, `revokeUserSessions` and `maxSessionsPerUser`. A store
 * offers both methods or neither, and by default only when every live record with a user is
 * found through them: "sign out everywhere" must not miss a session.
 */
export interface UserIndex {
  /** Every live record of `userId`, with its key. */
  listByUser(userId: string): MaybePromise<UserRecord[]>;
  /** Removes every record of `userId` but `exceptKey`'s; answers how many live ones. */
  deleteByUser(userId: string, exceptKey?: string): MaybePromise<number>;
}

/**
 * Whether `store` offers the {@link UserIndex} capability (both of its methods).
 *
 * @example
 * ```ts
 * if (hasUserIndex(store)) await store.deleteByUser(userId);
 * ```
 */
export function hasUserIndex<Store extends SessionStore>(store: Store): store is Store & UserIndex {
  const methods = store as Partial<UserIndex>;
  return typeof methods.listByUser === 'function' && typeof methods.deleteByUser === 'function';
}
