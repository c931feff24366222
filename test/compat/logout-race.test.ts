import { randomBytes } from 'node:crypto';
import express from 'express';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import session, {
  type SessionOptions,
  type StoreLike,
} from '../../src/compat/express-session/index.js';
import { SessionError } from '../../src/errors.js';
import { SHARED, requireShared } from '../support/services.js';
import { DelayedStore } from './delayed-store.js';
import { Browser, gate, idOf, listen, sessionOf, type Running } from './helpers.js';
import { HoldingProxy } from './holding-proxy.js';

const secret = 'a test secret that is at least thirty-two bytes long';
const running: Running[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

type Gate = ReturnType<typeof gate>;

/** Points where a test holds a request, and what the request has done when it opens the next. */
interface Steps {
  /** Opened by the slow-save route once its session is loaded. */
  saveLoaded: Gate;
  /** Opened by the test: the slow-save route then changes the session and responds (saving it). */
  saveGo: Gate;
  /** Opened by the slow-save route once it responded: its save has been asked for. */
  saveAsked: Gate;
  endLoaded: Gate;
  endGo: Gate;
  /** Opened by the end route once it asked to end the session. */
  endAsked: Gate;
}

function steps(): Steps {
  return {
    saveLoaded: gate(),
    saveGo: gate(),
    saveAsked: gate(),
    endLoaded: gate(),
    endGo: gate(),
    endAsked: gate(),
  };
}

type Ending = 'destroy' | 'regenerate' | 'unset';

/**
 * An app on `store` with a route that saves slowly, a route that ends the session in one of the
 * three ways, and `/save/:key/:value`, which saves explicitly and answers the save's outcome.
 */
async function start(store: StoreLike, s: Steps, options: SessionOptions = {}): Promise<Browser> {
  const app = express();
  app.use(session({ secret, store, resave: false, saveUninitialized: false, ...options }));
  app.get('/set/:key/:value', (req, res) => {
    sessionOf(req)[req.params.key as string] = req.params.value;
    res.send('ok');
  });
  app.get('/get/:key', (req, res) => {
    res.json(sessionOf(req)?.[req.params.key as string] ?? null);
  });
  app.get('/save/:key/:value', (req, res) => {
    sessionOf(req)[req.params.key as string] = req.params.value;
    sessionOf(req).save((err) =>
      res
        .status(err ? (err as SessionError).status : 200)
        .send(err ? (err as Error).message : 'saved'),
    );
  });
  app.get('/slow-save', async (req, res) => {
    s.saveLoaded.open();
    await s.saveGo.promise;
    sessionOf(req).cart = 'full';
    res.send('saved');
    s.saveAsked.open();
  });
  app.get('/end/:how', async (req, res, next) => {
    s.endLoaded.open();
    await s.endGo.promise;
    const how = req.params.how as Ending;
    if (how === 'destroy') sessionOf(req).destroy((err) => (err ? next(err) : res.send('bye')));
    else if (how === 'regenerate')
      sessionOf(req).regenerate((err) => (err ? next(err) : res.send('new')));
    else {
      (req as { session?: unknown }).session = null;
      res.send('unset');
    }
    s.endAsked.open();
  });
  const server = await listen(app);
  running.push(server);
  return new Browser(server.url);
}

function copyJar(from: Browser, base: string): Browser {
  const browser = new Browser(base);
  for (const [name, value] of from.jar) browser.jar.set(name, value);
  return browser;
}

function sidOf(browser: Browser): string {
  return idOf({ name: 'connect.sid', value: browser.jar.get('connect.sid')!, attributes: {} });
}

function read(store: StoreLike, sid: string): Promise<unknown> {
  return new Promise((resolve, reject) =>
    store.get(sid, (err, value) => (err ? reject(err) : resolve(value ?? undefined))),
  );
}

/** Lets the turns of the event loop pass in which a store client writes what it was asked. */
async function turns(count = 3): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe.each<Ending>(['destroy', 'regenerate', 'unset'])(
  'ending a session (%s) while a save of it is in flight, on a store with latency',
  (how) => {
    // With unset: 'destroy' a destroyed session is deleted again at the end of its response: only
    // the unset way uses it, so that the destroy under test is the only one.
    const unset = how === 'unset' ? 'destroy' : 'keep';

    it('waits for the save, which then does not write: the session stays ended', async () => {
      const store = new DelayedStore();
      const s = steps();
      const browser = await start(store, s, { unset });
      await browser.request('/set/user/alice');
      const sid = sidOf(browser);

      const saving = browser.request('/slow-save');
      const ending = copyJar(browser, browser.base).request(`/end/${how}`);
      await Promise.all([s.saveLoaded.promise, s.endLoaded.promise]);

      // The save's read of the stored session reaches the store; its answer is slow.
      store.hold('get', 'answer');
      const saveRead = store.arrival('get');
      s.saveGo.open();
      await saveRead;
      // The logout is asked for while that read is in flight.
      s.endGo.open();
      await s.endAsked.promise;
      store.release();
      await Promise.all([saving, ending]);

      expect(await read(store.inner, sid)).toBeUndefined();
      expect(await browser.text('/get/user')).toBe('null');
    });

    it.each([true, false])(
      'a save asked for after it (mergeWrites: %s) does not write',
      async (mergeWrites) => {
        const store = new DelayedStore();
        const s = steps();
        const browser = await start(store, s, { mergeWrites, unset });
        await browser.request('/set/user/alice');
        const sid = sidOf(browser);

        const saving = browser.request('/slow-save');
        const ending = copyJar(browser, browser.base).request(`/end/${how}`);
        await Promise.all([s.saveLoaded.promise, s.endLoaded.promise]);

        // The destroy lands at once; its answer is slow.
        store.hold('destroy', 'answer');
        const destroyed = store.arrival('destroy');
        s.endGo.open();
        await destroyed;
        s.saveGo.open();
        await s.saveAsked.promise;
        store.release();
        await Promise.all([saving, ending]);

        expect(await read(store.inner, sid)).toBeUndefined();
        expect(await browser.text('/get/user')).toBe('null');
      },
    );
  },
);

describe('what is remembered of a destroy', () => {
  it('is forgotten once no request holds the session: the same ID works again afterwards', async () => {
    // A constant genid, so that the ID logged out is the one signed in again.
    const store = new DelayedStore();
    const s = steps();
    s.endGo.open();
    const browser = await start(store, s, { genid: () => 'the-same-id' });
    await browser.request('/set/user/alice');
    expect(await (await browser.request('/end/destroy')).text()).toBe('bye');
    await browser.request('/set/user/bob');
    expect(await browser.text('/get/user')).toBe('"bob"');
    expect(await read(store.inner, 'the-same-id')).toMatchObject({ user: 'bob' });
  });
});

describe('a save past its storeTimeout', () => {
  it('whose write lands late is ordered before a later destroy: the logout holds', async () => {
    const store = new DelayedStore();
    const s = steps();
    const patient = await start(store, s);
    const hasty = await start(store, steps(), { storeTimeout: 30 });
    await patient.request('/set/user/alice');
    const sid = sidOf(patient);

    // The save's write reaches the store only when let go; the request gives up first.
    store.hold('set', 'call');
    const timedOut = await copyJar(patient, hasty.base).request('/save/cart/full');
    expect(timedOut.status).toBe(503);
    expect(await timedOut.text()).toMatch(/did not answer set\(\)/);

    const ending = patient.request('/end/destroy');
    await s.endLoaded.promise;
    s.endGo.open();
    await s.endAsked.promise;
    store.release(); // the late write lands now
    expect(await (await ending).text()).toBe('bye');

    expect(await read(store.inner, sid)).toBeUndefined();
    expect(await patient.text('/get/user')).toBe('null');
  });

  it('while it waited for its turn is dropped, never written later', async () => {
    const store = new DelayedStore();
    const patient = await start(store, steps());
    const hasty = await start(store, steps(), { storeTimeout: 30 });
    await patient.request('/set/user/alice');
    const sid = sidOf(patient);

    store.hold('set', 'call');
    const setArrived = store.arrival('set');
    const first = patient.request('/save/a/1');
    await setArrived;
    const dropped = await copyJar(patient, hasty.base).request('/save/b/2');
    expect(dropped.status).toBe(503);
    store.release();
    expect(await (await first).text()).toBe('saved');
    // A save queued after the dropped one has run: the dropped one would have written by now.
    expect(await patient.text('/save/c/3')).toBe('saved');

    const stored = await read(store.inner, sid);
    expect(stored).toMatchObject({ user: 'alice', a: '1', c: '3' });
    expect(stored).not.toHaveProperty('b');
  });
});

const redisGate = await requireShared(SHARED.redis);

describe.runIf(redisGate.available)(
  `connect-redis on Redis, with reply latency from a proxy${redisGate.label}`,
  () => {
    const proxy = new HoldingProxy(SHARED.redis.host, SHARED.redis.port);
    const prefix = `tessera-test:logout-race:${randomBytes(6).toString('hex')}:`;
    let client: ReturnType<typeof createClient>;
    let direct: ReturnType<typeof createClient>;

    beforeAll(async () => {
      const port = await proxy.start();
      client = createClient({ socket: { host: '127.0.0.1', port, connectTimeout: 2000 } });
      client.on('error', () => undefined);
      await client.connect();
      direct = createClient({ url: SHARED.redis.url, socket: { connectTimeout: 2000 } });
      direct.on('error', () => undefined);
      await direct.connect();
    });

    afterAll(async () => {
      const keys: string[] = [];
      for await (const batch of direct.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
        keys.push(...batch);
      if (keys.length > 0) await direct.del(keys);
      client.destroy();
      direct.destroy();
      await proxy.stop();
    });

    async function loggedIn(s: Steps, options: SessionOptions = {}) {
      const store = new RedisStore({ client, prefix }) as unknown as StoreLike;
      const browser = await start(store, s, options);
      await browser.request('/set/user/alice');
      const sid = sidOf(browser);
      const saving = browser.request('/slow-save');
      const ending = copyJar(browser, browser.base).request('/end/destroy');
      await Promise.all([s.saveLoaded.promise, s.endLoaded.promise]);
      return { browser, sid, saving, ending };
    }

    it('a logout asked while a save reads the session is not undone by the save', async () => {
      const s = steps();
      const { browser, sid, saving, ending } = await loggedIn(s);
      proxy.hold();
      const saveRead = proxy.whenSent(`${prefix}${sid}`);
      s.saveGo.open();
      await saveRead; // the save's GET has reached Redis; its reply is held
      s.endGo.open();
      await s.endAsked.promise;
      await turns(); // a DEL sent at once (as before this fix) reaches Redis before the reply
      proxy.release();
      await Promise.all([saving, ending]);

      expect(await direct.exists(`${prefix}${sid}`)).toBe(0);
      expect(await browser.text('/get/user')).toBe('null');
    });

    it.each([true, false])(
      'a save asked after a logout in flight (mergeWrites: %s) does not write',
      async (mergeWrites) => {
        const s = steps();
        const { browser, sid, saving, ending } = await loggedIn(s, { mergeWrites });
        proxy.hold();
        const deleted = proxy.whenSent('DEL');
        s.endGo.open();
        await deleted; // the DEL has reached Redis; its reply is held
        s.saveGo.open();
        await s.saveAsked.promise;
        await turns();
        proxy.release();
        await Promise.all([saving, ending]);

        expect(await direct.exists(`${prefix}${sid}`)).toBe(0);
        expect(await browser.text('/get/user')).toBe('null');
      },
    );
  },
);
