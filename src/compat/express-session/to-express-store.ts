/**
 * The bridge from Tessera to express-session: an express-session store over any Tessera
 * {@link SessionStore}, for express-session or this module's middleware.
 *
 * @packageDocumentation
 */
import { nodeCryptoProvider } from '../../crypto-node.js';
import { SessionError } from '../../errors.js';
import { hasUserIndex, type SessionRecord, type SessionStore } from '../../store.js';
import { storeKeyFor } from '../../token.js';
import type { SessionData } from './store.js';
import { Store } from './store.js';

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

const crypto = nodeCryptoProvider();

/** The key a session ID is kept under: the manager's (SHA-256, base64url). */
function keyFor(sid: string): string {
  // The node:crypto provider answers at once.
  return storeKeyFor(crypto, sid) as string;
}

function settle<T>(
  work: T | Promise<T>,
  callback: ((err: any, value?: T) => void) | undefined,
): void {
  Promise.resolve(work).then(
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
    settle(
      (async () => {
        await this.#store.delete(keyFor(sid));
      })(),
      callback,
    );
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
    const store = this.#store;
    if (!hasUserIndex(store)) {
      return Promise.reject(
        new SessionError('UNSUPPORTED', 'destroyUserSessions needs a store with a user index'),
      );
    }
    return Promise.resolve(
      store.deleteByUser(userId, exceptSid === undefined ? undefined : keyFor(exceptSid)),
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
