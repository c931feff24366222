/**
 * The store contract.
 *
 * A store keeps session records under opaque string keys. It never sees a session ID: the
 * manager hands it the SHA-256 of the ID (43 characters of base64url), and the record's data is
 * an opaque string that the manager encodes (and, when configured, encrypts).
 *
 * Every method but the optional `getNow`, `createNow` and `updateNow` is a promise and must
 * settle within a bounded time; the manager also wraps each call in its own timeout. A store
 * signals trouble by rejecting: the manager turns any rejection into a `SessionError` with code
 * `STORE_UNAVAILABLE`.
 * A store must never answer "not found" because the server could not be reached.
 *
 * Expiry: each record carries one absolute expiry instant (`expiresAt`, epoch milliseconds).
 * A store must not return a record whose expiry has passed. Stores with native expiry (Redis,
 * Memcached) hand it to the server; the others compare against their clock and implement
 * {@link SessionStore.prune}. The manager checks `expiresAt` again on every load, so a store
 * that returns a stale record by a few milliseconds does no harm.
 *
 * Versions: `create` writes version 1 and every successful `update` increments it by one.
 * `update` is a compare-and-set: it succeeds only when the stored version equals the expected
 * one, and it never creates a record. This is what makes concurrent requests lossless and keeps
 * a logged-out session dead.
 *
 * The store conformance suite in `tessera-session/testing` checks all of this against a real server.
 *
 * @packageDocumentation
 */

/** What a store keeps for one session. */
export interface SessionRecord {
  /** The encoded session, opaque to the store (JSON, or an encrypted blob). */
  data: string;
  /** When the record stops existing, in epoch milliseconds. */
  expiresAt: number;
  /** The user the session belongs to, for the user index; `null` when anonymous. */
  userId: string | null;
}

/** A record as read back from a store: what was written, plus its version. */
export interface StoredRecord extends SessionRecord {
  /** 1 after `create`, one more after each successful `update`. */
  version: number;
}

/** A record found through the user index, with the key it is stored under. */
export interface UserRecord extends StoredRecord {
  /** The store key (the hash of the session ID, never the ID). */
  key: string;
}

/**
 * The answer of {@link SessionStore.update}.
 *
 * - `ok`: written; `version` is the new version.
 * - `conflict`: the record exists with another version; nothing was written.
 * - `missing`: no live record under the key; nothing was written (and nothing was created).
 */
export type UpdateResult =
  { status: 'ok'; version: number } | { status: 'conflict' } | { status: 'missing' };

/**
 * A session store. Implement these methods to keep sessions anywhere.
 *
 * @example A store is constructed by the application and handed to the manager:
 * ```ts
 * import { SessionManager } from 'tessera-session';
 * import { MemoryStore } from 'tessera-session/stores/memory';
 * const manager = new SessionManager({ store: new MemoryStore(), secrets: [process.env.SESSION_SECRET!] });
 * ```
 */
export interface SessionStore {
  /**
   * Reads the live record under `key`, or `null` when there is none or it has expired.
   * One round trip: this is all a read-only request costs.
   */
  get(key: string): Promise<StoredRecord | null>;

  /**
   * Optional: the same read as {@link SessionStore.get}, answered synchronously, for a store
   * whose reads never wait on I/O (in memory, or an embedded database with a synchronous
   * driver). When it is present, the manager reads through it and a request whose cookie it has
   * verified before gets its session without waiting a turn of the event loop, which saves the
   * promise and timeout machinery of an asynchronous call on every request. It must answer
   * exactly what `get` would, and signals trouble by throwing.
   * @defaultValue absent: every read goes through `get`
   */
  getNow?(key: string): StoredRecord | null;

  /**
   * Inserts a record with version 1. Answers `false`, writing nothing, when a live record
   * already exists under `key` (an expired one may be replaced).
   */
  create(key: string, record: SessionRecord): Promise<boolean>;

  /**
   * Optional: the same insert as {@link SessionStore.create}, answered synchronously. When it is
   * present and the crypto provider is synchronous (as `node:crypto` is), a new anonymous
   * session is stored and its cookie signed within the manager's `commitNow`, so the response
   * that starts a session goes out without waiting. A session created with a user goes through
   * `create`, because capping the user's sessions reads the user index. It must answer exactly
   * what `create` would, and signals trouble by throwing.
   * @defaultValue absent: every new session goes through `create`
   */
  createNow?(key: string, record: SessionRecord): boolean;

  /**
   * Replaces the record under `key` if and only if it exists, has not expired, and its version
   * equals `expectedVersion`; the new version is `expectedVersion + 1`. Never creates a record.
   * Moves the record between users' indexes when `userId` changes.
   */
  update(key: string, record: SessionRecord, expectedVersion: number): Promise<UpdateResult>;

  /**
   * Optional: the same compare-and-set as {@link SessionStore.update}, answered synchronously.
   * A store offers all three of `getNow`, `createNow` and `updateNow`, or none (the conformance
   * suite checks the set). When it is present, a request that changed its session and binds no
   * user (which caps the user's sessions) is saved within the manager's `commitNow`, and its
   * response goes out without waiting. On `conflict` or
   * `missing`, the manager saves through `update` as usual, which re-reads and re-applies the
   * request's changes. It must answer exactly what `update` would, and signals trouble by
   * throwing.
   * @defaultValue absent: every save goes through `update`
   */
  updateNow?(key: string, record: SessionRecord, expectedVersion: number): UpdateResult;

  /**
   * Sets the expiry of the live record under `key` to `expiresAt`, leaving data and version
   * alone. Answers `false` when there is no live record; never creates one.
   */
  touch(key: string, expiresAt: number): Promise<boolean>;

  /** Removes the record under `key`, if any. Removing a missing record is not an error. */
  delete(key: string): Promise<void>;

  /** Every live record of `userId`, in no particular order. */
  listByUser(userId: string): Promise<UserRecord[]>;

  /**
   * Removes every record of `userId` except the one under `exceptKey`, and answers how many
   * live records were removed (expired ones may be removed too, but are not counted).
   */
  deleteByUser(userId: string, exceptKey?: string): Promise<number>;

  /**
   * Removes expired records and answers how many. Only stores without native expiry need it;
   * such stores usually also prune on a timer that does not hold the process open.
   */
  prune?(): Promise<number>;

  /** Releases timers the store owns. It does not close a client the application passed in. */
  close?(): Promise<void>;
}
