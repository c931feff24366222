import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { defineStoreConformance, randomStoreKey } from '../src/testing/index.js';
import { RedisStore, type RedisStoreClient, type RedisScriptOptions } from '../src/stores/redis.js';
import type { SessionStore } from '../src/store.js';
import { SessionManager } from '../src/manager.js';
import { SessionError } from '../src/errors.js';
import { SHARED, eventually, requireService, requireShared } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { RedisServerProcess, redisBinariesAvailable, redisCli } from './support/redis-server.js';

type Client = ReturnType<typeof createClient>;

/** Connects to the shared server, answering its version, or throws. */
async function serverVersion(): Promise<string> {
  const client = createClient({
    url: SHARED.redis.url,
    socket: { connectTimeout: 1000, reconnectStrategy: false },
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const info = await client.info('server');
    return /redis_version:([\d.]+)/.exec(info)?.[1] ?? '0';
  } finally {
    client.destroy();
  }
}

function atLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

const sharedGate = await requireShared(SHARED.redis, async () => {
  const version = await serverVersion();
  return atLeast(version, 6, 2) || `version ${version} is older than 6.2`;
});
const privateGate = await requireService('redis-server binaries', redisBinariesAvailable);

const testPrefix = () => `tessera-test:${randomBytes(6).toString('hex')}:`;

/** Every key under `prefix`, found with SCAN MATCH (never KEYS, never a flush). */
async function keysUnder(client: Client, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
    keys.push(...batch);
  return keys;
}

async function deleteUnder(client: Client, prefix: string): Promise<void> {
  const keys = await keysUnder(client, prefix);
  if (keys.length > 0) await client.del(keys);
}

/** Connects to a private server on the loopback at `port`, or to `extra.url` when given. */
function connect(
  port: number,
  extra: Parameters<typeof createClient>[0] = {},
  socketTimeout?: number,
): Promise<Client> {
  const client = createClient({
    ...extra,
    socket: {
      host: '127.0.0.1',
      port,
      socketTimeout,
      reconnectStrategy: (retries: number) => Math.min(50 * (retries + 1), 200),
    },
  });
  // node-redis emits 'error' on every lost connection; without a listener the process would crash.
  client.on('error', () => undefined);
  return client.connect() as Promise<Client>;
}

/** Counts the calls the store makes; sequential calls are round trips. */
class CountingClient implements RedisStoreClient {
  calls: string[] = [];
  readonly #inner: RedisStoreClient;
  constructor(inner: RedisStoreClient) {
    this.#inner = inner;
  }
  evalSha(sha1: string, options: RedisScriptOptions) {
    this.calls.push('EVALSHA');
    return this.#inner.evalSha(sha1, options);
  }
  eval(script: string, options: RedisScriptOptions) {
    this.calls.push('EVAL');
    return this.#inner.eval(script, options);
  }
  hmGet(key: string, fields: string[]) {
    this.calls.push('HMGET');
    return this.#inner.hmGet(key, fields);
  }
}

const minute = 60_000;
const secrets = ['s'.repeat(32)];
const cookieValue = (setCookie: readonly string[]) =>
  /^sid=([^;]+)/.exec(setCookie[0] ?? '')?.[1] ?? '';

describe('RedisStore options', () => {
  // Checked at construction, before any command: a client with the three methods is enough.
  const client: RedisStoreClient = {
    evalSha: async () => null,
    eval: async () => null,
    hmGet: async () => [],
  };
  const refused: [option: string, value: unknown][] = [
    ...['indexMargin', 'indexHeadroom'].flatMap((option) =>
      [Infinity, -Infinity, Number.NaN, -1, '5', 1.5, 365 * 24 * 60 * minute + 1].map(
        (value): [string, unknown] => [option, value],
      ),
    ),
    ...['yes', 1, null].map((value): [string, unknown] => ['cluster', value]),
  ];
  it.each(refused)('refuses %s: %o, naming the store and the option', (option, value) => {
    expect(() => new RedisStore({ client, [option]: value })).toThrow(
      expect.objectContaining({
        code: 'INVALID_OPTION',
        message: expect.stringMatching(new RegExp(`^RedisStore: ${option} `)),
      }),
    );
  });

  it('takes indexMargin from 0 to 365 days, or its former name indexHeadroom, but not both', () => {
    for (const indexMargin of [0, 60 * minute, 365 * 24 * 60 * minute]) {
      expect(new RedisStore({ client, indexMargin })).toBeInstanceOf(RedisStore);
      expect(new RedisStore({ client, indexHeadroom: indexMargin })).toBeInstanceOf(RedisStore);
    }
    expect(() => new RedisStore({ client, indexMargin: minute, indexHeadroom: minute })).toThrow(
      expect.objectContaining({
        code: 'INVALID_OPTION',
        message: expect.stringMatching(/indexMargin/),
      }),
    );
  });
});

describe.skipIf(!sharedGate.available)(
  `RedisStore on ${SHARED.redis.host}:${SHARED.redis.port}${sharedGate.label}`,
  () => {
    let client: Client;
    const prefixes = new Map<SessionStore, string>();

    beforeAll(async () => {
      client = await connect(SHARED.redis.port, { url: SHARED.redis.url });
    });
    afterAll(async () => {
      await client?.close();
    });

    for (const cluster of [false, true]) {
      defineStoreConformance({
        name: cluster ? 'RedisStore (one key per command, as on a cluster)' : 'RedisStore',
        createStore: () => {
          const prefix = testPrefix();
          const store = new RedisStore({ client, prefix, cluster });
          prefixes.set(store, prefix);
          return store;
        },
        destroyStore: async (store) => {
          await deleteUnder(client, prefixes.get(store)!);
          prefixes.delete(store);
        },
        injectedClock: false,
        prune: false,
        runner: { describe, it, beforeEach, afterEach },
      });
    }

    describe('Redis specifics', () => {
      let prefix: string;
      beforeEach(() => {
        prefix = testPrefix();
      });
      afterEach(async () => {
        await deleteUnder(client, prefix);
      });

      it('lays keys out as documented and hands expiry to Redis', async () => {
        const store = new RedisStore({ client, prefix });
        const key = randomStoreKey();
        const expiresAt = Date.now() + 10 * minute;
        await store.create(key, { data: 'd', expiresAt, userId: 'alice' });
        const sessionKey = `${prefix}s:{${key}}`;
        const indexKey = `${prefix}u:{${Buffer.from('alice').toString('base64url')}}`;
        expect(store.sessionKey(key)).toBe(sessionKey);
        expect(store.userIndexKey('alice')).toBe(indexKey);
        expect((await keysUnder(client, prefix)).sort()).toEqual([sessionKey, indexKey].sort());
        expect(await client.type(sessionKey)).toBe('hash');
        expect(await client.hGetAll(sessionKey)).toEqual({
          data: 'd',
          expiresAt: String(expiresAt),
          version: '1',
          userId: 'alice',
          indexedUntil: String(expiresAt + 60 * minute),
        });
        expect(await client.pExpireTime(sessionKey)).toBe(expiresAt);
        expect(await client.type(indexKey)).toBe('zset');
        expect(await client.zRangeWithScores(indexKey, 0, -1)).toEqual([
          { value: key, score: expiresAt + 60 * minute },
        ]);
        expect(await client.pExpireTime(indexKey)).toBe(expiresAt + 60 * minute + minute);
      });

      it('reaches indexMargin past the expiry in the user index, also under its former name indexHeadroom', async () => {
        for (const cluster of [false, true]) {
          for (const options of [{ indexMargin: 5 * minute }, { indexHeadroom: 5 * minute }]) {
            const store = new RedisStore({ client, prefix, cluster, ...options });
            const key = randomStoreKey();
            const expiresAt = Date.now() + 10 * minute;
            await store.create(key, { data: 'd', expiresAt, userId: 'alice' });
            expect(await client.zScore(store.userIndexKey('alice'), key)).toBe(
              expiresAt + 5 * minute,
            );
            expect(await client.hGet(store.sessionKey(key), 'indexedUntil')).toBe(
              String(expiresAt + 5 * minute),
            );
          }
        }
      });

      it('costs one round trip per read, create, update and touch on one server', async () => {
        const counting = new CountingClient(client);
        const store = new RedisStore({ client: counting, prefix });
        const key = randomStoreKey();
        // The first use of each script may meet NOSCRIPT once; warm the cache before counting.
        await store.create(randomStoreKey(), {
          data: 'x',
          expiresAt: Date.now() + minute,
          userId: 'warm',
        });
        await store.update(key, { data: 'x', expiresAt: Date.now() + minute, userId: null }, 1);
        await store.touch(key, Date.now() + minute);

        const measure = async (run: () => unknown) => {
          counting.calls = [];
          await run();
          return counting.calls;
        };
        const at = Date.now() + 10 * minute;
        expect(
          await measure(() => store.create(key, { data: 'a', expiresAt: at, userId: 'bob' })),
        ).toEqual(['EVALSHA']);
        expect(await measure(() => store.get(key))).toEqual(['HMGET']);
        expect(
          await measure(() => store.update(key, { data: 'b', expiresAt: at, userId: 'bob' }, 1)),
        ).toEqual(['EVALSHA']);
        expect(
          await measure(() => store.update(key, { data: 'c', expiresAt: at, userId: 'carol' }, 2)),
        ).toEqual(['EVALSHA']);
        expect(await measure(() => store.touch(key, at + minute))).toEqual(['EVALSHA']);
        expect(
          await measure(() => store.update(key, { data: 'd', expiresAt: at, userId: null }, 3)),
        ).toEqual(['EVALSHA']);
      });

      it('keeps a user-bound session in its index when touched past the index entry', async () => {
        for (const cluster of [false, true]) {
          const store = new RedisStore({ client, prefix, cluster, indexHeadroom: 0 });
          const user = `u-${randomBytes(4).toString('hex')}`;
          const key = randomStoreKey();
          const first = Date.now() + minute;
          await store.create(key, { data: 'x', expiresAt: first, userId: user });
          const later = first + 60 * minute;
          expect(await store.touch(key, later)).toBe(true);
          expect(await client.zScore(store.userIndexKey(user), key)).toBeGreaterThanOrEqual(later);
          expect(await client.pExpireTime(store.userIndexKey(user))).toBeGreaterThanOrEqual(later);
          expect(await store.get(key)).toMatchObject({
            expiresAt: later,
            userId: user,
            version: 1,
          });

          const evenLater = later + 60 * minute;
          const result = await store.update(
            key,
            { data: 'y', expiresAt: evenLater, userId: user },
            1,
          );
          expect(result).toEqual({ status: 'ok', version: 2 });
          expect(await client.zScore(store.userIndexKey(user), key)).toBeGreaterThanOrEqual(
            evenLater,
          );
          expect(await store.deleteByUser(user)).toBe(1);
          expect(await store.get(key)).toBeNull();
        }
      });

      it('ignores stale index entries of a session that moved to another user', async () => {
        const store = new RedisStore({ client, prefix, cluster: true });
        const key = randomStoreKey();
        const at = Date.now() + 10 * minute;
        await store.create(key, { data: 'x', expiresAt: at, userId: 'alice' });
        await store.update(key, { data: 'x', expiresAt: at, userId: 'bob' }, 1);
        expect(await client.zRange(store.userIndexKey('alice'), 0, -1)).toEqual([key]);
        expect(await store.listByUser('alice')).toEqual([]);
        expect(await store.deleteByUser('alice')).toBe(0);
        expect((await store.get(key))?.userId).toBe('bob');
        expect((await store.listByUser('bob')).map((row) => row.key)).toEqual([key]);
      });

      it('removes a deleted session from its user index', async () => {
        const store = new RedisStore({ client, prefix });
        const key = randomStoreKey();
        await store.create(key, { data: 'x', expiresAt: Date.now() + minute, userId: 'alice' });
        await store.delete(key);
        expect(await keysUnder(client, prefix)).toEqual([]);
      });

      it('rejects bad options with a typed error', () => {
        const bad = (options: unknown) => () => new RedisStore(options as never);
        for (const options of [undefined, {}, { client: {} }, { client, prefix: 5 }]) {
          expect(bad(options)).toThrow(SessionError);
          try {
            bad(options)();
          } catch (error) {
            expect((error as SessionError).code).toBe('INVALID_OPTION');
          }
        }
      });

      it('called directly, keeps a user ID with U+0000, or of 10,000 characters, exactly and apart from its prefix', async () => {
        for (const cluster of [false, true]) {
          const store = new RedisStore({ client, prefix, cluster });
          for (const [userId, userPrefix] of [
            ['user\u0000x', 'user'],
            ['u'.repeat(10_000), 'u'.repeat(9_999)],
          ] as const) {
            const created = randomStoreKey();
            const updated = randomStoreKey();
            const at = Date.now() + 10 * minute;
            expect(await store.create(created, { data: 'a', expiresAt: at, userId })).toBe(true);
            expect(await store.create(updated, { data: 'b', expiresAt: at, userId: null })).toBe(
              true,
            );
            expect(await store.update(updated, { data: 'b', expiresAt: at, userId }, 1)).toEqual({
              status: 'ok',
              version: 2,
            });
            const listed = await store.listByUser(userId);
            expect(listed.map((row) => row.key).sort()).toEqual([created, updated].sort());
            expect(listed.every((row) => row.userId === userId)).toBe(true);
            expect(await store.listByUser(userPrefix)).toEqual([]);
            expect(await store.deleteByUser(userId)).toBe(2);
          }
        }
      });

      it('keeps raw session IDs out of Redis: only their hashes are stored', async () => {
        const store = new RedisStore({ client, prefix });
        const manager = new SessionManager({ store, secrets });
        const cookies: string[] = [];
        for (const user of ['alice', 'bob', 'alice']) {
          const session = await manager.load({});
          session.set('k', 'v');
          session.setUser(user);
          const { setCookie } = await manager.commit(session);
          cookies.push(cookieValue(setCookie));
        }

        let dump = '';
        for (const name of await keysUnder(client, prefix)) {
          dump += `\n${name} (${await client.type(name)})`;
          if ((await client.type(name)) === 'hash') {
            for (const [field, value] of Object.entries(await client.hGetAll(name)))
              dump += `\n  ${field}=${value}`;
          } else {
            for (const { value, score } of await client.zRangeWithScores(name, 0, -1))
              dump += `\n  ${value}@${score}`;
          }
        }
        expect(cookies).toHaveLength(3);
        for (const value of cookies) {
          const [id, signature] = value.split('.');
          expect(id).toHaveLength(43);
          expect(dump).not.toContain(id!);
          expect(dump).not.toContain(signature!);
          expect(dump).toContain(createHash('sha256').update(id!).digest('base64url'));
          expect((await manager.load({ cookie: `sid=${value}` })).get('k')).toBe('v');
        }
      });
    });
  },
);

describe.skipIf(!privateGate.available)(
  `RedisStore outages (private redis-server)${privateGate.label}`,
  () => {
    let server: RedisServerProcess;

    beforeAll(async () => {
      server = await RedisServerProcess.start();
    });
    afterAll(async () => {
      await server?.stop();
    });

    async function expectUnavailable(
      manager: SessionManager,
      cookie: string,
      boundMs: number,
    ): Promise<void> {
      const started = Date.now();
      const error = await Promise.resolve(manager.load({ cookie })).then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(SessionError);
      expect((error as SessionError).code).toBe('STORE_UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(boundMs);
    }

    async function signIn(manager: SessionManager): Promise<string> {
      const session = await manager.load({});
      session.set('k', 'v');
      session.setUser('alice');
      return `sid=${cookieValue((await manager.commit(session)).setCookie)}`;
    }

    it('rejects while the connection is cut, then works again with its data, without a new store', async () => {
      const proxy = new TcpProxy('127.0.0.1', server.port);
      const port = await proxy.start();
      const client = await connect(port, { disableOfflineQueue: true });
      try {
        const store = new RedisStore({ client, prefix: testPrefix() });
        const manager = new SessionManager({ store, secrets, storeTimeout: 1000 });
        const cookie = await signIn(manager);
        const key = (await store.listByUser('alice'))[0]!.key;

        await proxy.stop();
        await expect(store.get(key)).rejects.toThrow();
        await expect(
          store.create(randomStoreKey(), {
            data: 'x',
            expiresAt: Date.now() + minute,
            userId: null,
          }),
        ).rejects.toThrow();
        await expectUnavailable(manager, cookie, 2_500);

        await proxy.start();
        const session = await eventually(() => manager.load({ cookie }));
        expect(session.get('k')).toBe('v');
        expect(session.userId).toBe('alice');
        session.set('k', 'v2');
        await manager.commit(session);
        expect((await manager.load({ cookie })).get('k')).toBe('v2');
        expect(await store.listByUser('alice')).toHaveLength(1);
      } finally {
        await client.close().catch(() => undefined);
        await proxy.stop();
      }
    });

    it('times out while the server hangs, then answers with its data', async () => {
      // A hung connection is only dropped by the client when it has a socket timeout, pings to
      // keep a healthy idle connection busy, and a reconnect strategy (node-redis's default one
      // gives up after a socket timeout).
      const client = await connect(
        server.port,
        { disableOfflineQueue: true, pingInterval: 200 },
        700,
      );
      try {
        const prefix = testPrefix();
        const store = new RedisStore({ client, prefix });
        const manager = new SessionManager({ store, secrets, storeTimeout: 1000 });
        const cookie = await signIn(manager);
        const key = (await store.listByUser('alice'))[0]!.key;
        // Without a socket timeout, only the manager's timeout ends the wait.
        const plainClient = await connect(server.port, { disableOfflineQueue: true });
        const plainManager = new SessionManager({
          store: new RedisStore({ client: plainClient, prefix }),
          secrets,
          storeTimeout: 1000,
        });

        server.pause();
        try {
          const started = Date.now();
          await expect(store.get(key)).rejects.toThrow(/timeout/i);
          expect(Date.now() - started).toBeLessThan(2_000);
          await expectUnavailable(manager, cookie, 2_500);
          await expectUnavailable(plainManager, cookie, 2_500);
        } finally {
          server.resume();
        }
        expect((await eventually(() => plainManager.load({ cookie }))).get('k')).toBe('v');
        await plainClient.close();
        const session = await eventually(() => manager.load({ cookie }));
        expect(session.get('k')).toBe('v');
        session.set('k', 'v3');
        await manager.commit(session);
        expect((await manager.load({ cookie })).get('k')).toBe('v3');
      } finally {
        await client.close().catch(() => undefined);
      }
    });

    it('works again after the server restarts empty (scripts are loaded again on NOSCRIPT)', async () => {
      const client = await connect(server.port, { disableOfflineQueue: true });
      try {
        const store = new RedisStore({ client, prefix: testPrefix() });
        const manager = new SessionManager({ store, secrets, storeTimeout: 1000 });
        const cookie = await signIn(manager);

        const port = server.port;
        await server.stop();
        await expectUnavailable(manager, cookie, 2_500);
        server = await RedisServerProcess.start({ port });
        expect((await redisCli(port, ['SCRIPT', 'EXISTS', 'x'])).trim()).toBe('0');

        // The server kept nothing (no persistence): the session is truly gone, not "unavailable".
        const fresh = await eventually(() => manager.load({ cookie }));
        expect(fresh.get('k')).toBeUndefined();
        const again = await signIn(manager);
        expect((await manager.load({ cookie: again })).get('k')).toBe('v');
        expect(await store.listByUser('alice')).toHaveLength(1);
      } finally {
        await client.close().catch(() => undefined);
      }
    });
  },
);
