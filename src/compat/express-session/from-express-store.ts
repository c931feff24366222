/**
 * The bridge from an express-session store to Tessera: a {@link SessionStore} over any store
 * written for express-session, for Tessera's manager and adapters.
 *
 * @packageDocumentation
 */
import { SessionError } from '../../errors.js';
import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserRecord,
} from '../../store.js';
import { inLane } from './lanes.js';
import type { StoreLike } from './options.js';
import { callStore } from './store-call.js';

/** A store call as a promise: answered once, by callback, rejection or throw. */
function invoke<T>(target: object, method: string, args: unknown[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    callStore(target, method, args, (err, value) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(value as T);
    });
  });
}

/**
 * Runs `operation` once every operation on `key` queued before it (by this owner) has settled,
 * so that this process never races itself; the same lanes as the middleware's writes.
 */
function serialized<T>(owner: object, key: string, operation: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    inLane(owner, key, (_lane, release) => {
      operation().then(
        (value) => {
          release();
          resolve(value);
        },
        (error: unknown) => {
          release();
          reject(error);
        },
      );
    });
  });
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
  /**
   * The bridge's {@link SessionStore.name}, reported in `storeError` events, metrics and traces:
   * give the server's OpenTelemetry name (`'redis'`, `'postgresql'`, ...) to report it as a
   * native store would. A non-empty string.
   * @defaultValue `'express-session:'` and the wrapped store's class name
   * (`'express-session:RedisStore'`), or `'express-session'` for a store that is a plain object
   */
  name?: string;
}

/** The default name: the wrapped store's class, which says which package it came from. */
function defaultName(store: object): string {
  const constructor = (store as { constructor?: unknown }).constructor;
  const className =
    typeof constructor === 'function' && constructor !== Object ? constructor.name : '';
  return className === '' ? 'express-session' : `express-session:${className}`;
}

/**
 * A Tessera {@link SessionStore} over an express-session store. See {@link fromExpressSessionStore}.
 */
export class ExpressStoreBridge implements SessionStore {
  /** What kind of store this is: see {@link ExpressStoreBridgeOptions.name}. */
  readonly name: string;
  /**
   * Every live record of `userId`, read through the wrapped store's `all()` (a full scan):
   * present only when the wrapped store has `all()`.
   */
  declare readonly listByUser?: (userId: string) => Promise<UserRecord[]>;
  /**
   * Removes every record of `userId` but `exceptKey`'s and answers how many live ones, found
   * through the wrapped store's `all()` (a full scan): present only when it has `all()`.
   */
  declare readonly deleteByUser?: (userId: string, exceptKey?: string) => Promise<number>;
  readonly #store: StoreLike;
  readonly #now: () => number;

  /**
   * Wraps `store`; prefer {@link fromExpressSessionStore}. A bad store or option throws
   * `SessionError` with code `INVALID_OPTION`.
   */
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
    if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) {
      throw new SessionError(
        'INVALID_OPTION',
        'fromExpressSessionStore: name must be a non-empty string',
      );
    }
    this.#store = store;
    this.#now = options.now ?? Date.now;
    this.name = options.name ?? defaultName(store);
    // Without all() a user's sessions cannot be found: no user index, so the manager answers
    // UNSUPPORTED rather than "no sessions".
    if (typeof (store as { all?: unknown }).all === 'function') {
      this.listByUser = (userId) => this.#listByUser(userId);
      this.deleteByUser = (userId, exceptKey) => this.#deleteByUser(userId, exceptKey);
    }
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
    return serialized(this, key, async () => {
      if ((await this.#read(key)) !== null) return false;
      await this.#write(key, record, 1);
      return true;
    });
  }

  update(key: string, record: SessionRecord, expectedVersion: number): Promise<UpdateResult> {
    return serialized(this, key, async (): Promise<UpdateResult> => {
      const current = await this.#read(key);
      if (current === null) return { status: 'missing' };
      if (current.version !== expectedVersion) return { status: 'conflict' };
      await this.#write(key, record, expectedVersion + 1);
      return { status: 'ok', version: expectedVersion + 1 };
    });
  }

  touch(key: string, expiresAt: number): Promise<boolean> {
    return serialized(this, key, async () => {
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
    await serialized(this, key, () => invoke(this.#store, 'destroy', [key]));
  }

  async #all(): Promise<BridgedRecord[]> {
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

  async #listByUser(userId: string): Promise<UserRecord[]> {
    const records = await this.#all();
    return records
      .filter((record) => record.userId === userId)
      .map((record) => ({ key: record.key, ...this.#stored(record) }));
  }

  async #deleteByUser(userId: string, exceptKey?: string): Promise<number> {
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
 *   `maxSessionsPerUser`) read every session through the store's `all()`: a full scan. Over a
 *   store without `all()` the bridge has no user index, and the manager refuses those calls
 *   with `UNSUPPORTED`.
 *
 * The bridge's `name` (for `storeError` events, metrics and traces) is
 * {@link ExpressStoreBridgeOptions.name}, by default `'express-session:'` and the store's class
 * name.
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
