import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createCluster } from 'redis';
import { defineStoreConformance, randomStoreKey } from '../src/testing/index.js';
import { RedisStore } from '../src/stores/redis.js';
import type { SessionStore } from '../src/store.js';
import { requireService } from './support/services.js';
import { RedisClusterProcesses, redisBinariesAvailable } from './support/redis-server.js';

type Cluster = ReturnType<typeof createCluster>;

const gate = await requireService(
  'redis-server binaries (for a private Redis Cluster)',
  redisBinariesAvailable,
);

const testPrefix = () => `tessera-test:${randomBytes(6).toString('hex')}:`;
const minute = 60_000;

describe.skipIf(!gate.available)(`RedisStore on a 3-master Redis Cluster${gate.label}`, () => {
  let processes: RedisClusterProcesses;
  let cluster: Cluster;
  const prefixes = new Map<SessionStore, string>();

  /** Every key under `prefix` on every master, found with SCAN MATCH. */
  async function keysUnder(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for (const master of cluster.masters) {
      const node = await cluster.nodeClient(master);
      for await (const batch of node.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
        keys.push(...batch);
    }
    return keys;
  }

  async function deleteUnder(prefix: string): Promise<void> {
    // Keys of different slots cannot share one DEL on a cluster.
    await Promise.all((await keysUnder(prefix)).map((key) => cluster.del(key)));
  }

  async function slotOf(key: string): Promise<number> {
    return (await cluster.nodeClient(cluster.masters[0]!)).clusterKeySlot(key);
  }

  /** The port of the master that serves `key`. */
  async function portOf(key: string): Promise<number> {
    return cluster.slots[await slotOf(key)]!.master.port;
  }

  beforeAll(async () => {
    processes = await RedisClusterProcesses.start(3);
    cluster = createCluster({
      rootNodes: processes.rootNodes,
      defaults: {
        disableOfflineQueue: true,
        socket: { reconnectStrategy: (retries: number) => Math.min(50 * (retries + 1), 500) },
      },
    });
    cluster.on('error', () => undefined);
    await cluster.connect();
  });
  afterAll(async () => {
    await cluster?.close();
    await processes?.stop();
  });

  defineStoreConformance({
    name: 'RedisStore (Redis Cluster)',
    createStore: () => {
      const prefix = testPrefix();
      const store = new RedisStore({ client: cluster, prefix });
      prefixes.set(store, prefix);
      return store;
    },
    destroyStore: async (store) => {
      await deleteUnder(prefixes.get(store)!);
      prefixes.delete(store);
    },
    injectedClock: false,
    prune: false,
    runner: { describe, it, beforeEach, afterEach },
  });

  describe('Redis Cluster specifics', () => {
    let prefix: string;
    beforeEach(() => {
      prefix = testPrefix();
    });
    afterEach(async () => {
      await deleteUnder(prefix);
    });

    it('detects the cluster client', async () => {
      const store = new RedisStore({ client: cluster, prefix });
      const forcedSingle = new RedisStore({ client: cluster, prefix, cluster: false });
      const indexSlot = await slotOf(store.userIndexKey('u'));
      let key = randomStoreKey();
      while ((await slotOf(store.sessionKey(key))) === indexSlot) key = randomStoreKey();
      const record = { data: 'x', expiresAt: Date.now() + minute, userId: 'u' };
      // A single-server store sends the session and the index to one script: CROSSSLOT here.
      await expect(forcedSingle.create(key, record)).rejects.toThrow(/CROSSSLOT/);
      await expect(store.create(key, record)).resolves.toBe(true);
      expect((await store.listByUser('u')).map((row) => row.key)).toEqual([key]);
    });

    it("finds, moves and ends a user's sessions spread over several masters", async () => {
      const store = new RedisStore({ client: cluster, prefix });
      const user = `odd:{user} ${randomBytes(3).toString('hex')}`;
      const keys: string[] = [];
      const ports = new Set<number>();
      while (ports.size < 3 && keys.length < 100) {
        const key = randomStoreKey();
        await store.create(key, {
          data: `d-${key}`,
          expiresAt: Date.now() + 10 * minute,
          userId: user,
        });
        keys.push(key);
        ports.add(await portOf(store.sessionKey(key)));
      }
      expect(ports.size).toBe(3);
      const indexPort = await portOf(store.userIndexKey(user));
      expect([...ports].some((port) => port !== indexPort)).toBe(true);

      const listed = await store.listByUser(user);
      expect(listed.map((row) => row.key).sort()).toEqual([...keys].sort());
      for (const row of listed) expect(row.data).toBe(`d-${row.key}`);

      const moved = keys[1]!;
      expect(
        await store.update(
          moved,
          { data: 'm', expiresAt: Date.now() + 10 * minute, userId: 'other' },
          1,
        ),
      ).toEqual({
        status: 'ok',
        version: 2,
      });
      expect((await store.listByUser(user)).map((row) => row.key)).not.toContain(moved);

      expect(await store.deleteByUser(user, keys[0])).toBe(keys.length - 2);
      expect((await store.listByUser(user)).map((row) => row.key)).toEqual([keys[0]]);
      expect((await store.get(moved))?.userId).toBe('other');
      for (const key of keys.slice(2)) expect(await store.get(key)).toBeNull();
    });

    it('indexes a session one hour (indexMargin) past its expiry by default, in the slot of its user', async () => {
      const store = new RedisStore({ client: cluster, prefix });
      const key = randomStoreKey();
      const expiresAt = Date.now() + 10 * minute;
      await store.create(key, { data: 'd', expiresAt, userId: 'alice' });
      expect(await cluster.zScore(store.userIndexKey('alice'), key)).toBe(expiresAt + 60 * minute);
      expect(await cluster.hGet(store.sessionKey(key), 'indexedUntil')).toBe(
        String(expiresAt + 60 * minute),
      );
    });

    it('called directly, keeps a user ID with U+0000, or of 10,000 characters, exactly', async () => {
      const store = new RedisStore({ client: cluster, prefix });
      for (const [userId, userPrefix] of [
        ['user\u0000x', 'user'],
        ['u'.repeat(10_000), 'u'.repeat(9_999)],
      ] as const) {
        const created = randomStoreKey();
        const updated = randomStoreKey();
        const at = Date.now() + 10 * minute;
        expect(await store.create(created, { data: 'a', expiresAt: at, userId })).toBe(true);
        expect(await store.create(updated, { data: 'b', expiresAt: at, userId: null })).toBe(true);
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
    });
  });
});
