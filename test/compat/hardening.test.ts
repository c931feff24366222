import { createHmac } from 'node:crypto';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import session, {
  MemoryStore,
  type SessionData,
  type SessionOptions,
} from '../../src/compat/express-session/index.js';
import { Browser, idOf, listen, requestOf, sessionOf, type Running } from './helpers.js';

const secret = 'a test secret that is at least thirty-two bytes long';
const running: Running[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

async function start(options: SessionOptions): Promise<Browser> {
  const app = express();
  app.use(session({ secret, resave: false, ...options }));
  app.get('/login/:user', (req, res, next) => {
    sessionOf(req).regenerate((err) => {
      if (err) return next(err);
      sessionOf(req).passport = { user: req.params.user };
      res.send('in');
    });
  });
  app.get('/logout', (req, res, next) => {
    sessionOf(req).destroy((err) => (err ? next(err) : res.send('bye')));
  });
  app.get('/user', (req, res) => {
    res.json(sessionOf(req).passport?.user ?? null);
  });
  app.get('/id', (req, res) => {
    res.send(requestOf(req).sessionID);
  });
  const server = await listen(app);
  running.push(server);
  return new Browser(server.url);
}

function put(store: MemoryStore, sid: string, data: Record<string, unknown>): Promise<void> {
  const session = { cookie: { originalMaxAge: null, path: '/', httpOnly: true }, ...data };
  return new Promise((resolve, reject) =>
    store.set(sid, session as SessionData, (err) => (err ? reject(err) : resolve())),
  );
}

function read(store: MemoryStore, sid: string): Promise<SessionData | null | undefined> {
  return new Promise((resolve, reject) =>
    store.get(sid, (err, value) => (err ? reject(err) : resolve(value))),
  );
}

function count(store: MemoryStore): Promise<number> {
  return new Promise((resolve, reject) =>
    store.length((err, length) => (err ? reject(err) : resolve(length!))),
  );
}

describe('the MemoryStore under a flood of anonymous sessions', () => {
  it('evicts sessions without a signed-in user before signed-in ones, staying bounded', async () => {
    const store = new MemoryStore({ maxSessions: 50, sweepInterval: 0 });
    for (let i = 0; i < 10; i++) await put(store, `user-${i}`, { passport: { user: `u${i}` } });
    for (let i = 0; i < 300; i++) await put(store, `empty-${i}`, {});
    for (let i = 0; i < 300; i++) await put(store, `cart-${i}`, { cart: [i] });
    expect(await count(store)).toBe(50);
    for (let i = 0; i < 10; i++) {
      expect(await read(store, `user-${i}`)).toMatchObject({ passport: { user: `u${i}` } });
    }
  });

  it('evicts sessions holding nothing but their cookie before sessions with data', async () => {
    const store = new MemoryStore({ maxSessions: 30, sweepInterval: 0 });
    for (let i = 0; i < 20; i++) await put(store, `cart-${i}`, { cart: [i] });
    for (let i = 0; i < 200; i++) await put(store, `empty-${i}`, {});
    for (let i = 0; i < 20; i++)
      expect(await read(store, `cart-${i}`)).toMatchObject({ cart: [i] });
    expect(await count(store)).toBe(30);
  });

  it('takes the user from userIdOf when the application keeps it elsewhere', async () => {
    const store = new MemoryStore({
      maxSessions: 20,
      sweepInterval: 0,
      userIdOf: (session) => session.userId,
    });
    await put(store, 'signed-in', { userId: 7 });
    await put(store, 'passport-only', { passport: { user: 'x' } });
    for (let i = 0; i < 100; i++) await put(store, `cart-${i}`, { cart: [i] });
    expect(await read(store, 'signed-in')).toMatchObject({ userId: 7 });
    expect(await read(store, 'passport-only')).toBeUndefined();
  });

  it('still evicts the least recently used signed-in session when only those are left', async () => {
    const store = new MemoryStore({ maxSessions: 3, sweepInterval: 0 });
    for (const name of ['a', 'b', 'c']) await put(store, name, { passport: { user: name } });
    await read(store, 'a');
    await put(store, 'd', { passport: { user: 'd' } });
    expect(await read(store, 'b')).toBeUndefined();
    expect(await read(store, 'a')).toBeDefined();
    expect(await count(store)).toBe(3);
  });

  it('keeps a signed-in user signed in through a flood of cookieless requests (saveUninitialized: true)', async () => {
    const store = new MemoryStore({ maxSessions: 10, sweepInterval: 0 });
    const browser = await start({ store, saveUninitialized: true });
    await browser.request('/login/alice');
    for (let i = 0; i < 40; i++) {
      const response = await fetch(`${browser.base}/user`);
      expect(await response.text()).toBe('null');
    }
    expect(await count(store)).toBe(10);
    expect(await browser.text('/user')).toBe('"alice"');
  });

  it('refuses a userIdOf that is not a function', () => {
    expect(() => new MemoryStore({ userIdOf: 'userId' as never })).toThrow(
      /userIdOf must be a function/,
    );
  });
});

describe('several cookies of the session’s name (cookie tossing)', () => {
  function signed(sid: string): string {
    const mac = createHmac('sha256', secret).update(sid).digest('base64').replace(/=+$/, '');
    return encodeURIComponent(`s:${sid}.${mac}`);
  }

  async function twoUsers() {
    const store = new MemoryStore({ sweepInterval: 0 });
    const victim = await start({ store, saveUninitialized: false });
    await victim.request('/login/victim');
    const attacker = new Browser(victim.base);
    await attacker.request('/login/attacker');
    return { victim, attacker };
  }

  const cookieOf = (browser: Browser) => browser.jar.get('connect.sid')!;
  const sidOf = (browser: Browser) =>
    idOf({ name: 'connect.sid', value: cookieOf(browser), attributes: {} });

  it.each(['attacker first', 'victim first'])(
    'adopts neither of two cookies leading to live sessions (%s): a new session',
    async (order) => {
      const { victim, attacker } = await twoUsers();
      const pair = [cookieOf(attacker), cookieOf(victim)];
      if (order === 'victim first') pair.reverse();
      const cookie = pair.map((value) => `connect.sid=${value}`).join('; ');
      const headers = { cookie };
      expect(await (await fetch(`${victim.base}/user`, { headers })).text()).toBe('null');
      const id = await (await fetch(`${victim.base}/id`, { headers })).text();
      expect([sidOf(victim), sidOf(attacker)]).not.toContain(id);
      // Both sessions are left as they were.
      expect(await victim.text('/user')).toBe('"victim"');
      expect(await attacker.text('/user')).toBe('"attacker"');
    },
  );

  it('adopts the one live session when the other cookie verifies but leads nowhere', async () => {
    const { victim, attacker } = await twoUsers();
    const stale = cookieOf(attacker);
    await attacker.request('/logout');
    for (const cookie of [
      `connect.sid=${stale}; connect.sid=${cookieOf(victim)}`,
      `connect.sid=${cookieOf(victim)}; connect.sid=${stale}`,
      `connect.sid=${signed('never-issued')}; connect.sid=${cookieOf(victim)}`,
    ]) {
      const response = await fetch(`${victim.base}/user`, { headers: { cookie } });
      expect(await response.text()).toBe('"victim"');
    }
  });

  it('ignores values that fail verification, and counts one session sent twice once', async () => {
    const { victim } = await twoUsers();
    const value = cookieOf(victim);
    for (const cookie of [
      `connect.sid=s%3Aforged.sig; connect.sid=${value}`,
      `connect.sid=${value}; connect.sid=${value}x`,
      `connect.sid=${value}; connect.sid=${value}`,
    ]) {
      const response = await fetch(`${victim.base}/user`, { headers: { cookie } });
      expect(await response.text()).toBe('"victim"');
    }
  });
});
