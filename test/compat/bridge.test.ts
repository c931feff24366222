import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { RedisStore } from 'connect-redis';
import express from 'express';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore, fromExpressSessionStore } from '../../src/compat/express-session/index.js';
import { session as tesseraSession } from '../../src/adapters/express.js';
import { SessionManager } from '../../src/manager.js';
import { hasUserIndex, type SessionStore } from '../../src/store.js';
import type { StoreFailure } from '../../src/store-calls.js';
import { defineStoreConformance } from '../../src/testing/index.js';
import { SHARED, requireShared } from '../support/services.js';
import { Browser, listen, type Running } from './helpers.js';

const expressSession = createRequire(import.meta.url)('express-session') as any;
const runner = { describe, it, beforeEach, afterEach };

// The bridge keeps time on the clock it is given; the express-session stores below never see it.
defineStoreConformance({
  name: 'fromExpressSessionStore(tessera-session/express-session MemoryStore)',
  createStore: (clock) =>
    fromExpressSessionStore(new MemoryStore({ now: clock.now, sweepInterval: 0 }), {
      now: clock.now,
    }),
  prune: false,
  runner,
});

defineStoreConformance({
  name: "fromExpressSessionStore(express-session's MemoryStore)",
  createStore: (clock) =>
    fromExpressSessionStore(new expressSession.MemoryStore(), { now: clock.now }),
  prune: false,
  runner,
});

/** An express-session store over a Map, with `all()` only when asked. */
class MapSessionStore {
  readonly sessions = new Map<string, string>();
  failSet = false;

  constructor(withAll: boolean) {
    if (withAll) {
      Object.assign(this, {
        all: (cb: (err: unknown, all?: unknown[]) => void) =>
          cb(
            null,
            [...this.sessions.values()].map((json) => JSON.parse(json) as unknown),
          ),
      });
    }
  }

  get(sid: string, cb: (err: unknown, session?: unknown) => void): void {
    const json = this.sessions.get(sid);
    cb(null, json === undefined ? null : JSON.parse(json));
  }

  set(sid: string, session: unknown, cb?: (err?: unknown) => void): void {
    if (this.failSet) return cb?.(new Error('backend down'));
    this.sessions.set(sid, JSON.stringify(session));
    cb?.();
  }

  destroy(sid: string, cb?: (err?: unknown) => void): void {
    this.sessions.delete(sid);
    cb?.();
  }
}

defineStoreConformance({
  name: 'fromExpressSessionStore(a store without all())',
  createStore: (clock) => fromExpressSessionStore(new MapSessionStore(false), { now: clock.now }),
  prune: false,
  userIndex: false,
  runner,
});

defineStoreConformance({
  name: 'fromExpressSessionStore(a store with all())',
  createStore: (clock) => fromExpressSessionStore(new MapSessionStore(true), { now: clock.now }),
  prune: false,
  runner,
});

const SECRET = 'a test secret that is at least thirty-two bytes long';

describe('fromExpressSessionStore limits', () => {
  it('offers a user index only over a store with all(), and the manager refuses it otherwise', async () => {
    const without = fromExpressSessionStore(new MapSessionStore(false));
    expect(hasUserIndex(without)).toBe(false);
    expect('listByUser' in without || 'deleteByUser' in without).toBe(false);
    const manager = new SessionManager({ store: without, secrets: [SECRET] });
    await expect(manager.listUserSessions('alice')).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await expect(manager.revokeUserSessions('alice')).rejects.toMatchObject({
      code: 'UNSUPPORTED',
    });

    const withAll = fromExpressSessionStore(new MapSessionStore(true));
    expect(hasUserIndex(withAll)).toBe(true);
    const indexed = new SessionManager({ store: withAll, secrets: [SECRET] });
    const session = await indexed.load({});
    session.setUser('alice');
    await indexed.commit(session);
    expect(await indexed.listUserSessions('alice')).toHaveLength(1);
    expect(await indexed.revokeUserSessions('alice')).toBe(1);
    expect(await indexed.listUserSessions('alice')).toEqual([]);
  });

  it("is named after the wrapped store's class unless given a name", () => {
    expect(fromExpressSessionStore(new MapSessionStore(false)).name).toBe(
      'express-session:MapSessionStore',
    );
    expect(fromExpressSessionStore(new expressSession.MemoryStore()).name).toBe(
      'express-session:MemoryStore',
    );
    const plain = fromExpressSessionStore({
      get: (_sid, cb) => cb(null, null),
      set: (_sid, _s, cb) => cb?.(),
      destroy: (_sid, cb) => cb?.(),
    });
    expect(plain.name).toBe('express-session');
    expect(fromExpressSessionStore(new MapSessionStore(false), { name: 'redis' }).name).toBe(
      'redis',
    );
    for (const name of ['', 42]) {
      expect(() =>
        fromExpressSessionStore(new MapSessionStore(false), { name: name as string }),
      ).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
  });

  it('reports its name in the storeError event', async () => {
    const backend = new MapSessionStore(false);
    const manager = new SessionManager({
      store: fromExpressSessionStore(backend, { name: 'redis' }),
      secrets: [SECRET],
    });
    const failures: StoreFailure[] = [];
    manager.on('storeError', (failure) => failures.push(failure));
    backend.failSet = true;
    const session = await manager.load({});
    session.set('theme', 'dark');
    await expect(manager.commit(session)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(failures).toEqual([expect.objectContaining({ operation: 'create', store: 'redis' })]);
  });

  it('turns a store error into a rejection, and ENOENT into "not found"', async () => {
    const failing = fromExpressSessionStore({
      get: (_sid, cb) => cb(new Error('backend down')),
      set: (_sid, _s, cb) => cb?.(),
      destroy: (_sid, cb) => cb?.(),
    });
    await expect(failing.get('k')).rejects.toThrow('backend down');
    const missing = fromExpressSessionStore({
      get: (_sid, cb) => cb(Object.assign(new Error('no file'), { code: 'ENOENT' })),
      set: (_sid, _s, cb) => cb?.(),
      destroy: (_sid, cb) => cb?.(),
    });
    expect(await missing.get('k')).toBeNull();
  });
});

type Client = ReturnType<typeof createClient>;

const redisGate = await requireShared(SHARED.redis);

describe.runIf(redisGate.available)(
  `fromExpressSessionStore(connect-redis)${redisGate.label}`,
  () => {
    let client: Client;
    const prefixes: string[] = [];
    const newPrefix = () => {
      const prefix = `tessera-test:compat:${randomBytes(6).toString('hex')}:`;
      prefixes.push(prefix);
      return prefix;
    };

    async function keysUnder(prefix: string): Promise<string[]> {
      const keys: string[] = [];
      for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
        keys.push(...batch);
      return keys;
    }

    beforeAll(async () => {
      client = createClient({ url: SHARED.redis.url, socket: { connectTimeout: 2000 } });
      client.on('error', () => undefined);
      await client.connect();
    });

    afterAll(async () => {
      for (const prefix of prefixes) {
        const keys = await keysUnder(prefix);
        if (keys.length > 0) await client.del(keys);
      }
      client.destroy();
    });

    defineStoreConformance({
      name: 'connect-redis through the bridge',
      createStore: (clock) =>
        fromExpressSessionStore(new RedisStore({ client, prefix: newPrefix() }), {
          now: clock.now,
        }),
      prune: false,
      runner,
    });

    describe('under SessionManager and tessera-session/express', () => {
      const running: Running[] = [];
      afterEach(async () => {
        await Promise.all(running.splice(0).map((server) => server.close()));
      });

      async function start(store: SessionStore): Promise<{ manager: SessionManager; url: string }> {
        const manager = new SessionManager({ store, secrets: [SECRET] });
        const app = express();
        app.use(tesseraSession(manager));
        app.get('/login/:user', async (req, res) => {
          await req.session.login(req.params.user as string);
          res.send('in');
        });
        app.get('/set/:key/:value', (req, res) => {
          req.session.set(req.params.key as string, req.params.value);
          res.send('ok');
        });
        app.get('/get/:key', (req, res) => {
          res.json(req.session.get(req.params.key as string) ?? null);
        });
        app.get('/whoami', (req, res) => {
          res.json(req.session.userId);
        });
        app.get('/everywhere', async (req, res) => {
          res.json(await req.sessionManager.revokeUserSessions(req.session.userId!));
        });
        const server = await listen(app);
        running.push(server);
        return { manager, url: server.url };
      }

      it('serves sessions from Redis, keyed by the hash of the ID, and logs a user out everywhere', async () => {
        const prefix = newPrefix();
        const { url } = await start(fromExpressSessionStore(new RedisStore({ client, prefix })));
        const phone = new Browser(url);
        const laptop = new Browser(url);
        await phone.text('/login/alice');
        await laptop.text('/login/alice');
        await phone.text('/set/theme/dark');
        expect(await phone.text('/get/theme')).toBe('"dark"');
        expect(await laptop.text('/whoami')).toBe('"alice"');

        const keys = await keysUnder(prefix);
        expect(keys).toHaveLength(2);
        const ids = [...phone.jar.values(), ...laptop.jar.values()].map((value) =>
          value.slice(0, 43),
        );
        for (const key of keys) {
          const raw = (await client.get(key))!;
          const ttl = await client.ttl(key);
          expect(ttl).toBeGreaterThan(0);
          for (const id of ids) {
            expect(key).not.toContain(id);
            expect(raw).not.toContain(id);
          }
        }

        expect(await phone.text('/everywhere')).toBe('2');
        expect(await keysUnder(prefix)).toEqual([]);
        expect(await laptop.text('/whoami')).toBe('null');
      });
    });
  },
);
