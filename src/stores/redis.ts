/**
 * A session store on Redis (a single server or Redis Cluster), through node-redis v5, and
 * {@link RedisWatchdog}, which replaces a single server's client whose connection went silent.
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
import { SessionError } from '../errors.js';
import { booleanOption, invalidOption } from '../options.js';
import { clientOption, indexMarginOption, optionsObject } from './shared.js';
import { SCRIPTS, type Script } from './redis/scripts.js';
import type { MaybePromise } from '../maybe.js';
import {
  clientSideCacheOf,
  type RedisCacheOptions,
  type SessionCache,
  type TrackingClient,
} from './redis/client-cache.js';

export type { RedisCacheOptions, TrackingClient } from './redis/client-cache.js';
export {
  RedisWatchdog,
  type RedisWatchdogOptions,
  type RedisWatchdogReason,
  type WatchableRedisClient,
} from './redis/watchdog.js';

/** The keys and arguments of one script call, in node-redis v5's shape. */
export interface RedisScriptOptions {
  /** The keys the script touches: `KEYS[1]`, `KEYS[2]`... */
  keys: string[];
  /** The other arguments: `ARGV[1]`, `ARGV[2]`... */
  arguments: string[];
}

/**
 * The three commands the store sends, as a node-redis v5 client from `createClient()` or a
 * cluster from `createCluster()` offers them. The application creates, configures, connects and
 * closes the client; the store only sends commands through it.
 */
export interface RedisStoreClient extends TrackingClient {
  /** `EVALSHA`: runs a script the server has cached. */
  evalSha(sha1: string, options: RedisScriptOptions): Promise<unknown>;
  /** `EVAL`: runs (and caches) a script. */
  eval(script: string, options: RedisScriptOptions): Promise<unknown>;
  /** `HMGET`: reads some fields of a hash. */
  hmGet(key: string, fields: string[]): Promise<unknown>;
}

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * A connected node-redis v5 client (`createClient()`) or cluster (`createCluster()`). Give it an
   * `error` listener and `disableOfflineQueue: true`; the store's documentation lists the other
   * settings that matter.
   */
  client: RedisStoreClient;
  /**
   * Put before every key, so that several applications or tests can share one server.
   * @defaultValue `'tessera:'`
   */
  prefix?: string;
  /**
   * Whether every command must touch one key only, as Redis Cluster requires. When `false`, a
   * session and its user's index are written by one script, which saves a round trip when a
   * session is bound to a user.
   * @defaultValue `true` for a cluster client (one that has `masters`), `false` otherwise
   */
  cluster?: boolean;
  /**
   * How far past a session's expiry its entry in the user index reaches, in milliseconds: a whole
   * number from 0 to 365 days. An update or touch that moves the expiry past the entry first
   * extends the entry, which costs two more round trips: with the manager's default timeouts,
   * about once per hour of activity. A larger margin means fewer such extensions, and dead
   * entries that stay longer in the index (they are never listed).
   * @defaultValue 3_600_000 (one hour)
   */
  indexMargin?: number;
  /**
   * The former name of {@link RedisStoreOptions.indexMargin}, still accepted; give one or the
   * other.
   * @deprecated Use `indexMargin`.
   * @defaultValue 3_600_000 (one hour), as `indexMargin`
   */
  indexHeadroom?: number;
  /**
   * Keep the sessions this process reads in memory, until Redis says they changed (client
   * tracking): a read of a session read before and not changed since then costs no round trip.
   * `true` keeps up to 10,000 sessions, each for at most a minute before it is read again;
   * `{ maxEntries, maxAge }` sets those (see {@link RedisCacheOptions}). Needs a single-server
   * client created with `RESP: 3` and `emitInvalidate: true`. Another process's write reaches
   * this cache when Redis's invalidation arrives; see the store's documentation, "Client-side
   * caching".
   * @defaultValue `false`
   */
  clientSideCache?: boolean | RedisCacheOptions;
}

const OWNER = 'RedisStore';
const RECORD_FIELDS = ['data', 'expiresAt', 'userId', 'version'];
const UNINDEX_BATCH = 1000;
const TOUCH_ATTEMPTS = 3;
/** Tries of a script that meets `TRYAGAIN`, the pause after the first, and the longest pause. */
const TRYAGAIN_ATTEMPTS = 16;
const TRYAGAIN_PAUSE_MS = 25;
const TRYAGAIN_MAX_PAUSE_MS = 200;

function text(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return null;
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

function isTryAgain(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('TRYAGAIN');
}

/** The instant handed to `PEXPIREAT`: a whole number of milliseconds, never before 1. */
function expireAtMs(expiresAt: number): number {
  if (!Number.isFinite(expiresAt)) {
    throw new SessionError('INVALID_DATA', 'RedisStore: expiresAt must be a finite number');
  }
  return Math.max(1, Math.ceil(expiresAt));
}

/**
 * Keeps sessions in Redis, a single server or a Redis Cluster, with Redis's own expiry.
 *
 * Each session is a hash `{prefix}s:{<store key>}` that Redis deletes at its `expiresAt`
 * (`PEXPIREAT`); each user with sessions has a sorted set `{prefix}u:{<base64url user ID>}` of
 * their store keys. A read is one `HMGET`; each write is one Lua script on the session's key, so
 * it is atomic and one round trip, in a cluster too; only keeping a user's index ahead of the
 * session costs another command, in the user's slot. The application passes in the connected
 * client and keeps ownership of it.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * import { RedisStore } from 'tessera-session/stores/redis';
 * const client = createClient({ url: process.env.REDIS_URL, disableOfflineQueue: true });
 * client.on('error', (err) => logger.warn({ err }, 'redis'));
 * await client.connect();
 * const store = new RedisStore({ client, prefix: 'myapp:sess:' });
 * ```
 */
export class RedisStore implements SessionStore {
  readonly name = 'redis';
  readonly #client: RedisStoreClient;
  readonly #prefix: string;
  readonly #cluster: boolean;
  /** The option `indexMargin`. */
  readonly #margin: number;
  /** The sessions read, when the option `clientSideCache` is on. */
  readonly #cache: SessionCache | null;

  /**
   * Checks the options; does not contact the server.
   * @throws `SessionError` with code `INVALID_OPTION` for a bad option
   */
  constructor(options: RedisStoreOptions) {
    optionsObject(OWNER, options, 'a client');
    const client = clientOption<RedisStoreClient>(
      OWNER,
      'client',
      options.client,
      ['evalSha', 'eval', 'hmGet'],
      'a node-redis v5 client or cluster',
    );
    const prefix = options.prefix ?? 'tessera:';
    if (typeof prefix !== 'string') invalidOption(OWNER, 'prefix must be a string');
    if (options.indexMargin !== undefined && options.indexHeadroom !== undefined) {
      invalidOption(OWNER, 'give indexMargin only (indexHeadroom is its former name)');
    }
    this.#client = client;
    this.#prefix = prefix;
    this.#cluster = booleanOption(OWNER, 'cluster', options.cluster, 'masters' in client);
    this.#margin =
      options.indexHeadroom === undefined
        ? indexMarginOption(OWNER, 'indexMargin', options.indexMargin)
        : indexMarginOption(OWNER, 'indexHeadroom', options.indexHeadroom);
    this.#cache = clientSideCacheOf(OWNER, client, options.clientSideCache, 'masters' in client);
  }

  /** The Redis key of the session stored under `key`; its hash tag keeps it in one slot. */
  sessionKey(key: string): string {
    return `${this.#prefix}s:{${key}}`;
  }

  /** The Redis key of the user index of `userId`, hash-tagged with an encoding free of braces. */
  userIndexKey(userId: string): string {
    return `${this.#prefix}u:{${Buffer.from(userId, 'utf8').toString('base64url')}}`;
  }

  async #run(which: Script, keys: string[], args: string[]): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#send(which, { keys, arguments: args });
      } catch (error) {
        // While a cluster slot moves between nodes, a script whose keys are split between them
        // (only with `cluster: false`) is refused with TRYAGAIN and runs nothing: send it again.
        if (!isTryAgain(error) || attempt === TRYAGAIN_ATTEMPTS) throw error;
        const pause = Math.min(TRYAGAIN_PAUSE_MS * 2 ** (attempt - 1), TRYAGAIN_MAX_PAUSE_MS);
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  async #send(which: Script, options: RedisScriptOptions): Promise<unknown> {
    try {
      return await this.#client.evalSha(which.sha1, options);
    } catch (error) {
      // A server that restarted, or a cluster node not used before, has not cached the script.
      if (!isNoScript(error)) throw error;
      return await this.#client.eval(which.source, options);
    } finally {
      // The server's invalidation of a key this script wrote may come after its reply: drop the
      // cached copy now, so this process reads its own write, and a compare-and-set that failed
      // is retried on what the server holds.
      if (this.#cache !== null) for (const key of options.keys) this.#cache.invalidate(key);
    }
  }

  /** The instant handed to `PEXPIREAT` for an expiry, and the reach of its user index entry. */
  #expiry(expiresAt: number): { expireAt: number; until: number } {
    const expireAt = expireAtMs(expiresAt);
    return { expireAt, until: expireAt + this.#margin };
  }

  async #index(userId: string, key: string, until: number): Promise<void> {
    await this.#run(SCRIPTS.index, [this.userIndexKey(userId)], [key, String(until)]);
  }

  async #read(key: string): Promise<StoredRecord | null> {
    const reply = await this.#client.hmGet(this.sessionKey(key), RECORD_FIELDS);
    if (!Array.isArray(reply)) throw new Error('RedisStore: unexpected HMGET reply');
    const [data, expiresAt, userId, version] = reply.map(text);
    if (data == null || expiresAt == null || version == null) return null;
    return { data, expiresAt: Number(expiresAt), userId: userId ?? null, version: Number(version) };
  }

  async #members(userId: string): Promise<string[]> {
    const reply = await this.#run(SCRIPTS.list, [this.userIndexKey(userId)], []);
    if (!Array.isArray(reply)) throw new Error('RedisStore: unexpected index reply');
    return reply.map(text).filter((member): member is string => member !== null);
  }

  async #unindex(userId: string, keys: string[]): Promise<void> {
    for (let start = 0; start < keys.length; start += UNINDEX_BATCH) {
      await this.#run(
        SCRIPTS.unindex,
        [this.userIndexKey(userId)],
        keys.slice(start, start + UNINDEX_BATCH),
      );
    }
  }

  /** One `HMGET`; with `clientSideCache`, none for a session cached here (answered at once). */
  get(key: string): MaybePromise<StoredRecord | null> {
    const cache = this.#cache;
    if (cache === null) return this.#read(key);
    const redisKey = this.sessionKey(key);
    const cached = cache.get(redisKey);
    return cached === undefined ? cache.fill(redisKey, this.#read(key)) : cached;
  }

  /**
   * One script. For a session with a user on a cluster, the user index is extended first, by a
   * second command in that user's slot.
   */
  async create(key: string, record: SessionRecord): Promise<boolean> {
    const { expireAt, until } = this.#expiry(record.expiresAt);
    const keys = [this.sessionKey(key)];
    if (record.userId !== null) {
      if (this.#cluster) await this.#index(record.userId, key, until);
      else keys.push(this.userIndexKey(record.userId));
    }
    const args = [
      record.data,
      String(record.expiresAt),
      String(expireAt),
      record.userId === null ? '0' : '1',
      record.userId ?? '',
      String(until),
      key,
    ];
    return (await this.#run(SCRIPTS.create, keys, args)) === 1;
  }

  /**
   * One compare-and-set script. On a cluster, when the session moves to another user or past its
   * index entry, the script writes nothing and asks for the user index to be extended first; the
   * store does so and runs the script again.
   */
  async update(key: string, record: SessionRecord, expectedVersion: number): Promise<UpdateResult> {
    const { expireAt, until } = this.#expiry(record.expiresAt);
    const keys = [this.sessionKey(key)];
    if (record.userId !== null && !this.#cluster) keys.push(this.userIndexKey(record.userId));
    const args = (granted: boolean) => [
      String(expectedVersion),
      record.data,
      String(record.expiresAt),
      String(expireAt),
      record.userId === null ? '0' : '1',
      record.userId ?? '',
      String(until),
      granted ? '1' : '0',
      key,
    ];
    let reply = await this.#run(SCRIPTS.update, keys, args(false));
    if (Array.isArray(reply) && text(reply[0]) === 'index' && record.userId !== null) {
      await this.#index(record.userId, key, until);
      reply = await this.#run(SCRIPTS.update, keys, args(true));
    }
    if (!Array.isArray(reply)) throw new Error('RedisStore: unexpected update reply');
    const status = text(reply[0]);
    if (status === 'ok') return { status: 'ok', version: Number(reply[1]) };
    if (status === 'conflict') return { status: 'conflict' };
    if (status === 'missing') return { status: 'missing' };
    throw new Error('RedisStore: unexpected update reply');
  }

  /**
   * One script. When the new expiry passes the session's user index entry, the entry is extended
   * first (two more round trips).
   */
  async touch(key: string, expiresAt: number): Promise<boolean> {
    const { expireAt, until } = this.#expiry(expiresAt);
    let grant: string | null = null;
    for (let attempt = 0; attempt < TOUCH_ATTEMPTS; attempt++) {
      const args = [
        String(expiresAt),
        String(expireAt),
        grant === null ? '0' : '1',
        grant ?? '',
        String(until),
      ];
      const reply = await this.#run(SCRIPTS.touch, [this.sessionKey(key)], args);
      if (!Array.isArray(reply)) throw new Error('RedisStore: unexpected touch reply');
      if (reply[0] === 0) return false;
      if (reply[0] === 1) return true;
      const userId = text(reply[1]);
      if (userId === null) throw new Error('RedisStore: unexpected touch reply');
      await this.#index(userId, key, until);
      grant = userId;
    }
    throw new Error('RedisStore: touch kept meeting a session whose user changed');
  }

  /** One script; for a session with a user, a second command removes it from the user's index. */
  async delete(key: string): Promise<void> {
    const userId = text(await this.#run(SCRIPTS.delete, [this.sessionKey(key)], []));
    if (userId !== null) await this.#unindex(userId, [key]);
  }

  /** Two round trips: the user index, then every listed session at once. */
  async listByUser(userId: string): Promise<UserRecord[]> {
    const members = await this.#members(userId);
    const records = await Promise.all(members.map((key) => this.#read(key)));
    const found: UserRecord[] = [];
    records.forEach((record, i) => {
      if (record !== null && record.userId === userId) found.push({ key: members[i]!, ...record });
    });
    return found;
  }

  /**
   * Three round trips: the user index; a delete of every listed session that still belongs to the
   * user, all at once; the removal of the deleted sessions from the index.
   */
  async deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    const members = (await this.#members(userId)).filter((key) => key !== exceptKey);
    const results = await Promise.all(
      members.map((key) => this.#run(SCRIPTS.deleteIfUser, [this.sessionKey(key)], [userId])),
    );
    const deleted = members.filter((_, i) => results[i] === 1);
    if (deleted.length > 0) await this.#unindex(userId, deleted);
    return deleted.length;
  }

  /**
   * Stops following the client's invalidations (with `clientSideCache`), and otherwise does
   * nothing: the store owns no timers, and the client belongs to the application, which closes
   * it. Present so that code can close any store the same way.
   */
  async close(): Promise<void> {
    this.#cache?.detach();
  }
}
