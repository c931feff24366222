/**
 * The Lua scripts of the Redis store. Each runs on one session's key (and, off a cluster, its
 * user's index), so every write is atomic and one round trip. `KEYS` and `ARGV` are listed above
 * each script.
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';

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

/** A Lua script and the SHA-1 that `EVALSHA` names it by. */
export interface Script {
  source: string;
  sha1: string;
}

function script(source: string): Script {
  return { source, sha1: createHash('sha1').update(source).digest('hex') };
}

/** Every script the store runs. */
export const SCRIPTS = {
  index: script(INDEX_SCRIPT),
  create: script(CREATE_SCRIPT),
  update: script(UPDATE_SCRIPT),
  touch: script(TOUCH_SCRIPT),
  delete: script(DELETE_SCRIPT),
  deleteIfUser: script(DELETE_IF_USER_SCRIPT),
  list: script(LIST_SCRIPT),
  unindex: script(UNINDEX_SCRIPT),
};
