import { createHmac } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import util from 'node:util';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import session, {
  Cookie,
  MemoryStore,
  Session,
  Store,
  type SessionData,
  type SessionOptions,
  type StoreLike,
} from '../../src/compat/express-session/index.js';
import { SessionError } from '../../src/errors.js';
import {
  Browser,
  gate,
  idOf,
  listen,
  manualClock,
  requestOf,
  sessionCookies,
  sessionOf,
  type Running,
} from './helpers.js';

const secret = 'a test secret that is at least thirty-two bytes long';
const running: Running[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

type Route = (req: express.Request, res: express.Response, next: express.NextFunction) => unknown;

/** An Express app with the drop-in mounted, a few routes, and an error handler that shows the error's status. */
async function start(
  options: SessionOptions,
  routes: Record<string, Route> = {},
): Promise<Browser> {
  const app = express();
  app.use(session({ secret, resave: false, saveUninitialized: false, ...options }));
  app.get('/set/:key/:value', (req, res) => {
    sessionOf(req)[req.params.key as string] = req.params.value;
    res.send('ok');
  });
  app.get('/get/:key', (req, res) => {
    res.json(sessionOf(req)?.[req.params.key as string] ?? null);
  });
  for (const [path, route] of Object.entries(routes)) app.get(path, route);
  app.use(
    (error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res
        .status(error instanceof SessionError ? error.status : 500)
        .send(`error: ${(error as Error).message}`);
    },
  );
  const server = await listen(app);
  running.push(server);
  return new Browser(server.url);
}

function storeGet(store: StoreLike, sid: string): Promise<SessionData | null | undefined> {
  return new Promise((resolve, reject) =>
    store.get(sid, (err, value) => (err ? reject(err) : resolve(value))),
  );
}

describe('exports', () => {
  it('is a function carrying the constructors, as express-session is', () => {
    expect(typeof session).toBe('function');
    expect(session.Store).toBe(Store);
    expect(session.MemoryStore).toBe(MemoryStore);
    expect(session.Session).toBe(Session);
    expect(session.Cookie).toBe(Cookie);
    expect(new MemoryStore()).toBeInstanceOf(EventEmitter);
  });

  it('validates options as express-session does', () => {
    expect(() => session({ secret, genid: 'x' as never })).toThrow(
      /genid option must be a function/,
    );
    expect(() => session({ secret, unset: 'x' as never })).toThrow(
      /unset option must be "destroy" or "keep"/,
    );
    expect(() => session({ secret: [] })).toThrow(/secret option array/);
    expect(() => session({ secret, storeTimeout: -1 })).toThrow(SessionError);
  });
});

describe('cookie wire format', () => {
  it('is s:<id>.<base64 HMAC-SHA256 without padding>, URL-encoded, as cookie-signature writes it', async () => {
    const browser = await start({ genid: () => 'plain+id/with=chars' }, {});
    const response = await browser.request('/set/a/1');
    const [cookie] = sessionCookies(response);
    const mac = createHmac('sha256', secret)
      .update('plain+id/with=chars')
      .digest('base64')
      .replace(/=+$/, '');
    expect(cookie!.value).toBe(encodeURIComponent(`s:plain+id/with=chars.${mac}`));
    const signature = createRequire(import.meta.url)('cookie-signature') as {
      sign: (v: string, s: string) => string;
    };
    expect(decodeURIComponent(cookie!.value)).toBe(
      `s:${signature.sign('plain+id/with=chars', secret)}`,
    );
  });

  it('has express-session default attributes: Path=/ and HttpOnly, no Expires, no SameSite, no Secure', async () => {
    const browser = await start({});
    const [cookie] = sessionCookies(await browser.request('/set/a/1'));
    expect(cookie!.attributes).toEqual({ path: '/', httponly: true });
  });

  it('writes Expires from maxAge on the injected clock, and every cookie option', async () => {
    const clock = manualClock();
    const browser = await start({
      now: clock.now,
      store: new MemoryStore({ now: clock.now }),
      cookie: {
        maxAge: 60_000,
        sameSite: 'strict',
        domain: 'example.test',
        path: '/',
        priority: 'high',
        partitioned: true,
        secure: false,
      },
    });
    const [cookie] = sessionCookies(await browser.request('/set/a/1'));
    expect(cookie!.attributes).toEqual({
      path: '/',
      domain: 'example.test',
      expires: new Date(clock.now() + 60_000).toUTCString(),
      httponly: true,
      partitioned: true,
      priority: 'High',
      samesite: 'Strict',
    });
  });

  it('sends Cache-Control: no-store with a session cookie, unless the application chose a policy', async () => {
    const browser = await start(
      {},
      {
        '/cached': (req, res) => {
          sessionOf(req).x = 1;
          res.set('Cache-Control', 'private, max-age=5').send('ok');
        },
      },
    );
    expect((await browser.request('/set/a/1')).headers.get('cache-control')).toBe('no-store');
    const other = new Browser(browser.base);
    const response = await other.request('/cached');
    expect(sessionCookies(response)).toHaveLength(1);
    expect(response.headers.get('cache-control')).toBe('private, max-age=5');
  });
});

describe('req.session', () => {
  it('keeps property-style data across requests, with id, sessionID and sessionStore', async () => {
    const store = new MemoryStore();
    const browser = await start(
      { store },
      {
        '/count': (req, res) => {
          const s = sessionOf(req);
          s.views = (s.views ?? 0) + 1;
          s.nested = { list: [s.views] };
          res.json({
            views: s.views,
            sameId: s.id === requestOf(req).sessionID,
            store: requestOf(req).sessionStore === store,
            keys: Object.keys(s).sort(),
          });
        },
      },
    );
    expect(await (await browser.request('/count')).json()).toEqual({
      views: 1,
      sameId: true,
      store: true,
      keys: ['cookie', 'nested', 'views'],
    });
    expect(await (await browser.request('/count')).json()).toMatchObject({ views: 2 });
    const sid = idOf(parseJar(browser));
    expect(await storeGet(store, sid)).toMatchObject({ views: 2, nested: { list: [2] } });
  });

  it('ignores stored keys named like methods or prototype properties', async () => {
    const store = new MemoryStore();
    const browser = await start(
      { store },
      {
        '/probe': (req, res) => {
          const s = sessionOf(req);
          res.json({
            save: typeof s.save,
            touch: typeof s.touch,
            proto: Object.getPrototypeOf(s) === Session.prototype,
            n: s.n,
          });
        },
      },
    );
    await browser.request('/set/n/1');
    const sid = idOf(parseJar(browser));
    const stored = (await storeGet(store, sid))!;
    const hostile = JSON.parse(
      JSON.stringify(stored).replace(/^\{/, '{"save":"x","touch":1,"__proto__":{"polluted":true},'),
    );
    await new Promise<void>((resolve) => store.set(sid, hostile, () => resolve()));
    expect(await (await browser.request('/probe')).json()).toEqual({
      save: 'function',
      touch: 'function',
      proto: true,
      n: '1',
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('regenerate() moves to a new ID and kills the old one', async () => {
    const store = new MemoryStore();
    const browser = await start(
      { store },
      {
        '/login': (req, res, next) => {
          sessionOf(req).regenerate((err) => {
            if (err) return next(err);
            sessionOf(req).user = 'alice';
            res.send(sessionOf(req).id);
          });
        },
      },
    );
    await browser.request('/set/anon/1');
    const before = idOf(parseJar(browser));
    const after = await browser.text('/login');
    expect(after).not.toBe(before);
    expect(idOf(parseJar(browser))).toBe(after);
    expect(await storeGet(store, before)).toBeUndefined();
    expect(await storeGet(store, after)).toMatchObject({ user: 'alice' });
    expect(await storeGet(store, after)).not.toHaveProperty('anon');
  });

  it('destroy() deletes the session and unsets req.session, without a Set-Cookie', async () => {
    const store = new MemoryStore();
    const browser = await start(
      { store },
      {
        '/logout': (req, res, next) => {
          sessionOf(req).destroy((err) =>
            err ? next(err) : res.send(String(requestOf(req).session)),
          );
        },
      },
    );
    await browser.request('/set/user/alice');
    const sid = idOf(parseJar(browser));
    const response = await browser.request('/logout');
    expect(await response.text()).toBe('undefined');
    expect(sessionCookies(response)).toEqual([]);
    expect(await storeGet(store, sid)).toBeUndefined();
    expect(await browser.text('/get/user')).toBe('null');
  });

  it('save(), reload() and touch() call back as documented', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now });
    const browser = await start(
      { store, now: clock.now, cookie: { maxAge: 60_000 } },
      {
        '/save': (req, res, next) => {
          sessionOf(req).saved = true;
          sessionOf(req).save((err) => {
            if (err) return next(err);
            storeGet(store, sessionOf(req).id).then(
              (stored) => res.json(stored?.saved ?? null),
              next,
            );
          });
        },
        '/reload': (req, res, next) => {
          sessionOf(req).saved = 'changed in memory';
          sessionOf(req).reload((err) => (err ? next(err) : res.json(sessionOf(req).saved)));
        },
        '/maxage': (req, res) => {
          clock.advance(30_000);
          const before = sessionOf(req).cookie.maxAge;
          sessionOf(req).touch();
          res.json([before, sessionOf(req).cookie.maxAge, sessionOf(req).cookie.originalMaxAge]);
        },
      },
    );
    expect(await (await browser.request('/save')).json()).toBe(true);
    expect(await (await browser.request('/reload')).json()).toBe(true);
    expect(await (await browser.request('/maxage')).json()).toEqual([30_000, 60_000, 60_000]);
  });

  it('reload() of a session that is gone calls back with "failed to load session"', async () => {
    const store = new MemoryStore();
    const browser = await start(
      { store },
      {
        '/gone': (req, res) => {
          store.clear(() =>
            sessionOf(req).reload((err) =>
              res.send(err instanceof Error ? err.message : 'no error'),
            ),
          );
        },
      },
    );
    await browser.request('/set/a/1');
    expect(await browser.text('/gone')).toBe('failed to load session');
  });

  it('unset: "destroy" deletes the session when req.session is set to null', async () => {
    const store = new MemoryStore();
    const browser = await start(
      { store, unset: 'destroy' },
      {
        '/drop': (req, res) => {
          requestOf(req).session = null;
          res.send('dropped');
        },
      },
    );
    await browser.request('/set/a/1');
    const sid = idOf(parseJar(browser));
    await browser.request('/drop');
    expect(await storeGet(store, sid)).toBeUndefined();
  });
});

describe('options', () => {
  it('saveUninitialized: false stores nothing and sets no cookie until the session holds data', async () => {
    const store = new MemoryStore();
    const browser = await start(
      { store, saveUninitialized: false },
      { '/': (_req, res) => res.send('hi') },
    );
    expect(sessionCookies(await browser.request('/'))).toEqual([]);
    expect(await new Promise((resolve) => store.length((_e, n) => resolve(n)))).toBe(0);
    expect(sessionCookies(await browser.request('/set/a/1'))).toHaveLength(1);
  });

  it('saveUninitialized: true stores every new session', async () => {
    const store = new MemoryStore();
    const browser = await start(
      { store, saveUninitialized: true },
      { '/': (_req, res) => res.send('hi') },
    );
    expect(sessionCookies(await browser.request('/'))).toHaveLength(1);
    expect(await new Promise((resolve) => store.length((_e, n) => resolve(n)))).toBe(1);
  });

  it('resave: false touches an unmodified session instead of saving it; rolling re-sends the cookie', async () => {
    const store = new MemoryStore();
    const calls: string[] = [];
    const set = store.set.bind(store);
    const touch = store.touch.bind(store);
    store.set = (sid, data, cb) => (calls.push('set'), set(sid, data, cb));
    store.touch = (sid, data, cb) => (calls.push('touch'), touch(sid, data, cb));
    const browser = await start(
      { store, rolling: true, cookie: { maxAge: 60_000 } },
      { '/': (_req, res) => res.send('hi') },
    );
    await browser.request('/set/a/1');
    calls.length = 0;
    const response = await browser.request('/');
    expect(calls).toEqual(['touch']);
    expect(sessionCookies(response)).toHaveLength(1);
  });

  it('rolling: false sends the cookie only when the session changes', async () => {
    const browser = await start(
      { cookie: { maxAge: 60_000 } },
      { '/': (_req, res) => res.send('hi') },
    );
    await browser.request('/set/a/1');
    expect(sessionCookies(await browser.request('/'))).toEqual([]);
    expect(sessionCookies(await browser.request('/set/a/2'))).toHaveLength(1);
  });

  it('name sets the cookie name', async () => {
    const browser = await start({ name: 'app.sid' });
    expect(sessionCookies(await browser.request('/set/a/1'), 'app.sid')).toHaveLength(1);
  });

  it('cookie as a function is called per request', async () => {
    const browser = await start({
      cookie: (req) => ({
        path: '/',
        maxAge: requestOf(req).headers['x-remember'] ? 86_400_000 : null,
      }),
    });
    const [short] = sessionCookies(await browser.request('/set/a/1'));
    expect(short!.attributes.expires).toBeUndefined();
    const other = new Browser(browser.base);
    const [long] = sessionCookies(
      await other.request('/set/a/1', { headers: { 'x-remember': '1' } }),
    );
    expect(long!.attributes.expires).toBeTypeOf('string');
  });

  it('secure and sameSite "auto" follow X-Forwarded-Proto with proxy: true', async () => {
    const browser = await start({ proxy: true, cookie: { secure: 'auto', sameSite: 'auto' } });
    const [secureCookie] = sessionCookies(
      await browser.request('/set/a/1', { headers: { 'x-forwarded-proto': 'https' } }),
    );
    expect(secureCookie!.attributes).toMatchObject({ secure: true, samesite: 'None' });
    const plain = new Browser(browser.base);
    const [plainCookie] = sessionCookies(await plain.request('/set/a/1'));
    expect(plainCookie!.attributes.secure).toBeUndefined();
    expect(plainCookie!.attributes.samesite).toBe('Lax');
  });

  it('secure: true sets no cookie on an insecure request unless a trusted proxy says https', async () => {
    const browser = await start({ proxy: true, cookie: { secure: true } });
    expect(sessionCookies(await browser.request('/set/a/1'))).toEqual([]);
    expect(
      sessionCookies(
        await browser.request('/set/a/1', { headers: { 'x-forwarded-proto': 'https' } }),
      ),
    ).toHaveLength(1);
  });

  it('a secret list signs with the first and verifies with all (rotation)', async () => {
    const store = new MemoryStore();
    const cookie = { maxAge: 60_000 };
    const old = await start({
      store,
      cookie,
      secret: 'the old secret of thirty-two bytes or more',
    });
    await old.request('/set/user/alice');
    const rotated = await start({
      store,
      cookie,
      secret: [secret, 'the old secret of thirty-two bytes or more'],
    });
    const browser = new Browser(rotated.base);
    for (const [name, value] of old.jar) browser.jar.set(name, value);
    expect(await browser.text('/get/user')).toBe('"alice"');
    const [resigned] = sessionCookies(await browser.request('/set/user/bob'));
    const mac = createHmac('sha256', secret)
      .update(idOf(resigned!))
      .digest('base64')
      .replace(/=+$/, '');
    expect(decodeURIComponent(resigned!.value)).toBe(`s:${idOf(resigned!)}.${mac}`);
  });
});

describe('accepting a cookie', () => {
  async function victim(): Promise<{
    browser: Browser;
    store: InstanceType<typeof MemoryStore>;
    sid: string;
    value: string;
  }> {
    const store = new MemoryStore();
    const browser = await start({ store });
    await browser.request('/set/user/alice');
    const value = browser.jar.get('connect.sid')!;
    return { browser, store, sid: idOf({ name: 'connect.sid', value, attributes: {} }), value };
  }

  it.each([
    ['an unsigned ID', (sid: string) => sid],
    ['an unsigned s: value', (sid: string) => encodeURIComponent(`s:${sid}`)],
    [
      'a wrong signature',
      (sid: string) => encodeURIComponent(`s:${sid}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`),
    ],
    [
      'a signature from another secret',
      (sid: string) =>
        encodeURIComponent(
          `s:${sid}.${createHmac('sha256', 'another secret of enough length!!').update(sid).digest('base64').replace(/=+$/, '')}`,
        ),
    ],
  ])('never adopts %s', async (_label, forge) => {
    const { browser, sid } = await victim();
    const attacker = new Browser(browser.base);
    attacker.jar.set('connect.sid', forge(sid));
    expect(await attacker.text('/get/user')).toBe('null');
  });

  it('rejects a valid signature followed by anything else', async () => {
    const { browser, value } = await victim();
    const attacker = new Browser(browser.base);
    attacker.jar.set('connect.sid', `${value}x`);
    expect(await attacker.text('/get/user')).toBe('null');
  });

  it('survives hostile Cookie headers with a fresh session', async () => {
    const { browser } = await victim();
    const hostile = [
      'connect.sid=%E0%A4%A',
      'connect.sid="s%3A"',
      `connect.sid=${'x'.repeat(6000)}`,
      ';'.repeat(5000),
      Array.from({ length: 1000 }, (_, i) => `c${i}=v`).join('; '),
      '__proto__=1; constructor=2; hasOwnProperty=3; connect.sid=s%3A',
      'connect.sid=ünïcödé',
    ];
    for (const header of hostile) {
      const response = await fetch(`${browser.base}/get/user`, { headers: { cookie: header } });
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('null');
    }
  });

  it('finds the valid cookie among several of the same name', async () => {
    const { browser, value } = await victim();
    const response = await fetch(`${browser.base}/get/user`, {
      headers: { cookie: `connect.sid=s%3Aforged.sig; connect.sid=${value}` },
    });
    expect(await response.text()).toBe('"alice"');
  });
});

describe('concurrent requests (Tessera additions)', () => {
  async function racing(mergeWrites: boolean) {
    const store = new MemoryStore();
    const held = gate();
    const reached = gate();
    const browser = await start(
      { store, mergeWrites },
      {
        '/slow/:key/:value': async (req, res) => {
          reached.open();
          await held.promise;
          sessionOf(req)[req.params.key as string] = req.params.value;
          res.send('slow done');
        },
        '/logout': (req, res, next) =>
          sessionOf(req).destroy((err) => (err ? next(err) : res.send('bye'))),
      },
    );
    await browser.text('/set/start/1');
    const sid = idOf(parseJar(browser));
    return { store, held, reached, browser, sid };
  }

  it('keeps both writes when two requests change different keys', async () => {
    // (Bodies are awaited: the drop-in, as express-session, holds the last byte until the save is done.)
    const { store, held, reached, browser, sid } = await racing(true);
    const slow = browser.text('/slow/a/1');
    await reached.promise;
    await browser.text('/set/b/2');
    held.open();
    await slow;
    expect(await storeGet(store, sid)).toMatchObject({ start: '1', a: '1', b: '2' });
  });

  it('serializes the read and write of concurrent merge-saves of one session within the process', async () => {
    const store = new MemoryStore();
    const bReached = gate();
    const browser = await start(
      { store },
      {
        '/b': (req, res) => {
          sessionOf(req).b = '2';
          bReached.open();
          res.send('ok');
        },
      },
    );
    await browser.text('/set/start/1');
    const sid = idOf(parseJar(browser));
    const writeHeld = gate();
    const writeReached = gate();
    const realSet = store.set.bind(store);
    let holdNext = true;
    store.set = (id, data, cb) => {
      if (!holdNext) return realSet(id, data, cb);
      holdNext = false;
      writeReached.open();
      void writeHeld.promise.then(() => realSet(id, data, cb));
    };
    const a = browser.text('/set/a/1');
    await writeReached.promise; // A has read the session and its write is pending
    const b = browser.text('/b');
    await bReached.promise; // B has ended its response and queued its save behind A's
    writeHeld.open();
    await Promise.all([a, b]);
    expect(await storeGet(store, sid)).toMatchObject({ start: '1', a: '1', b: '2' });
  });

  it('with mergeWrites: false the slower request overwrites the other, as in express-session', async () => {
    const { store, held, reached, browser, sid } = await racing(false);
    const slow = browser.text('/slow/a/1');
    await reached.promise;
    await browser.text('/set/b/2');
    held.open();
    await slow;
    const stored = await storeGet(store, sid);
    expect(stored).toMatchObject({ start: '1', a: '1' });
    expect(stored).not.toHaveProperty('b');
  });

  it('does not bring back a session that another request logged out', async () => {
    const { store, held, reached, browser, sid } = await racing(true);
    const slow = browser.text('/slow/a/1');
    await reached.promise;
    await browser.text('/logout');
    held.open();
    await slow;
    expect(await storeGet(store, sid)).toBeUndefined();
  });
});

describe('store trouble (Tessera additions)', () => {
  it('answers 503 while the store is disconnected, and recovers on connect', async () => {
    const store = new MemoryStore();
    const browser = await start({ store });
    store.emit('disconnect');
    const response = await browser.request('/set/a/1');
    expect(response.status).toBe(503);
    expect(sessionCookies(response)).toEqual([]);
    store.emit('connect');
    expect((await browser.request('/set/a/1')).status).toBe(200);
  });

  it('whenDisconnected: "skip" continues without req.session, as express-session does', async () => {
    const store = new MemoryStore();
    const browser = await start(
      { store, whenDisconnected: 'skip' },
      { '/type': (req, res) => res.send(typeof requestOf(req).session) },
    );
    store.emit('disconnect');
    expect(await browser.text('/type')).toBe('undefined');
  });

  it('fails a store call that does not answer within storeTimeout with 503', async () => {
    const store = new MemoryStore();
    const browser = await start({ store, storeTimeout: 25 });
    await browser.request('/set/a/1');
    store.get = () => undefined;
    const response = await browser.request('/get/a');
    expect(response.status).toBe(503);
    expect(await response.text()).toMatch(/did not answer get\(\)/);
  });

  it('passes a store error to next, and sets no cookie', async () => {
    const store = new MemoryStore();
    const browser = await start({ store });
    await browser.request('/set/a/1');
    store.get = (_sid, cb) => cb(new Error('backend down'));
    const response = await browser.request('/get/a');
    expect(response.status).toBe(500);
    expect(await response.text()).toBe('error: backend down');
    expect(sessionCookies(response)).toEqual([]);
  });
});

describe('stores written for express-session', () => {
  /** An old-style store: a constructor calling Store, inheriting with util.inherits, callbacks only. */
  interface OldStore extends InstanceType<typeof Store> {
    data: Map<string, string>;
  }

  function OldStyleStore(this: OldStore) {
    Store.call(this);
    this.data = new Map();
  }
  util.inherits(OldStyleStore, Store);
  Object.assign(OldStyleStore.prototype, {
    get(this: OldStore, sid: string, cb: (err: unknown, s?: unknown) => void) {
      const json = this.data.get(sid);
      setImmediate(cb, null, json === undefined ? null : JSON.parse(json));
    },
    set(this: OldStore, sid: string, s: unknown, cb?: () => void) {
      this.data.set(sid, JSON.stringify(s));
      if (cb) setImmediate(cb);
    },
    destroy(this: OldStore, sid: string, cb?: () => void) {
      this.data.delete(sid);
      if (cb) setImmediate(cb);
    },
  });
  const makeOldStore = () => new (OldStyleStore as unknown as new () => OldStore)();

  it('work through Store.call(this) and util.inherits: get, set, destroy, regenerate, load', async () => {
    const store = makeOldStore();
    expect(store).toBeInstanceOf(Store);
    expect(store).toBeInstanceOf(EventEmitter);
    const browser = await start(
      { store },
      {
        '/login': (req, res, next) =>
          sessionOf(req).regenerate((err) => {
            if (err) return next(err);
            sessionOf(req).user = 'alice';
            res.send('in');
          }),
      },
    );
    await browser.request('/set/a/1');
    const first = idOf(parseJar(browser));
    await browser.request('/login');
    const second = idOf(parseJar(browser));
    expect(store.data.has(first)).toBe(false);
    expect(await browser.text('/get/user')).toBe('"alice"');
    const loaded = await new Promise<Session | undefined>((resolve, reject) =>
      store.load(second, (err, s) => (err ? reject(err) : resolve(s))),
    );
    expect(loaded).toBeInstanceOf(Session);
    expect(loaded!.user).toBe('alice');
    expect(loaded!.cookie).toBeInstanceOf(Cookie);
  });

  it('can be ES classes extending Store', async () => {
    class ClassStore extends Store {
      readonly data = new Map<string, SessionData>();
      override get(sid: string, cb: (err: unknown, s?: SessionData | null) => void) {
        cb(null, this.data.get(sid) ?? null);
      }
      override set(sid: string, s: SessionData, cb?: () => void) {
        this.data.set(sid, JSON.parse(JSON.stringify(s)) as SessionData);
        cb?.();
      }
      override destroy(sid: string, cb?: () => void) {
        this.data.delete(sid);
        cb?.();
      }
    }
    const store = new ClassStore();
    const browser = await start({ store });
    await browser.request('/set/a/hello');
    expect(await browser.text('/get/a')).toBe('"hello"');
  });
});

function parseJar(browser: Browser) {
  return { name: 'connect.sid', value: browser.jar.get('connect.sid')!, attributes: {} };
}
