import type { AddressInfo } from 'node:net';
import { ServerResponse, type Server } from 'node:http';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/index.js';
import { session } from '../src/adapters/express.js';
import { MemoryStore } from '../src/stores/memory.js';
import { FakeClock, InstrumentedStore, SECRET } from './support/fixtures.js';

const MINUTE = 60_000;
const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))),
  );
});

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

async function start(options: { storeTimeout?: number; patchEndFirst?: boolean } = {}) {
  const clock = new FakeClock();
  const store = new InstrumentedStore(new MemoryStore({ now: clock.now, sweepInterval: 0 }));
  const manager = new SessionManager({ store, secrets: [SECRET], now: clock.now, ...options });
  const app = express();
  app.use(express.json());
  if (options.patchEndFirst === true) {
    // What compression-style middleware does: replace res.end on the response itself.
    app.use((_req, res, next) => {
      const end = res.end;
      res.end = function (this: typeof res, ...args: unknown[]) {
        if (!res.headersSent) res.setHeader('X-Wrapped', 'yes');
        return (end as (...a: unknown[]) => typeof res).apply(this, args);
      } as typeof res.end;
      next();
    });
  }
  app.use(session(manager));
  const slow = gate();
  app.get('/me', (req, res) => {
    const user = req.session.get('user');
    if (user === undefined) res.status(401).json({ error: 'not signed in' });
    else res.json({ user, data: req.session.toJSON() });
  });
  app.post('/login/:user', async (req, res) => {
    await req.session.login(req.params.user);
    req.session.set('user', req.params.user);
    res.json({ ok: true });
  });
  app.post('/logout', async (req, res) => {
    await req.session.destroy();
    res.json({ ok: true });
  });
  app.post('/set/:key/:value', (req, res) => {
    req.session.set(req.params.key, req.params.value);
    res.json({ ok: true });
  });
  app.post('/slow-set', async (req, res) => {
    await slow.opened;
    req.session.set('late', 'write');
    res.json({ ok: true });
  });
  app.post('/stream', (req, res) => {
    req.session.set('streamed', true);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('one ');
    res.write('two ');
    res.end('three');
  });
  app.post('/redirect', (req, res) => {
    req.session.set('redirected', true);
    res.redirect(303, '/me');
  });
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const request = (path: string, init: RequestInit & { cookie?: string } = {}) =>
    fetch(base + path, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.cookie ? { cookie: init.cookie } : {}), ...(init.headers as object) },
    });
  return { clock, store, manager, request, slow };
}

function cookieOf(response: Response): string {
  const header = response.headers.getSetCookie()[0];
  if (header === undefined) throw new Error('no Set-Cookie');
  return header.split(';')[0]!;
}

describe('Express middleware over real HTTP', () => {
  it('creates a session on login and tracks it across requests', async () => {
    const { request } = await start();
    const anonymous = await request('/me');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.getSetCookie()).toEqual([]);
    const login = await request('/login/alice', { method: 'POST' });
    expect(login.status).toBe(200);
    const setCookie = login.headers.getSetCookie()[0]!;
    expect(setCookie).toMatch(
      /^sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/,
    );
    expect(login.headers.get('cache-control')).toBe('no-store');
    const cookie = cookieOf(login);
    const me = await request('/me', { cookie });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ user: 'alice' });
    expect(me.headers.getSetCookie()).toEqual([]);
    expect(me.headers.get('cache-control')).toBe('no-store');
  });

  it('expires idle and absolute sessions by the injected clock', async () => {
    const { request, clock } = await start();
    const cookie = cookieOf(await request('/login/alice', { method: 'POST' }));
    clock.advance(25 * MINUTE);
    expect((await request('/me', { cookie })).status).toBe(200);
    clock.advance(31 * MINUTE);
    expect((await request('/me', { cookie })).status).toBe(401);

    const active = cookieOf(await request('/login/bob', { method: 'POST' }));
    for (let hour = 0; hour < 11; hour++) {
      clock.advance(20 * MINUTE);
      expect((await request('/set/tick/1', { method: 'POST', cookie: active })).status).toBe(200);
      clock.advance(20 * MINUTE);
      expect((await request('/me', { cookie: active })).status).toBe(200);
      clock.advance(20 * MINUTE);
      expect((await request('/me', { cookie: active })).status).toBe(200);
    }
    clock.advance(61 * MINUTE);
    expect((await request('/me', { cookie: active })).status).toBe(401);
  });

  it('logs out: the record is gone, the cookie is cleared, and replaying it gets nothing', async () => {
    const { request, store } = await start();
    const cookie = cookieOf(await request('/login/alice', { method: 'POST' }));
    const logout = await request('/logout', { method: 'POST', cookie });
    expect(logout.headers.getSetCookie()[0]).toMatch(
      /^sid=; Max-Age=0; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax$/,
    );
    expect((store.inner as MemoryStore).size).toBe(0);
    expect((await request('/me', { cookie })).status).toBe(401);
  });

  it('regenerates the ID at login: an anonymous cookie does not survive into the signed-in session', async () => {
    const { request } = await start();
    const anonymous = cookieOf(await request('/set/cart/apple', { method: 'POST' }));
    const login = await request('/login/alice', { method: 'POST', cookie: anonymous });
    const signedIn = cookieOf(login);
    expect(signedIn).not.toBe(anonymous);
    expect((await request('/me', { cookie: anonymous })).status).toBe(401);
    const me = await (await request('/me', { cookie: signedIn })).json();
    expect(me.data).toEqual({ user: 'alice' });
  });

  it('answers tampered and unknown cookies with a fresh anonymous session', async () => {
    const { request } = await start();
    const cookie = cookieOf(await request('/login/alice', { method: 'POST' }));
    const tampered = cookie.slice(0, -1) + (cookie.endsWith('A') ? 'B' : 'A');
    const unknown = `sid=${'Q'.repeat(43)}.${'R'.repeat(43)}`;
    for (const bad of [tampered, unknown, 'sid=%%%', `sid=${'x'.repeat(5000)}`]) {
      const response = await request('/me', { cookie: bad });
      expect(response.status).toBe(401);
      expect(response.headers.getSetCookie()).toEqual([]);
    }
  });

  it('keeps all of 50 concurrent writes of different keys to one session', async () => {
    const { request } = await start();
    const cookie = cookieOf(await request('/login/alice', { method: 'POST' }));
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        request(`/set/key${i}/value${i}`, { method: 'POST', cookie }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200));
    const { data } = await (await request('/me', { cookie })).json();
    for (let i = 0; i < 50; i++) expect(data[`key${i}`]).toBe(`value${i}`);
  });

  it('does not let a request racing a logout bring the session back', async () => {
    const { request, slow, store } = await start();
    const cookie = cookieOf(await request('/login/alice', { method: 'POST' }));
    store.reset();
    const racing = request('/slow-set', { method: 'POST', cookie });
    while (store.count('get') < 1) await new Promise((resolve) => setImmediate(resolve));
    expect((await request('/logout', { method: 'POST', cookie })).status).toBe(200);
    slow.open();
    const late = await racing;
    expect(late.status).toBe(200);
    expect(late.headers.getSetCookie()).toEqual([]);
    expect((await request('/me', { cookie })).status).toBe(401);
    expect((store.inner as MemoryStore).size).toBe(0);
  });

  it('sets the cookie on streamed responses and redirects', async () => {
    const { request } = await start();
    const streamed = await request('/stream', { method: 'POST' });
    expect(await streamed.text()).toBe('one two three');
    const cookie = cookieOf(streamed);
    expect(await (await request('/me', { cookie })).status).toBe(401);
    const redirect = await request('/redirect', { method: 'POST', cookie });
    expect(redirect.status).toBe(303);
    expect(redirect.headers.getSetCookie()).toEqual([]);
    const fresh = await request('/redirect', { method: 'POST' });
    expect(fresh.status).toBe(303);
    expect(fresh.headers.getSetCookie()).toHaveLength(1);
  });

  it('answers 503 without a cookie when the store fails at load or at save', async () => {
    const { request, store } = await start();
    const cookie = cookieOf(await request('/login/alice', { method: 'POST' }));
    store.failing.add('get');
    const atLoad = await request('/me', { cookie });
    expect(atLoad.status).toBe(503);
    expect(atLoad.headers.getSetCookie()).toEqual([]);
    expect(atLoad.headers.get('retry-after')).toBe('1');
    expect(await atLoad.text()).toBe('Service Unavailable\n');
    store.failing.clear();
    store.failing.add('create');
    const atSave = await request('/set/a/b', { method: 'POST' });
    expect(atSave.status).toBe(503);
    expect(atSave.headers.getSetCookie()).toEqual([]);
    store.failing.clear();
    expect((await request('/me', { cookie })).status).toBe(200);
  });

  it('still sets the cookie when earlier middleware replaced res.end', async () => {
    const { request } = await start({ patchEndFirst: true });
    const login = await request('/login/alice', { method: 'POST' });
    expect(login.headers.get('x-wrapped')).toBe('yes');
    const cookie = cookieOf(login);
    expect((await request('/me', { cookie })).status).toBe(200);
    expect((await request('/stream', { method: 'POST' })).headers.getSetCookie()).toHaveLength(1);
  });

  for (const synchronous of [true, false]) {
    it(`passes every argument of a held writeHead, write and end through (${synchronous ? 'saved at once' : 'saved through a promise'})`, async () => {
      const store = new InstrumentedStore(new MemoryStore({ sweepInterval: 0 }), { synchronous });
      const manager = new SessionManager({ store, secrets: [SECRET] });
      const app = express();
      app.use(session(manager));
      const callbacks: string[] = [];
      app.get('/made', (req, res) => {
        req.session.set('made', true);
        res.writeHead(201, 'Made Here', { 'X-Made': 'yes' });
        res.write('one ', 'utf8', () => callbacks.push('write'));
        res.write(Buffer.from('two'), () => callbacks.push('write buffer'));
        res.end(() => callbacks.push('end'));
      });
      const server = app.listen(0, '127.0.0.1');
      servers.push(server);
      await new Promise((resolve) => server.once('listening', resolve));
      const answer = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/made`);
      expect(answer.status).toBe(201);
      expect(answer.statusText).toBe('Made Here');
      expect(answer.headers.get('x-made')).toBe('yes');
      expect(answer.headers.get('cache-control')).toBe('no-store');
      expect(answer.headers.getSetCookie()).toHaveLength(1);
      expect(await answer.text()).toBe('one two');
      expect(callbacks).toEqual(['write', 'write buffer', 'end']);
      expect(store.calls.create).toBe(1);
    });
  }

  it("gates through the application's own response prototype, never node's", async () => {
    const nodeMethods = ['writeHead', 'write', 'end', 'flushHeaders'] as const;
    const before = nodeMethods.map((name) => ServerResponse.prototype[name]);
    const store = new MemoryStore({ sweepInterval: 0 });
    const manager = new SessionManager({ store, secrets: [SECRET] });
    const ownMethods: string[][] = [];
    const build = () => {
      const app = express();
      app.get('/plain', (_req, res) => void res.send('no session here'));
      app.use(session(manager));
      app.get('/count', (req, res) => {
        ownMethods.push(nodeMethods.filter((name) => Object.hasOwn(res, name)));
        const count = ((req.session.get('count') as number | undefined) ?? 0) + 1;
        req.session.set('count', count);
        res.type('text').send(String(count));
      });
      app.get('/peek', (req, res) => void res.type('text').send(String(req.session.get('count'))));
      return app;
    };
    const servers = [build().listen(0, '127.0.0.1'), build().listen(0, '127.0.0.1')];
    try {
      await Promise.all(servers.map((s) => new Promise((resolve) => s.once('listening', resolve))));
      const [one, two] = servers.map(
        (s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
      );
      const first = await fetch(`${one}/count`);
      const cookie = cookieOf(first);
      expect(await first.text()).toBe('1');
      expect(await (await fetch(`${two}/count`, { headers: { cookie } })).text()).toBe('2');
      const peek = await fetch(`${one}/peek`, { headers: { cookie } });
      expect(await peek.text()).toBe('2');
      expect(peek.headers.getSetCookie()).toEqual([]);
      const plain = await fetch(`${one}/plain`, { headers: { cookie } });
      expect(await plain.text()).toBe('no session here');
      expect(ownMethods).toEqual([[], []]);
      expect(nodeMethods.map((name) => ServerResponse.prototype[name])).toEqual(before);
    } finally {
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    }
  });

  it('leaves a request to the first of two mounted middlewares, also in a sub-app that mounts its own', async () => {
    const store = new InstrumentedStore(new MemoryStore({ sweepInterval: 0 }), {
      synchronous: true,
    });
    const manager = new SessionManager({ store, secrets: [SECRET] });
    const app = express();
    app.use(session(manager));
    app.use(session(manager));
    const seen: unknown[] = [];
    app.get('/count', (req, res) => {
      seen.push(req.session);
      req.session.set('n', ((req.session.get('n') as number | undefined) ?? 0) + 1);
      res.type('text').send(String(req.session.get('n')));
    });
    const sub = express();
    sub.use(session(manager));
    sub.get('/count', (req, res) => {
      req.session.set('n', ((req.session.get('n') as number | undefined) ?? 0) + 1);
      res.type('text').send(String(req.session.get('n')));
    });
    app.use('/sub', sub);
    const server = app.listen(0, '127.0.0.1');
    servers.push(server);
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const first = await fetch(`${base}/count`);
    expect(first.headers.getSetCookie()).toHaveLength(1);
    expect(await first.text()).toBe('1');
    const cookie = cookieOf(first);
    const viaSub = await fetch(`${base}/sub/count`, { headers: { cookie } });
    expect(await viaSub.text()).toBe('2');
    expect(viaSub.headers.getSetCookie()).toEqual([]);
    expect(await (await fetch(`${base}/count`, { headers: { cookie } })).text()).toBe('3');
    expect(store.calls.create).toBe(1);
    expect(store.calls.get).toBe(2);
    expect(store.calls.update).toBe(2);
    expect(new Set(seen).size).toBe(2);
  });

  it('gives req.sessionManager in the app and in mounted sub-apps, and records req.ip', async () => {
    const store = new MemoryStore({ sweepInterval: 0 });
    const manager = new SessionManager({ store, secrets: [SECRET] });
    const app = express();
    app.set('trust proxy', true);
    app.use(session(manager));
    const seen: unknown[] = [];
    app.get('/login', async (req, res) => {
      seen.push(req.sessionManager);
      await req.session.login('erin');
      res.send('ok');
    });
    const admin = express();
    admin.get('/who', (req, res) => {
      seen.push(req.sessionManager);
      res.send(String(req.session.userId));
    });
    app.use('/admin', admin);
    const server = app.listen(0, '127.0.0.1');
    try {
      await new Promise((resolve) => server.once('listening', resolve));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const login = await fetch(`${base}/login`, {
        headers: { 'x-forwarded-for': '198.51.100.7' },
      });
      const cookie = cookieOf(login);
      expect(await (await fetch(`${base}/admin/who`, { headers: { cookie } })).text()).toBe('erin');
      expect(seen).toEqual([manager, manager]);
      const [listed] = await manager.listUserSessions('erin');
      expect(listed?.ip).toBe('198.51.100.7');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('answers 503 when the store does not answer in time', async () => {
    const { request, store } = await start({ storeTimeout: 50 });
    const cookie = cookieOf(await request('/login/alice', { method: 'POST' }));
    store.hanging.add('get');
    const response = await request('/me', { cookie });
    expect(response.status).toBe(503);
    expect(response.headers.getSetCookie()).toEqual([]);
  });
});
