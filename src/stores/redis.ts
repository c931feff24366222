/**
 * A session store on Redis (a single server or Redis Cluster), through node-redis v5.
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
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
export interface RedisStoreClient {
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
}

/** How much the clocks of different cluster nodes may disagree, in milliseconds. */
const CLOCK_MARGIN = 60_000;

/**
 * Adds `member` to the user index `key`, never lowering its score, drops entries that ended more
 * than the clock margin ago, and makes the index live as long as its longest entry plus the margin.
 */
const INDEX_FUNCTION = `
local function index_session(key, member, until_ms)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - ${CLOCK_MARGIN})
  redis.call('ZADD', key, 'GT', until_ms, member)
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', key, tonumber(top[2]) + ${CLOCK_MARGIN})
end
`;

/** KEYS: index. ARGV: member, until. */
const INDEX_SCRIPT = `${INDEX_FUNCTION}
index_session(KEYS[1], ARGV[1], ARGV[2])
return 1
`;

/**
 * KEYS: session[, index]. ARGV: data, expiresAt, expireAtMs, hasUser, userId, indexedUntil, member.
 * Answers 1 when created, 0 when a live record is already there.
 */
const CREATE_SCRIPT = `${INDEX_FUNCTION}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if KEYS[2] then index_session(KEYS[2], ARGV[7], ARGV[6]) end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'expiresAt', ARGV[2], 'version', '1')
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'userId', ARGV[5], 'indexedUntil', ARGV[6]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
`;

/**
 * KEYS: session[, index of the new user]. ARGV: expectedVersion, data, expiresAt, expireAtMs,
 * hasUser, userId, indexedUntil, granted ('1' when the caller has just indexed the session until
 * indexedUntil), member.
 * Answers {'ok', version}, {'conflict'}, {'missing'}, or {'index'} when the user index must be
 * extended first (nothing is written then).
 */
const UPDATE_SCRIPT = `${INDEX_FUNCTION}
local cur = redis.call('HMGET', KEYS[1], 'version', 'userId', 'indexedUntil')
if not cur[1] then return {'missing'} end
if cur[1] ~= ARGV[1] then return {'conflict'} end
local indexed = false
if ARGV[5] == '1' then
  if cur[2] == ARGV[6] and cur[3] and tonumber(cur[3]) >= tonumber(ARGV[4]) then
    indexed = cur[3]
  elseif ARGV[8] == '1' then
    indexed = ARGV[7]
  elseif KEYS[2] then
    index_session(KEYS[2], ARGV[9], ARGV[7])
    indexed = ARGV[7]
  else
    return {'index'}
  end
end
local version = tonumber(cur[1]) + 1
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'expiresAt', ARGV[3], 'version', version)
if indexed then
  redis.call('HSET', KEYS[1], 'userId', ARGV[6], 'indexedUntil', indexed)
else
  redis.call('HDEL', KEYS[1], 'userId', 'indexedUntil')
end
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return {'ok', version}
`;

/**
 * KEYS: session. ARGV: expiresAt, expireAtMs, granted ('1' when the caller has just indexed the
 * session for grantedUser until grantedUntil), grantedUser, grantedUntil.
 * Answers {1} when touched, {0} when missing, {2, userId} when that user's index must be extended
 * first (nothing is written then).
 */
const TOUCH_SCRIPT = `
local cur = redis.call('HMGET', KEYS[1], 'version', 'userId', 'indexedUntil')
if not cur[1] then return {0} end
if cur[2] and not (cur[3] and tonumber(cur[3]) >= tonumber(ARGV[2])) then
  if ARGV[3] == '1' and ARGV[4] == cur[2] then
    redis.call('HSET', KEYS[1], 'indexedUntil', ARGV[5])
  else
    return {2, cur[2]}
  end
end
redis.call('HSET', KEYS[1], 'expiresAt', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return {1}
`;

/** KEYS: session. Deletes it and answers the user it belonged to, or nil. */
const DELETE_SCRIPT = `
local user = redis.call('HGET', KEYS[1], 'userId')
redis.call('DEL', KEYS[1])
return user
`;

/** KEYS: session. ARGV: userId. Deletes the session only if it still belongs to the user. */
const DELETE_IF_USER_SCRIPT = `
if redis.call('HGET', KEYS[1], 'userId') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`;

/** KEYS: index. Drops entries that ended more than the clock margin ago; answers the others. */
const LIST_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ${CLOCK_MARGIN})
return redis.call('ZRANGE', KEYS[1], 0, -1)
`;

/** KEYS: index. ARGV: members to remove. */
const UNINDEX_SCRIPT = `
return redis.call('ZREM', KEYS[1], unpack(ARGV))
`;

interface Script {
  source: string;
  sha1: string;
}

function script(source: string): Script {
  return { source, sha1: createHash('sha1').update(source).digest('hex') };
}

const SCRIPTS = {
  index: script(INDEX_SCRIPT),
  create: script(CREATE_SCRIPT),
  update: script(UPDATE_SCRIPT),
  touch: script(TOUCH_SCRIPT),
  delete: script(DELETE_SCRIPT),
  deleteIfUser: script(DELETE_IF_USER_SCRIPT),
  list: script(LIST_SCRIPT),
  unindex: script(UNINDEX_SCRIPT),
};

const OWNER = 'RedisStore';
const RECORD_FIELDS = ['data', 'expiresAt', 'userId', 'version'];
const UNINDEX_BATCH = 1000;
const TOUCH_ATTEMPTS = 3;

function text(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return null;
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
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
  readonly #client: RedisStoreClient;
  readonly #prefix: string;
  readonly #cluster: boolean;
  /** The option `indexMargin`. */
  readonly #margin: number;

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
    const options = { keys, arguments: args };
    try {
      return await this.#client.evalSha(which.sha1, options);
    } catch (error) {
      // A server that restarted, or a cluster node not used before, has not cached the script.
      if (!isNoScript(error)) throw error;
      return await this.#client.eval(which.source, options);
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

  /** One `HMGET`. */
  async get(key: string): Promise<StoredRecord | null> {
    return this.#read(key);
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
   * Does nothing: the store owns no timers, and the client belongs to the application, which
   * closes it. Present so that code can close any store the same way.
   */
  async close(): Promise<void> {}
}
