import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createClient } from 'redis';
import { defineStoreConformance, randomStoreKey } from '../src/testing/index.js';
import { RedisStore, type RedisStoreClient } from '../src/stores/redis.js';
import { SessionCache } from '../src/stores/redis/client-cache.js';
import type { SessionRecord, SessionStore, StoredRecord } from '../src/store.js';
import { SessionManager } from '../src/manager.js';
import { SHARED, requireService, requireShared } from './support/services.js';
import { FakeClock } from './support/fixtures.js';
import { RedisServerProcess, redisBinariesAvailable } from './support/redis-server.js';

type Client = ReturnType<typeof createClient>;

const sharedGate = await requireShared(SHARED.redis);
const privateGate = await requireService('redis-server binaries', redisBinariesAvailable);

const secrets = ['c'.repeat(32)];
const testPrefix = () => `tessera-test-csc:${randomBytes(6).toString('hex')}:`;
const cookieOf = (setCookie: readonly string[]) =>
  `sid=${/^sid=([^;]+)/.exec(setCookie[0] ?? '')?.[1] ?? ''}`;
/** The store key of a cookie's session: the SHA-256 of its ID. */
const storeKeyOf = (cookie: string) =>
  createHash('sha256')
    .update(/^sid=([^.]+)/.exec(cookie)![1]!)
    .digest('base64url');
const record = (data: string, userId: string | null = null): SessionRecord => ({
  data,
  expiresAt: Date.now() + 600_000,
  userId,
});
const stored = (data: string, version = 1): StoredRecord => ({ ...record(data), version });

/** A client as the documentation shows it: RESP3 with tracking, no offline queue. */
async function trackingClient(url: string): Promise<Client> {
  const client = createClient({
    url,
    RESP: 3,
    emitInvalidate: true,
    disableOfflineQueue: true,
    socket: { reconnectStrategy: (retries: number) => Math.min(20 * (retries + 1), 200) },
  });
  client.on('error', () => undefined);
  await client.connect();
  return client as unknown as Client;
}

async function plainClient(url: string): Promise<Client> {
  const client = createClient({ url });
  client.on('error', () => undefined);
  await client.connect();
  return client as Client;
}

/** Counts the `HMGET`s the store sends through `client` (its only read command). */
function countReads(client: Client): { readonly count: number } {
  const counter = { count: 0 };
  const hmGet = client.hmGet.bind(client);
  (client as unknown as RedisStoreClient).hmGet = (key, fields) => {
    counter.count++;
    return hmGet(key, fields);
  };
  return counter;
}

/** Resolves when `client` has received Redis's invalidation of `key`. */
function invalidation(client: Client, key: string): Promise<void> {
  return new Promise((resolve) => {
    const listener = (invalidated: unknown) => {
      if (invalidated !== null && String(invalidated) !== key) return;
      client.off('invalidate', listener);
      resolve();
    };
    client.on('invalidate', listener);
  });
}

async function deleteUnder(client: Client, prefix: string): Promise<void> {
  const keys: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
    keys.push(...batch);
  if (keys.length > 0) await client.del(keys);
}

/** A stand-in for a ready node-redis client created with RESP 3 and emitInvalidate. */
class FakeTrackingClient extends EventEmitter implements RedisStoreClient {
  readonly options: Record<string, unknown> = { RESP: 3, emitInvalidate: true };
  isReady = true;
  evalSha = async () => null;
  eval = async () => null;
  hmGet = async () => [];
}

describe('RedisStore clientSideCache option', () => {
  const plain: RedisStoreClient = {
    evalSha: async () => null,
    eval: async () => null,
    hmGet: async () => [],
  };
  const refused = (options: ConstructorParameters<typeof RedisStore>[0], message: RegExp) =>
    expect(() => new RedisStore(options)).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(message) }),
    );

  it('is off by default, and on with true or a bound, on a client with tracking', () => {
    expect(new RedisStore({ client: plain })).toBeInstanceOf(RedisStore);
    expect(new RedisStore({ client: plain, clientSideCache: false })).toBeInstanceOf(RedisStore);
    for (const option of [true, {}, { maxEntries: 1 }, { maxEntries: 10_000_000, maxAge: 1 }]) {
      const client = new FakeTrackingClient();
      expect(new RedisStore({ client, clientSideCache: option })).toBeInstanceOf(RedisStore);
      expect(client.listenerCount('invalidate')).toBe(1);
    }
  });

  it('refuses a value that is neither a boolean nor an options object', () => {
    for (const value of ['yes', 1, null]) {
      refused(
        { client: new FakeTrackingClient(), clientSideCache: value as unknown as boolean },
        /^RedisStore: clientSideCache must be true, false or an options object/,
      );
    }
  });

  it('refuses a bound that is not a whole number from 1 to 10,000,000', () => {
    for (const maxEntries of [0, -1, 1.5, '10', Number.NaN, 10_000_001]) {
      refused(
        { client: new FakeTrackingClient(), clientSideCache: { maxEntries: maxEntries as number } },
        /clientSideCache\.maxEntries must be a whole number from 1 to 10000000/,
      );
    }
  });

  it('refuses a maxAge that is not a whole number of milliseconds from 1 to one day', () => {
    for (const maxAge of [0, -1, 1.5, '10', Infinity, 86_400_001]) {
      refused(
        { client: new FakeTrackingClient(), clientSideCache: { maxAge: maxAge as number } },
        /clientSideCache\.maxAge must be a whole number from 1 to 86400000/,
      );
    }
  });

  it('refuses a client without RESP3 client tracking, and a cluster', () => {
    refused({ client: plain, clientSideCache: true }, /needs client tracking.*emitInvalidate/);
    for (const options of [{ RESP: 2, emitInvalidate: true }, { RESP: 3 }]) {
      const client = Object.assign(new FakeTrackingClient(), { options });
      refused({ client, clientSideCache: true }, /needs client tracking/);
    }
    const cluster = Object.assign(new FakeTrackingClient(), { masters: [] });
    refused({ client: cluster, clientSideCache: true }, /needs a single server/);
  });

  it("refuses a client with node-redis's own cache, whatever the option", () => {
    const client = Object.assign(new FakeTrackingClient(), {
      options: { RESP: 3, clientSideCache: { maxEntries: 10 } },
    });
    refused({ client }, /the client has node-redis's clientSideCache/);
    refused({ client, clientSideCache: true }, /the client has node-redis's clientSideCache/);
  });

  it('stops following the client when closed', async () => {
    const client = new FakeTrackingClient();
    const store = new RedisStore({ client, clientSideCache: true });
    expect(client.listenerCount('invalidate') + client.listenerCount('ready')).toBe(2);
    await store.close();
    expect(client.listenerCount('invalidate') + client.listenerCount('ready')).toBe(0);
  });
});

describe('SessionCache', () => {
  /** A read whose answer the test releases. */
  function pending() {
    let release!: (record: StoredRecord | null) => void;
    const promise = new Promise<StoredRecord | null>((resolve) => (release = resolve));
    return { promise, release };
  }

  it('answers a copy of what it keeps, and nothing while the client is not ready', async () => {
    const client = new FakeTrackingClient();
    const cache = new SessionCache(client, { maxEntries: 10, maxAge: 60_000 });
    expect(cache.get('k')).toBeUndefined();
    expect(await cache.fill('k', Promise.resolve(stored('"a"')))).toMatchObject({ data: '"a"' });
    const hit = cache.get('k')!;
    hit.data = 'changed';
    expect(cache.get('k')).toMatchObject({ data: '"a"' });
    await cache.fill('gone', Promise.resolve(null));
    expect(cache.get('gone')).toBeNull();

    client.isReady = false;
    expect(cache.get('k')).toBeUndefined();
    client.isReady = true;
    client.emit('ready'); // a new connection: nothing read before it is followed
    expect(cache.get('k')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('forgets a key on its invalidation, and everything on a flush', async () => {
    const client = new FakeTrackingClient();
    const cache = new SessionCache(client, { maxEntries: 10, maxAge: 60_000 });
    await cache.fill('a', Promise.resolve(stored('1')));
    await cache.fill('b', Promise.resolve(stored('2')));
    client.emit('invalidate', Buffer.from('a'));
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toBeDefined();
    client.emit('invalidate', null);
    expect(cache.size).toBe(0);
  });

  it('does not keep an answer whose key was invalidated, or the cache emptied, on its way', async () => {
    const client = new FakeTrackingClient();
    const cache = new SessionCache(client, { maxEntries: 10, maxAge: 60_000 });
    const first = pending();
    const filled = cache.fill('k', first.promise);
    client.emit('invalidate', 'k');
    first.release(stored('old'));
    expect(await filled).toMatchObject({ data: 'old' }); // answered, not kept
    expect(cache.get('k')).toBeUndefined();

    const second = pending();
    const again = cache.fill('k', second.promise);
    client.emit('ready');
    second.release(stored('old'));
    await again;
    expect(cache.get('k')).toBeUndefined();
  });

  it('keeps a read sent after the invalidation while an older one is still on its way', async () => {
    const client = new FakeTrackingClient();
    const cache = new SessionCache(client, { maxEntries: 10, maxAge: 60_000 });
    const older = pending();
    const olderFilled = cache.fill('k', older.promise);
    client.emit('invalidate', 'k');
    const newer = pending();
    const newerFilled = cache.fill('k', newer.promise);
    newer.release(stored('new', 2));
    await newerFilled;
    older.release(stored('old', 1));
    await olderFilled;
    expect(cache.get('k')).toMatchObject({ data: 'new', version: 2 });
  });

  it('reads a session from Redis again once it is maxAge old', async () => {
    const clock = new FakeClock();
    const cache = new SessionCache(
      new FakeTrackingClient(),
      { maxEntries: 10, maxAge: 1_000 },
      clock.now,
    );
    await cache.fill('k', Promise.resolve(stored('a')));
    clock.advance(999);
    expect(cache.get('k')).toMatchObject({ data: 'a' });
    clock.advance(1);
    expect(cache.get('k')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('keeps at most its bound, dropping the session read least recently', async () => {
    const cache = new SessionCache(new FakeTrackingClient(), { maxEntries: 3, maxAge: 60_000 });
    for (const key of ['a', 'b', 'c']) await cache.fill(key, Promise.resolve(stored(key)));
    cache.get('a');
    await cache.fill('d', Promise.resolve(stored('d')));
    expect(cache.size).toBe(3);
    expect(cache.get('b')).toBeUndefined();
    for (const key of ['a', 'c', 'd']) expect(cache.get(key)).toMatchObject({ data: key });
  });
});

describe.skipIf(!sharedGate.available)(
  `RedisStore with client-side caching on ${SHARED.redis.host}:${SHARED.redis.port}${sharedGate.label}`,
  () => {
    let client: Client;
    let other: Client;
    const prefixes = new Map<SessionStore, string>();
    let prefix: string;

    beforeAll(async () => {
      client = await trackingClient(SHARED.redis.url);
      other = await plainClient(SHARED.redis.url);
    });
    afterAll(async () => {
      await client?.close();
      await other?.close();
    });

    defineStoreConformance({
      name: 'RedisStore, RESP3 with client-side caching',
      createStore: () => {
        const prefix = testPrefix();
        const store = new RedisStore({ client, prefix, clientSideCache: true });
        prefixes.set(store, prefix);
        return store;
      },
      destroyStore: async (store) => {
        await store.close?.();
        await deleteUnder(other, prefixes.get(store)!);
        prefixes.delete(store);
      },
      injectedClock: false,
      prune: false,
      runner: { describe, it, beforeEach, afterEach },
    });

    describe('behaviour', () => {
      let own: Client;
      beforeEach(async () => {
        prefix = testPrefix();
        own = await trackingClient(SHARED.redis.url);
      });
      afterEach(async () => {
        await own.close();
        await deleteUnder(other, prefix);
      });

      /** This instance's store (caching, on its own client) and another instance's. */
      const stores = (maxEntries = 100) => ({
        here: new RedisStore({ client: own, prefix, clientSideCache: { maxEntries } }),
        there: new RedisStore({ client: other, prefix }),
      });

      it('answers a hot session from memory, at once and sending nothing', async () => {
        const { here } = stores();
        const reads = countReads(own);
        const key = randomStoreKey();
        await here.create(key, record('"a"'));
        const first = await here.get(key);
        expect(reads.count).toBe(1);
        for (let i = 0; i < 50; i++) {
          const answer = here.get(key);
          expect(answer).not.toBeInstanceOf(Promise);
          expect(answer).toEqual(first);
        }
        expect(reads.count).toBe(1);
      });

      it('sees a write, a logout and a revocation by another instance once its invalidation arrived', async () => {
        const { here, there } = stores();
        const user = `u-${randomBytes(4).toString('hex')}`;
        const [written, ended, revoked] = [randomStoreKey(), randomStoreKey(), randomStoreKey()];
        for (const key of [written, ended, revoked]) await there.create(key, record('"a"', user));
        for (const key of [written, ended, revoked]) expect(await here.get(key)).not.toBeNull();

        let arrived = invalidation(own, here.sessionKey(written));
        expect(await there.update(written, record('"b"', user), 1)).toEqual({
          status: 'ok',
          version: 2,
        });
        await arrived;
        expect(await here.get(written)).toMatchObject({ data: '"b"', version: 2 });

        arrived = invalidation(own, here.sessionKey(ended));
        await there.delete(ended);
        await arrived;
        expect(await here.get(ended)).toBeNull();

        arrived = invalidation(own, here.sessionKey(revoked));
        expect(await there.deleteByUser(user, written)).toBe(1);
        await arrived;
        expect(await here.get(revoked)).toBeNull();
        expect(await here.get(written)).toMatchObject({ data: '"b"' });
      });

      it("ends a request's session here when another instance signs the user out everywhere", async () => {
        const store = new RedisStore({ client: own, prefix, clientSideCache: true });
        const here = new SessionManager({ store, secrets });
        const there = new SessionManager({
          store: new RedisStore({ client: other, prefix }),
          secrets,
        });
        const session = await here.load({});
        session.set('cart', 3);
        session.setUser('alice');
        const cookie = cookieOf((await here.commit(session)).setCookie);
        expect((await here.load({ cookie })).userId).toBe('alice');

        const arrived = invalidation(own, store.sessionKey(storeKeyOf(cookie)));
        expect(await there.revokeUserSessions('alice')).toBe(1);
        await arrived;
        const after = await here.load({ cookie });
        expect(after.isNew).toBe(true);
        expect(after.userId).toBeNull();
      });

      it('reads its own write at once, without waiting for the invalidation', async () => {
        // With tracking off on this connection Redis sends no invalidation at all, so only the
        // store's own drop after a write keeps this process from reading its old copy.
        const { here } = stores();
        const key = randomStoreKey();
        await here.create(key, record('"a"'));
        expect(await here.get(key)).toMatchObject({ version: 1 });
        await own.sendCommand(['CLIENT', 'TRACKING', 'OFF']);
        expect(await here.update(key, record('"b"'), 1)).toEqual({ status: 'ok', version: 2 });
        expect(await here.get(key)).toMatchObject({ data: '"b"', version: 2 });
        expect(await here.touch(key, Date.now() + 900_000)).toBe(true);
        expect((await here.get(key))?.expiresAt).toBeGreaterThan(Date.now() + 800_000);
        await here.delete(key);
        expect(await here.get(key)).toBeNull();
      });

      it('never takes the version of a compare-and-set from the cache: a stale copy is dropped on conflict', async () => {
        const store = new RedisStore({ client: own, prefix, clientSideCache: true });
        const here = new SessionManager({ store, secrets });
        const there = new SessionManager({
          store: new RedisStore({ client: other, prefix }),
          secrets,
        });
        const first = await here.load({});
        first.set('a', 1);
        const cookie = cookieOf((await here.commit(first)).setCookie);
        const session = await here.load({ cookie }); // read from Redis at version 1, kept

        // An invalidation held back: Redis stops telling this connection about writes.
        await own.sendCommand(['CLIENT', 'TRACKING', 'OFF']);
        const elsewhere = await there.load({ cookie });
        elsewhere.set('b', 2);
        await there.commit(elsewhere);
        expect((await here.load({ cookie })).get('b')).toBeUndefined(); // the stale copy

        session.set('c', 3);
        await here.commit(session); // update at version 1: conflict, then a re-read from Redis
        expect((await there.load({ cookie })).toJSON()).toEqual({ a: 1, b: 2, c: 3 });
      });

      it('replays of a logged-out cookie get nothing, and a write from a stale copy does not bring the session back', async () => {
        const store = new RedisStore({ client: own, prefix, clientSideCache: true });
        const here = new SessionManager({ store, secrets });
        const there = new SessionManager({
          store: new RedisStore({ client: other, prefix }),
          secrets,
        });
        const login = async () => {
          const session = await here.load({});
          session.set('a', 1);
          return cookieOf((await here.commit(session)).setCookie);
        };

        // Logout here: the same process never answers the deleted session from its cache.
        const ended = await login();
        const session = await here.load({ cookie: ended });
        await session.destroy();
        await here.commit(session);
        expect((await here.load({ cookie: ended })).isNew).toBe(true);

        // Logout elsewhere, its invalidation held back: the stale copy may be read, but its save
        // finds no record and writes nothing.
        const cookie = await login();
        await here.load({ cookie });
        await own.sendCommand(['CLIENT', 'TRACKING', 'OFF']);
        const elsewhere = await there.load({ cookie });
        await elsewhere.destroy();
        await there.commit(elsewhere);
        const stale = await here.load({ cookie });
        expect(stale.get('a')).toBe(1);
        stale.set('a', 2);
        await here.commit(stale);
        expect(await store.get(storeKeyOf(cookie))).toBeNull();
        expect((await there.load({ cookie })).isNew).toBe(true);
      });

      it('keeps at most maxEntries sessions', async () => {
        const { here, there } = stores(4);
        const reads = countReads(own);
        const keys = Array.from({ length: 12 }, () => randomStoreKey());
        for (const [i, key] of keys.entries()) await there.create(key, record(String(i)));
        for (const [i, key] of keys.entries())
          expect(await here.get(key)).toMatchObject({ data: String(i) });
        expect(reads.count).toBe(12);
        for (const key of keys.slice(-4)) await here.get(key); // still kept
        expect(reads.count).toBe(12);
        for (const key of keys.slice(0, 4)) await here.get(key); // evicted long ago
        expect(reads.count).toBe(16);
      });

      it('empties the cache when its connection is lost, and reads what was written meanwhile', async () => {
        const { here, there } = stores();
        const reads = countReads(own);
        const key = randomStoreKey();
        await there.create(key, record('"a"'));
        expect(await here.get(key)).toMatchObject({ version: 1 });
        expect(await here.get(key)).toMatchObject({ version: 1 });
        expect(reads.count).toBe(1);

        // Only this test's own connection is killed, by its ID.
        const id = await own.clientId();
        const ready = new Promise((resolve) => own.once('ready', resolve));
        expect(await other.sendCommand(['CLIENT', 'KILL', 'ID', String(id)])).toBe(1);
        // Written while this client has no connection: no invalidation can reach it.
        expect(await there.update(key, record('"b"'), 1)).toMatchObject({ status: 'ok' });
        await ready;
        expect(await own.clientId()).not.toBe(id);
        expect(await here.get(key)).toMatchObject({ data: '"b"', version: 2 });
        expect(reads.count).toBe(2);
      });
    });
  },
);

/** `INFO commandstats` as calls by command. */
function commandCalls(info: string): Map<string, number> {
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    calls.set(match[1]!, Number(match[2]));
  return calls;
}

describe.skipIf(!privateGate.available)(
  `RedisStore client-side caching, counted by a private redis-server${privateGate.label}`,
  () => {
    let server: RedisServerProcess;

    beforeAll(async () => {
      server = await RedisServerProcess.start();
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('serves read-only requests for a hot session with 0 commands reaching the server', async () => {
      const url = `redis://127.0.0.1:${server.port}`;
      const client = await trackingClient(url);
      const stats = await plainClient(url);
      try {
        const store = new RedisStore({ client, prefix: testPrefix(), clientSideCache: true });
        const manager = new SessionManager({ store, secrets });
        const session = await manager.load({});
        session.set('n', 1);
        session.setUser('bob');
        const cookie = cookieOf((await manager.commit(session)).setCookie);
        await manager.load({ cookie }); // the one read from Redis

        const before = commandCalls(await stats.info('commandstats'));
        const requests = 200;
        for (let i = 0; i < requests; i++) {
          const read = await manager.load({ cookie });
          expect(read.get('n')).toBe(1);
          await manager.commit(read);
        }
        const after = commandCalls(await stats.info('commandstats'));
        let sent = 0;
        for (const [command, calls] of after)
          if (command !== 'info') sent += calls - (before.get(command) ?? 0);
        expect(sent / requests).toBe(0);
      } finally {
        await client.close();
        await stats.close();
      }
    });
  },
);
