/**
 * A watchdog for the Redis store's client: it sends the client a PING at a fixed interval and
 * replaces the client with a new one when the PING goes unanswered. node-redis cannot notice a
 * connection that the network lost silently while commands keep coming: its `socketTimeout`
 * counts the client's own writes as activity, and a command's `timeout` stops counting once the
 * command is written.
 *
 * @packageDocumentation
 */
import { MAX_TIMER_DELAY, invalidOption, numberOption } from '../../options.js';
import type { RedisScriptOptions, RedisStoreClient } from '../redis.js';

/**
 * What the watchdog needs of a node-redis v5 client from `createClient()`: the store's commands,
 * its readiness, `connect`, `ping`, `close` and `destroy`.
 */
export interface WatchableRedisClient extends RedisStoreClient {
  /** Whether the client has a connection that has completed its handshake. */
  readonly isReady: boolean;
  /** Opens the connection; settles once the client is ready. */
  connect(): Promise<unknown>;
  /** `PING`. */
  ping(): Promise<unknown>;
  /** Closes the connection once the commands in flight are answered. */
  close(): Promise<unknown>;
  /** Closes the connection at once; the commands in flight fail. */
  destroy(): void;
}

/** Why the watchdog replaced its client. */
export type RedisWatchdogReason = 'unanswered' | 'not-ready';

/** Options of {@link RedisWatchdog.open}. */
export interface RedisWatchdogOptions {
  /**
   * How often the current client is sent a `PING`, in milliseconds: above 0, at most 2³¹ − 1.
   * Each is one round trip on the connection the store uses.
   * @defaultValue 250
   */
  interval?: number;
  /**
   * How long a `PING` may go unanswered, or the client stay not ready, before the client is
   * replaced, in milliseconds: above 0, at most 2³¹ − 1. It also bounds how long a new client
   * may take to become ready (one that is not is dropped, and the old one kept), and how long
   * {@link RedisWatchdog.close} waits for a `PING` before it destroys the client. Keep it above
   * the server's slowest command: while the server is busy for longer, every check opens a
   * connection that cannot get ready in time, and drops it.
   * @defaultValue 1_000
   */
  timeout?: number;
  /**
   * Called after each replacement, with its reason: `'unanswered'` (a `PING` went unanswered) or
   * `'not-ready'` (the client stayed not ready, reconnecting). For the application's logs or
   * metrics; what it throws is ignored.
   * @defaultValue none
   */
  onReplace?: (reason: RedisWatchdogReason) => void;
}

type Listener = (key?: unknown) => void;
type TrackedEvent = 'invalidate' | 'ready';

const OWNER = 'RedisWatchdog';
const DEFAULT_INTERVAL = 250;
const DEFAULT_TIMEOUT = 1_000;

/** `promise`'s value if it settles within `ms`, else `otherwise`. */
async function within<T>(promise: Promise<T>, ms: number, otherwise: T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expiry = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(otherwise), ms);
  });
  try {
    return await Promise.race([promise, expiry]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `promise` fulfils within `ms`: `false` when it rejects or takes longer. */
function fulfilsWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return within(
    promise.then(
      () => true,
      () => false,
    ),
    ms,
    false,
  );
}

/** Destroys a client; one already closed (node-redis then throws) is left as it is. */
function destroyQuietly(client: WatchableRedisClient): void {
  try {
    client.destroy();
  } catch {
    // Already closed: nothing to destroy.
  }
}

/**
 * A node-redis client behind a watchdog, to give `RedisStore` as its `client`. Every `interval`
 * the current client is sent a `PING`; when it stays unanswered for `timeout`, or the client has
 * not been ready for that long, a new client is made by `create` and connected beside the old
 * one. Once it is ready it takes the old one's place, and the old one is destroyed: the commands
 * waiting on it fail at once, and the next ones go to the new connection. A new client that is
 * not ready within `timeout` (the server is down, or frozen) is dropped, and the old one kept.
 *
 * The old client is never connected again: a node-redis client destroyed while it reconnects
 * must not be connected again, since its two connection loops would then feed one reply queue,
 * and replies would reach the wrong commands.
 *
 * It watches one server's client (`createClient`), not a cluster. The store's `clientSideCache`
 * works through it: its invalidation listeners move to each new client, and the cache is emptied
 * at each replacement. The timer is `unref`'ed, so it never keeps the process alive.
 *
 * @typeParam C - the client type `create` answers
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * import { RedisStore, RedisWatchdog } from 'tessera-session/stores/redis';
 * const watched = await RedisWatchdog.open(() => {
 *   const client = createClient({ url: process.env.REDIS_URL, disableOfflineQueue: true });
 *   client.on('error', (err) => logger.warn({ err }, 'redis'));
 *   return client;
 * });
 * const store = new RedisStore({ client: watched, prefix: 'myapp:sess:' });
 * // At shutdown:
 * await watched.close();
 * ```
 */
export class RedisWatchdog<
  C extends WatchableRedisClient = WatchableRedisClient,
> implements RedisStoreClient {
  #current: C;
  readonly #create: () => C;
  readonly #timeout: number;
  readonly #onReplace: ((reason: RedisWatchdogReason) => void) | undefined;
  readonly #timer: ReturnType<typeof setInterval>;
  /** The listeners added through {@link RedisWatchdog.on}, moved to each new client. */
  readonly #listeners: [TrackedEvent, Listener][] = [];
  #checking = false;
  #closed = false;
  #notReadySince: number | null = null;
  #replacements = 0;

  private constructor(
    first: C,
    create: () => C,
    settings: { interval: number; timeout: number; onReplace?: (r: RedisWatchdogReason) => void },
  ) {
    this.#current = first;
    this.#create = create;
    this.#timeout = settings.timeout;
    this.#onReplace = settings.onReplace;
    this.#timer = setInterval(() => void this.#check(), settings.interval);
    this.#timer.unref();
  }

  /**
   * Checks the options, connects a first client made by `create` and starts watching it.
   *
   * @param create - makes a new, unconnected node-redis client (`createClient(...)`) with an
   *   `error` listener; called again for each replacement. Give the client
   *   `disableOfflineQueue: true`, as the store's documentation says.
   * @param options - the interval and timeout, see {@link RedisWatchdogOptions}
   * @throws `SessionError` with code `INVALID_OPTION` for a bad option or a cluster client
   */
  static async open<C extends WatchableRedisClient>(
    create: () => C,
    options: RedisWatchdogOptions = {},
  ): Promise<RedisWatchdog<C>> {
    if (typeof create !== 'function') {
      invalidOption(OWNER, 'create must be a function that makes a new node-redis client');
    }
    if (typeof options !== 'object' || options === null) {
      invalidOption(OWNER, 'options must be an object');
    }
    const limits = { exclusiveMin: true, max: MAX_TIMER_DELAY };
    const interval = numberOption(OWNER, 'interval', options.interval, DEFAULT_INTERVAL, limits);
    const timeout = numberOption(OWNER, 'timeout', options.timeout, DEFAULT_TIMEOUT, limits);
    const onReplace = options.onReplace;
    if (onReplace !== undefined && typeof onReplace !== 'function') {
      invalidOption(OWNER, 'onReplace must be a function');
    }
    const first = create();
    if (typeof first !== 'object' || first === null || 'masters' in first) {
      invalidOption(OWNER, 'create must make a single-server client (createClient), not a cluster');
    }
    await first.connect();
    return new RedisWatchdog(first, create, { interval, timeout, onReplace });
  }

  /** The client in use now; another one after each replacement. */
  get client(): C {
    return this.#current;
  }

  /** How many times the client was replaced. */
  get replacements(): number {
    return this.#replacements;
  }

  /** Whether the current client is ready. */
  get isReady(): boolean {
    return this.#current.isReady;
  }

  /** The current client's options, for the store's checks. */
  get options(): C['options'] {
    return this.#current.options;
  }

  /** Adds a listener to the current client, and to every client that replaces it. */
  on(event: TrackedEvent, listener: Listener): this {
    this.#listeners.push([event, listener]);
    this.#current.on?.(event, listener);
    return this;
  }

  /** Removes a listener added with {@link RedisWatchdog.on}. */
  off(event: TrackedEvent, listener: Listener): this {
    const at = this.#listeners.findIndex(([e, l]) => e === event && l === listener);
    if (at !== -1) this.#listeners.splice(at, 1);
    this.#current.off?.(event, listener);
    return this;
  }

  /** `EVALSHA` on the current client. */
  evalSha(sha1: string, options: RedisScriptOptions): Promise<unknown> {
    return this.#current.evalSha(sha1, options);
  }

  /** `EVAL` on the current client. */
  eval(script: string, options: RedisScriptOptions): Promise<unknown> {
    return this.#current.eval(script, options);
  }

  /** `HMGET` on the current client. */
  hmGet(key: string, fields: string[]): Promise<unknown> {
    return this.#current.hmGet(key, fields);
  }

  /**
   * Stops the watchdog and closes the current client once the commands in flight are answered.
   * When the client does not answer a `PING` within `timeout` (its connection went silent, and
   * would never answer them), or is not ready, destroys it instead: the commands in flight fail.
   */
  async close(): Promise<void> {
    this.#stop();
    const client = this.#current;
    // Replies come in order: a PING answered means every command sent before it was answered.
    const alive = await fulfilsWithin(client.ping(), this.#timeout);
    if (alive) await client.close();
    else destroyQuietly(client);
  }

  /** Stops the watchdog and destroys the current client: the commands in flight fail. */
  destroy(): void {
    this.#stop();
    destroyQuietly(this.#current);
  }

  #stop(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }

  async #check(): Promise<void> {
    if (this.#checking || this.#closed) return;
    this.#checking = true;
    try {
      const trouble = await this.#trouble();
      if (trouble === null || this.#closed) return;
      const next = this.#create();
      const ready = await fulfilsWithin(next.connect(), this.#timeout);
      // Keep the old client when the new one is not ready in time, when the watchdog was closed
      // meanwhile, or when the old one recovered while the new one connected.
      if (!ready || this.#closed || !trouble.persists()) {
        destroyQuietly(next);
        return;
      }
      this.#replace(next, trouble.reason);
    } catch {
      // `create` threw: the next tick tries again.
    } finally {
      this.#checking = false;
    }
  }

  /** What is wrong with the current client, or `null` when nothing is (yet). */
  async #trouble(): Promise<{ reason: RedisWatchdogReason; persists: () => boolean } | null> {
    const client = this.#current;
    if (!client.isReady) {
      // node-redis is reconnecting: give it `timeout` to succeed on its own.
      const now = performance.now();
      this.#notReadySince ??= now;
      if (now - this.#notReadySince <= this.#timeout) return null;
      return { reason: 'not-ready', persists: () => !client.isReady };
    }
    this.#notReadySince = null;
    let answered = false;
    // A rejected PING counts as an answer: the client noticed a failure and reconnects by itself.
    const ping = client.ping().then(
      () => (answered = true),
      () => (answered = true),
    );
    if (await within(ping, this.#timeout, false)) return null;
    return { reason: 'unanswered', persists: () => !answered || !client.isReady };
  }

  #replace(next: C, reason: RedisWatchdogReason): void {
    const old = this.#current;
    for (const [event, listener] of this.#listeners) {
      old.off?.(event, listener);
      next.on?.(event, listener);
    }
    this.#current = next;
    this.#notReadySince = null;
    this.#replacements++;
    destroyQuietly(old);
    // The new client became ready before the listeners moved to it: tell them now (the store's
    // cache empties itself, since nothing it holds is tracked on the new connection).
    for (const [event, listener] of this.#listeners) if (event === 'ready') listener();
    try {
      this.#onReplace?.(reason);
    } catch {
      // The application's callback must not stop the watchdog.
    }
  }
}
