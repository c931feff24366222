/**
 * The Redis store's opt-in client-side cache: the sessions this process has read, kept in memory
 * until Redis says they changed. The client is created with `RESP: 3` and `emitInvalidate: true`,
 * so node-redis turns on client tracking (`CLIENT TRACKING ON`) on every connection it opens, and
 * emits an `invalidate` event for each tracked key another client (or this one) changes. A hit is
 * answered at once, without a promise, as the memory store answers.
 *
 * @packageDocumentation
 */
import type { StoredRecord } from '../../store.js';
import { invalidOption, numberOption } from '../../options.js';

/** Options of the Redis store's client-side cache (the store option `clientSideCache`). */
export interface RedisCacheOptions {
  /**
   * The most sessions kept; past it, the one read least recently goes. A whole number from 1 to
   * 10,000,000.
   * @defaultValue 10_000
   */
  maxEntries?: number;
  /**
   * How long a session is answered from memory before it is read from Redis again, in
   * milliseconds: a whole number from 1 to 86,400,000 (one day). It bounds how long a change made
   * elsewhere can go unseen when invalidations stop arriving without the connection failing
   * visibly (a network that drops packets silently).
   * @defaultValue 60_000 (one minute)
   */
  maxAge?: number;
}

/** The events the cache follows. */
type TrackingEvent = 'invalidate' | 'ready';
type TrackingListener = (key?: unknown) => void;

/**
 * What the cache needs of a node-redis v5 client from `createClient`: its options (checked), its
 * readiness, and its `invalidate` and `ready` events. All optional, since a store without the
 * cache needs none of it.
 */
export interface TrackingClient {
  /** The options the client was created with: `RESP`, `emitInvalidate`, `clientSideCache`. */
  readonly options?:
    { RESP?: unknown; emitInvalidate?: unknown; clientSideCache?: unknown } | undefined;
  /** Whether the client has a connection that has completed its handshake. */
  readonly isReady?: boolean;
  /** Adds an event listener. */
  on?(event: TrackingEvent, listener: TrackingListener): unknown;
  /** Removes an event listener. */
  off?(event: TrackingEvent, listener: TrackingListener): unknown;
}

const DEFAULT_MAX_ENTRIES = 10_000;
const MAX_ENTRIES = 10_000_000;
const DEFAULT_MAX_AGE = 60_000;
const MAX_AGE = 86_400_000;
const CLIENT_NEEDED = 'create the client with createClient({ RESP: 3, emitInvalidate: true })';

/** A cached answer (a record, or `null` for an absence) and the instant it must be read again. */
interface Entry {
  record: StoredRecord | null;
  readAgainAt: number;
}

/** A key being read from Redis: how many reads, and when it was last invalidated. */
interface Reading {
  readers: number;
  invalidatedAt: number;
}

/**
 * Sessions read from Redis, by Redis key: at most `maxEntries` (the one read least recently goes
 * first), each answered for at most `maxAge` after it was read. A read's
 * answer is kept only if nothing invalidated its key (or emptied the cache) while it was on its
 * way: an invalidation that arrives in the same network read as the answer is handled before the
 * code awaiting the answer runs, so without this check the old value would be kept.
 */
export class SessionCache {
  readonly #client: TrackingClient;
  readonly #max: number;
  readonly #maxAge: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #reading = new Map<string, Reading>();
  /** Counts reads started, invalidations and clears, to order them. */
  #tick = 0;
  #clearedAt = 0;
  readonly #onInvalidate: TrackingListener = (key) => {
    if (key === null || key === undefined) this.clear();
    else this.invalidate(String(key));
  };
  readonly #onReady: TrackingListener = () => this.clear();

  /**
   * Starts following `client`'s invalidations; {@link SessionCache.detach} stops. `now` gives the
   * time in milliseconds for `maxAge` (default `Date.now`).
   */
  constructor(
    client: TrackingClient,
    options: Required<RedisCacheOptions>,
    now: () => number = Date.now,
  ) {
    this.#client = client;
    this.#max = options.maxEntries;
    this.#maxAge = options.maxAge;
    this.#now = now;
    client.on!('invalidate', this.#onInvalidate);
    // A new connection starts with nothing tracked: what was cached before it is not followed.
    client.on!('ready', this.#onReady);
  }

  /** How many sessions (or absences) are cached. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * A copy of the record cached under the Redis key `key`, `null` for a cached absence, or
   * `undefined` when nothing is cached, the entry is older than `maxAge`, or the client is not
   * ready (its connection lost, and the invalidations it would have received lost with it).
   */
  get(key: string): StoredRecord | null | undefined {
    const cached = this.#entries.get(key);
    if (cached === undefined || this.#client.isReady !== true) return undefined;
    this.#entries.delete(key);
    if (this.#now() >= cached.readAgainAt) return undefined;
    this.#entries.set(key, cached);
    return cached.record === null ? null : { ...cached.record };
  }

  /**
   * Answers what `reading` (a read of `key` from Redis, sent just now) answers, and keeps it for
   * next time unless `key` was invalidated, or the cache emptied, while it was on its way.
   */
  async fill(key: string, reading: Promise<StoredRecord | null>): Promise<StoredRecord | null> {
    const startedAt = ++this.#tick;
    let state = this.#reading.get(key);
    if (state === undefined) {
      state = { readers: 0, invalidatedAt: 0 };
      this.#reading.set(key, state);
    }
    state.readers++;
    try {
      const record = await reading;
      if (state.invalidatedAt < startedAt && this.#clearedAt < startedAt) {
        this.#keep(key, record === null ? null : { ...record });
      }
      return record;
    } finally {
      if (--state.readers === 0) this.#reading.delete(key);
    }
  }

  #keep(key: string, record: StoredRecord | null): void {
    this.#entries.delete(key);
    this.#entries.set(key, { record, readAgainAt: this.#now() + this.#maxAge });
    if (this.#entries.size > this.#max) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
  }

  /** Forgets the Redis key `key`, and any read of it on its way. */
  invalidate(key: string): void {
    this.#entries.delete(key);
    const reading = this.#reading.get(key);
    if (reading !== undefined) reading.invalidatedAt = ++this.#tick;
  }

  /** Forgets everything, and every read on its way. */
  clear(): void {
    this.#entries.clear();
    this.#clearedAt = ++this.#tick;
  }

  /** Stops following the client's events and forgets everything. */
  detach(): void {
    this.#client.off?.('invalidate', this.#onInvalidate);
    this.#client.off?.('ready', this.#onReady);
    this.clear();
  }
}

/**
 * Checks the store's `clientSideCache` option against its client and answers the cache to read
 * through, or `null` when the option is off. Throws `INVALID_OPTION` for a value that is neither
 * a boolean nor an options object, a bad `maxEntries` or `maxAge`, and, with the option on, a cluster or a
 * client without RESP3 and `emitInvalidate: true`. Refuses, whatever the option, a client created
 * with node-redis's own `clientSideCache`: it would answer the store's reads from a second cache
 * that the store cannot keep in step with its writes.
 *
 * @example
 * ```ts
 * const cache = clientSideCacheOf('RedisStore', client, options.clientSideCache, false);
 * ```
 */
export function clientSideCacheOf(
  owner: string,
  client: TrackingClient,
  option: unknown,
  cluster: boolean,
): SessionCache | null {
  if (client.options?.clientSideCache !== undefined) {
    invalidOption(
      owner,
      "the client has node-redis's clientSideCache: create it with emitInvalidate: true instead, and pass clientSideCache to the store",
    );
  }
  if (option === undefined || option === false) return null;
  if (option !== true && (typeof option !== 'object' || option === null)) {
    invalidOption(owner, 'clientSideCache must be true, false or an options object');
  }
  const given: RedisCacheOptions = option === true ? {} : option;
  const maxEntries = numberOption(
    owner,
    'clientSideCache.maxEntries',
    given.maxEntries,
    DEFAULT_MAX_ENTRIES,
    { min: 1, max: MAX_ENTRIES, integer: true },
  );
  const maxAge = numberOption(owner, 'clientSideCache.maxAge', given.maxAge, DEFAULT_MAX_AGE, {
    min: 1,
    max: MAX_AGE,
    integer: true,
  });
  if (cluster) invalidOption(owner, `clientSideCache needs a single server: ${CLIENT_NEEDED}`);
  const options = client.options;
  if (
    options?.RESP !== 3 ||
    options.emitInvalidate !== true ||
    typeof client.on !== 'function' ||
    typeof client.off !== 'function'
  ) {
    invalidOption(owner, `clientSideCache needs client tracking: ${CLIENT_NEEDED}`);
  }
  return new SessionCache(client, { maxEntries, maxAge });
}
