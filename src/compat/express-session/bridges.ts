/**
 * Store bridges between express-session's store interface and Tessera's {@link SessionStore}.
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { SessionError } from '../../errors.js';
import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserRecord,
} from '../../store.js';
import type { StoreLike } from './middleware.js';
import type { SessionData } from './store.js';
import { Store } from './store.js';

/** A store callback turned into a promise: answered once, by callback, rejection or throw. */
function invoke<T>(target: object, method: string, args: unknown[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const callback = (err?: unknown, value?: unknown) => {
      if (settled) return;
      settled = true;
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(value as T);
    };
    try {
      const fn = (target as Record<string, (...a: unknown[]) => unknown>)[method]!;
      const result = fn.apply(target, [...args, callback]) as Promise<unknown> | undefined;
      if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
        result.then(undefined, callback);
      }
    } catch (error) {
      callback(error);
    }
  });
}

/** Runs operations on one key one after another, so that this process never races itself. */
class KeyLocks {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await operation();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/** What the bridge keeps in an express-session store for one Tessera record. */
interface BridgedRecord {
  v: 1;
  key: string;
  data: string;
  expiresAt: number;
  userId: string | null;
  version: number;
}

function bridgedOf(value: unknown): BridgedRecord | null {
  if (typeof value !== 'object' || value === null) return null;
  const record = (value as { tessera?: unknown }).tessera as Partial<BridgedRecord> | undefined;
  if (typeof record !== 'object' || record === null || record.v !== 1) return null;
  if (
    typeof record.data !== 'string' ||
    typeof record.expiresAt !== 'number' ||
    typeof record.version !== 'number'
  ) {
    return null;
  }
  if (record.userId !== null && typeof record.userId !== 'string') return null;
  return record as BridgedRecord;
}

/** Options of {@link fromExpressSessionStore}. */
export interface ExpressStoreBridgeOptions {
  /** The clock, in epoch milliseconds, expiry is checked against. @defaultValue `Date.now` */
  now?: () => number;
}

/**
 * A Tessera {@link SessionStore} over an express-session store. See {@link fromExpressSessionStore}.
 */
export class ExpressStoreBridge implements SessionStore {
  readonly #store: StoreLike;
  readonly #now: () => number;
  readonly #locks = new KeyLocks();

  /** Wraps `store`; prefer {@link fromExpressSessionStore}. */
  constructor(store: StoreLike, options: ExpressStoreBridgeOptions = {}) {
    if (
      typeof store !== 'object' ||
      store === null ||
      typeof store.get !== 'function' ||
      typeof store.set !== 'function'
    ) {
      throw new SessionError(
        'INVALID_OPTION',
        'fromExpressSessionStore: give an express-session store',
      );
    }
    this.#store = store;
    this.#now = options.now ?? Date.now;
  }

  async #read(key: string): Promise<BridgedRecord | null> {
    let value: unknown;
    try {
      value = await invoke(this.#store, 'get', [key]);
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ENOENT') return null;
      throw error;
    }
    const record = bridgedOf(value);
    return record === null || record.expiresAt <= this.#now() ? null : record;
  }

  async #write(key: string, record: SessionRecord, version: number): Promise<void> {
    const remaining = record.expiresAt - this.#now();
    if (remaining <= 0) {
      await invoke(this.#store, 'destroy', [key]);
      return;
    }
    const bridged: BridgedRecord = {
      v: 1,
      key,
      data: record.data,
      expiresAt: record.expiresAt,
      userId: record.userId,
      version,
    };
    // A cookie shaped like express-session's, so that stores with native expiry (connect-redis,
    // memorystore, ...) derive their TTL from it.
    const cookie = {
      originalMaxAge: remaining,
      maxAge: remaining,
      expires: new Date(record.expiresAt),
      httpOnly: true,
      path: '/',
    };
    await invoke(this.#store, 'set', [key, { cookie, tessera: bridged }]);
  }

  #stored(record: BridgedRecord): StoredRecord {
    return {
      data: record.data,
      expiresAt: record.expiresAt,
      userId: record.userId,
      version: record.version,
    };
  }

  async get(key: string): Promise<StoredRecord | null> {
    const record = await this.#read(key);
    return record === null ? null : this.#stored(record);
  }

  create(key: string, record: SessionRecord): Promise<boolean> {
    return this.#locks.run(key, async () => {
      if ((await this.#read(key)) !== null) return false;
      await this.#write(key, record, 1);
      return true;
    });
  }

  update(key: string, record: SessionRecord, expectedVersion: number): Promise<UpdateResult> {
    return this.#locks.run(key, async (): Promise<UpdateResult> => {
      const current = await this.#read(key);
      if (current === null) return { status: 'missing' };
      if (current.version !== expectedVersion) return { status: 'conflict' };
      await this.#write(key, record, expectedVersion + 1);
      return { status: 'ok', version: expectedVersion + 1 };
    });
  }

  touch(key: string, expiresAt: number): Promise<boolean> {
    return this.#locks.run(key, async () => {
      const current = await this.#read(key);
      if (current === null) return false;
      // express-session stores' own touch() may move only a TTL and leave the stored expiry behind,
      // so the record is written again.
      await this.#write(
        key,
        { data: current.data, expiresAt, userId: current.userId },
        current.version,
      );
      return true;
    });
  }

  async delete(key: string): Promise<void> {
    await this.#locks.run(key, () => invoke(this.#store, 'destroy', [key]));
  }

  async #all(): Promise<BridgedRecord[]> {
    if (typeof (this.#store as { all?: unknown }).all !== 'function') {
      throw new SessionError(
        'INVALID_OPTION',
        "this express-session store has no all(): listing and revoking a user's sessions are not available",
      );
    }
    const answer = await invoke<unknown>(this.#store, 'all', []);
    const values = Array.isArray(answer)
      ? answer
      : typeof answer === 'object' && answer !== null
        ? Object.values(answer)
        : [];
    const now = this.#now();
    const records: BridgedRecord[] = [];
    for (const value of values) {
      const record = bridgedOf(value);
      if (record !== null && typeof record.key === 'string' && record.expiresAt > now)
        records.push(record);
    }
    return records;
  }

  async listByUser(userId: string): Promise<UserRecord[]> {
    const records = await this.#all();
    return records
      .filter((record) => record.userId === userId)
      .map((record) => ({ key: record.key, ...this.#stored(record) }));
  }

  async deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    let removed = 0;
    for (const record of await this.#all()) {
      if (record.userId !== userId || record.key === exceptKey) continue;
      await this.delete(record.key);
      removed++;
    }
    return removed;
  }

  /** Does nothing: the application closes the store it made. */
  async close(): Promise<void> {}
}

/**
 * Runs Tessera's {@link SessionManager} (and every Tessera adapter) on an existing express-session
 * store: connect-redis, connect-pg-simple, connect-mongo, ... Each Tessera record is kept under its
 * store key (the SHA-256 of the session ID, never the ID) as `{ cookie, tessera }`, the `cookie`
 * carrying the expiry so that stores with native expiry apply it.
 *
 * Weaker than a native Tessera store, because express-session stores have no compare-and-set:
 * - `create`, `update` and `touch` read and then write. Operations on one key are serialized
 *   within this process, so one server never loses its own concurrent writes; two processes
 *   updating one session at the same instant can still both "win", the later write replacing the
 *   earlier one, and a `create` racing a `delete` from another process can bring a record back.
 * - `touch` rewrites the whole record (a store's own `touch` may move only a TTL).
 * - Listing and revoking a user's sessions (`listUserSessions`, `revokeUserSessions`,
 *   `maxSessionsPerUser`) read every session through the store's `all()`: a full scan. A store
 *   without `all()` rejects those calls.
 *
 * @example With connect-redis:
 * ```ts
 * import { RedisStore } from 'connect-redis';
 * import { SessionManager } from 'tessera-session';
 * import { fromExpressSessionStore } from 'tessera-session/express-session';
 *
 * const store = fromExpressSessionStore(new RedisStore({ client: redisClient, prefix: 'sess:' }));
 * const manager = new SessionManager({ store, secrets: [process.env.SESSION_SECRET!] });
 * ```
 */
export function fromExpressSessionStore(
  store: StoreLike,
  options: ExpressStoreBridgeOptions = {},
): ExpressStoreBridge {
  return new ExpressStoreBridge(store, options);
}

/** Options of {@link toExpressSessionStore}. */
export interface TesseraStoreAdapterOptions {
  /**
   * How long a session whose cookie has no expiry (a browser-session cookie) is kept, in
   * milliseconds. Tessera stores need an expiry for every record.
   * @defaultValue 86_400_000 (one day)
   */
  ttl?: number;
  /**
   * Tells which user a session belongs to, so that the Tessera store's user index is filled and
   * {@link TesseraStoreAdapter.destroyUserSessions} works.
   * @defaultValue none: sessions are anonymous to the store
   */
  userIdOf?: (session: SessionData) => string | null | undefined;
  /** The clock, in epoch milliseconds. @defaultValue `Date.now` */
  now?: () => number;
}

/** The key a session ID is kept under: SHA-256, base64url, as Tessera's manager does. */
function keyFor(sid: string): string {
  return createHash('sha256').update(sid).digest('base64url');
}

function settle<T>(work: Promise<T>, callback: ((err: any, value?: T) => void) | undefined): void {
  work.then(
    (value) => callback?.(null, value),
    (error: unknown) => callback?.(error),
  );
}

/**
 * An express-session store over a Tessera {@link SessionStore}. See {@link toExpressSessionStore}.
 */
export class TesseraStoreAdapter extends Store {
  readonly #store: SessionStore;
  readonly #ttl: number;
  readonly #userIdOf: ((session: SessionData) => string | null | undefined) | undefined;
  readonly #now: () => number;

  /** Wraps `store`; prefer {@link toExpressSessionStore}. */
  constructor(store: SessionStore, options: TesseraStoreAdapterOptions = {}) {
    super();
    if (
      typeof store !== 'object' ||
      store === null ||
      typeof store.get !== 'function' ||
      typeof store.update !== 'function'
    ) {
      throw new SessionError(
        'INVALID_OPTION',
        'toExpressSessionStore: give a Tessera SessionStore',
      );
    }
    const ttl = options.ttl ?? 86_400_000;
    if (!(Number.isFinite(ttl) && ttl > 0))
      throw new SessionError('INVALID_OPTION', 'ttl must be a positive number of milliseconds');
    this.#store = store;
    this.#ttl = ttl;
    this.#userIdOf = options.userIdOf;
    this.#now = options.now ?? Date.now;
  }

  #expiryOf(session: SessionData): number {
    const expires = (session?.cookie as { expires?: unknown } | undefined)?.expires;
    if (expires === undefined || expires === null || expires === false)
      return this.#now() + this.#ttl;
    const instant = new Date(expires as string | Date).valueOf();
    return Number.isNaN(instant) ? this.#now() : instant;
  }

  #recordOf(session: SessionData): SessionRecord {
    const userId = this.#userIdOf?.(session);
    return {
      data: JSON.stringify(session),
      expiresAt: this.#expiryOf(session),
      userId: typeof userId === 'string' && userId.length > 0 ? userId : null,
    };
  }

  override get(sid: string, callback: (err: any, session?: SessionData | null) => void): void {
    settle(
      (async () => {
        const record = await this.#store.get(keyFor(sid));
        if (record === null) return null;
        try {
          return JSON.parse(record.data) as SessionData;
        } catch {
          return null;
        }
      })(),
      callback,
    );
  }

  override set(sid: string, session: SessionData, callback?: (err?: any) => void): void {
    settle(
      (async () => {
        const key = keyFor(sid);
        const record = this.#recordOf(session);
        if (record.expiresAt <= this.#now()) {
          await this.#store.delete(key);
          return;
        }
        // An upsert, last write wins as express-session expects; a version conflict just retries.
        for (let attempt = 0; attempt < 16; attempt++) {
          const current = await this.#store.get(key);
          if (current === null) {
            if (await this.#store.create(key, record)) return;
            continue;
          }
          const result = await this.#store.update(key, record, current.version);
          if (result.status === 'ok') return;
        }
        throw new SessionError(
          'WRITE_CONFLICT',
          'the session kept changing while it was being saved',
        );
      })(),
      callback,
    );
  }

  override touch(sid: string, session: SessionData, callback?: (err?: any) => void): void {
    settle(
      (async () => {
        await this.#store.touch(keyFor(sid), this.#expiryOf(session));
      })(),
      callback,
    );
  }

  override destroy(sid: string, callback?: (err?: any) => void): void {
    settle(this.#store.delete(keyFor(sid)), callback);
  }

  /**
   * Destroys every session of a user (logout everywhere), optionally all but the one with session
   * ID `exceptSid`; answers how many. Needs the `userIdOf` option.
   */
  destroyUserSessions(userId: string, exceptSid?: string): Promise<number> {
    if (this.#userIdOf === undefined) {
      return Promise.reject(
        new SessionError('INVALID_OPTION', 'destroyUserSessions needs the userIdOf option'),
      );
    }
    return this.#store.deleteByUser(
      userId,
      exceptSid === undefined ? undefined : keyFor(exceptSid),
    );
  }
}

/**
 * Runs express-session (or Tessera's drop-in) on any Tessera store: Tessera's memory, SQLite,
 * PostgreSQL, MySQL, Redis and Memcached stores, with their bounded memory, native expiry and
 * timeouts. The store sees only the SHA-256 of each session ID. A session's expiry is its cookie's
 * `expires`, or `ttl` for a browser-session cookie.
 *
 * `all`, `length` and `clear` are not offered (the Tessera store contract has no enumeration);
 * express-session never calls them.
 *
 * @example
 * ```ts
 * import session from 'express-session';
 * import { MemoryStore } from 'tessera-session/stores/memory';
 * import { toExpressSessionStore } from 'tessera-session/express-session';
 *
 * app.use(session({ secret, store: toExpressSessionStore(new MemoryStore()), resave: false, saveUninitialized: false }));
 * ```
 */
export function toExpressSessionStore(
  store: SessionStore,
  options: TesseraStoreAdapterOptions = {},
): TesseraStoreAdapter {
  return new TesseraStoreAdapter(store, options);
}
