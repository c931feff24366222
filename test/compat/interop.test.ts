import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import dropIn, { toExpressSessionStore } from '../../src/compat/express-session/index.js';
import { MemoryStore as TesseraMemoryStore } from '../../src/stores/memory.js';
import {
  Browser,
  idOf,
  listen,
  requestOf,
  sessionCookies,
  sessionOf,
  type Running,
} from './helpers.js';

/** The real express-session package (it ships no types; the tests use it as express-session apps do). */
const expressSession = createRequire(import.meta.url)('express-session') as any;

const secret = 'a test secret that is at least thirty-two bytes long';
const running: Running[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

/** An app on either middleware, with routes to write, read, log in, log out. */
async function app(middleware: express.RequestHandler): Promise<Browser> {
  const instance = express();
  instance.use(middleware);
  instance.get('/set/:key/:value', (req, res) => {
    sessionOf(req)[req.params.key as string] = req.params.value;
    res.send('ok');
  });
  instance.get('/get/:key', (req, res) => {
    res.json(sessionOf(req)[req.params.key as string] ?? null);
  });
  instance.get('/login/:user', (req, res, next) => {
    sessionOf(req).regenerate((err) => {
      if (err) return next(err);
      sessionOf(req).user = req.params.user;
      res.send(sessionOf(req).id);
    });
  });
  instance.get('/logout', (req, res, next) => {
    sessionOf(req).destroy((err) => (err ? next(err) : res.send('bye')));
  });
  instance.get('/id', (req, res) => {
    res.send(requestOf(req).sessionID);
  });
  const server = await listen(instance);
  running.push(server);
  return new Browser(server.url);
}

const options = { secret, resave: false, saveUninitialized: false, cookie: { maxAge: 3_600_000 } };

describe('switching between express-session and the drop-in', () => {
  it('keeps users signed in: the drop-in reads sessions express-session wrote, and the reverse', async () => {
    const store = new expressSession.MemoryStore();
    const before = await app(expressSession({ ...options, store }));
    const after = await app(dropIn({ ...options, store }));
    await before.text('/login/alice');
    const switched = new Browser(after.base);
    for (const [name, value] of before.jar) switched.jar.set(name, value);
    expect(await switched.text('/get/user')).toBe('"alice"');
    await switched.text('/set/theme/dark');

    const back = new Browser(before.base);
    for (const [name, value] of switched.jar) back.jar.set(name, value);
    expect(await back.text('/get/theme')).toBe('"dark"');
    expect(await back.text('/get/user')).toBe('"alice"');
  });

  it('writes the same cookie as express-session for the same ID and secret', async () => {
    const genid = () => 'fixed-session-id';
    const theirs = await app(expressSession({ ...options, genid }));
    const ours = await app(dropIn({ ...options, genid }));
    const [a] = sessionCookies(await theirs.request('/set/a/1'));
    const [b] = sessionCookies(await ours.request('/set/a/1'));
    expect(b!.value).toBe(a!.value);
    expect(b!.attributes.path).toBe(a!.attributes.path);
    expect(b!.attributes.httponly).toBe(a!.attributes.httponly);
  });

  it('stores sessions in the same shape, so a store full of express-session sessions stays usable', async () => {
    const theirStore = new expressSession.MemoryStore();
    const ourStore = new dropIn.MemoryStore();
    const theirs = await app(
      expressSession({ ...options, store: theirStore, genid: () => 'same-id' }),
    );
    const ours = await app(dropIn({ ...options, store: ourStore, genid: () => 'same-id' }));
    await theirs.text('/set/list/x');
    await ours.text('/set/list/x');
    const read = (store: any) =>
      new Promise<Record<string, unknown>>((resolve, reject) =>
        store.get('same-id', (err: unknown, value: Record<string, unknown>) =>
          err ? reject(err) : resolve(value),
        ),
      );
    const [t, o] = [await read(theirStore), await read(ourStore)];
    expect(Object.keys(o).sort()).toEqual(Object.keys(t).sort());
    expect(Object.keys(o.cookie as object).sort()).toEqual(Object.keys(t.cookie as object).sort());
  });
});

describe('toExpressSessionStore: express-session on a Tessera store', () => {
  const keyOf = (sid: string) => createHash('sha256').update(sid).digest('base64url');

  it('keeps, reads, regenerates and destroys sessions under hashed keys only', async () => {
    const tessera = new TesseraMemoryStore({ sweepInterval: 0 });
    const browser = await app(
      expressSession({ ...options, store: toExpressSessionStore(tessera) }),
    );
    await browser.text('/set/a/1');
    const first = idOf({ name: '', value: browser.jar.get('connect.sid')!, attributes: {} });
    expect(await browser.text('/get/a')).toBe('"1"');
    expect(await tessera.get(first)).toBeNull();
    const record = await tessera.get(keyOf(first));
    expect(record).not.toBeNull();
    expect(record!.data).not.toContain(first);
    expect(JSON.parse(record!.data)).toMatchObject({
      a: '1',
      cookie: { originalMaxAge: 3_600_000 },
    });

    const second = await browser.text('/login/alice');
    expect(second).not.toBe(first);
    expect(await tessera.get(keyOf(first))).toBeNull();
    expect(await browser.text('/get/user')).toBe('"alice"');

    await browser.text('/logout');
    expect(await tessera.get(keyOf(second))).toBeNull();
    expect(tessera.size).toBe(0);
  });

  it('expires a session when the cookie does, on the Tessera store clock', async () => {
    let now = Date.now();
    const tessera = new TesseraMemoryStore({ sweepInterval: 0, now: () => now });
    const browser = await app(
      expressSession({ ...options, store: toExpressSessionStore(tessera, { now: () => now }) }),
    );
    await browser.text('/set/a/1');
    expect(await browser.text('/get/a')).toBe('"1"');
    now += 3_600_000 + 60_000;
    expect(await browser.text('/get/a')).toBe('null');
  });

  it('touches instead of rewriting an unmodified session (resave: false)', async () => {
    const tessera = new TesseraMemoryStore({ sweepInterval: 0 });
    const browser = await app(
      expressSession({ ...options, rolling: true, store: toExpressSessionStore(tessera) }),
    );
    await browser.text('/set/a/1');
    const key = keyOf(await browser.text('/id'));
    const before = (await tessera.get(key))!;
    await browser.text('/get/a');
    const after = (await tessera.get(key))!;
    expect(after.version).toBe(before.version);
    expect(after.expiresAt).toBeGreaterThanOrEqual(before.expiresAt);
  });

  it('gives browser-session cookies the ttl as their stored lifetime', async () => {
    let now = Date.now();
    const tessera = new TesseraMemoryStore({ sweepInterval: 0, now: () => now });
    const store = toExpressSessionStore(tessera, { ttl: 60_000, now: () => now });
    const browser = await app(expressSession({ ...options, cookie: {}, store }));
    await browser.text('/set/a/1');
    const key = keyOf(await browser.text('/id'));
    expect((await tessera.get(key))!.expiresAt).toBe(now + 60_000);
    now += 60_001;
    expect(await browser.text('/get/a')).toBe('null');
  });

  it('logs a user out everywhere with userIdOf and destroyUserSessions', async () => {
    const tessera = new TesseraMemoryStore({ sweepInterval: 0 });
    const store = toExpressSessionStore(tessera, { userIdOf: (s) => s.user as string | undefined });
    const phone = await app(expressSession({ ...options, store }));
    const laptop = new Browser(phone.base);
    const bob = new Browser(phone.base);
    await phone.text('/login/alice');
    await laptop.text('/login/alice');
    await bob.text('/login/bob');
    expect(await store.destroyUserSessions('alice')).toBe(2);
    expect(await phone.text('/get/user')).toBe('null');
    expect(await laptop.text('/get/user')).toBe('null');
    expect(await bob.text('/get/user')).toBe('"bob"');
  });

  it('works under the drop-in too', async () => {
    const tessera = new TesseraMemoryStore({ sweepInterval: 0 });
    const browser = await app(dropIn({ ...options, store: toExpressSessionStore(tessera) }));
    await browser.text('/login/carol');
    await browser.text('/set/theme/dark');
    expect(await browser.text('/get/user')).toBe('"carol"');
    expect(await browser.text('/get/theme')).toBe('"dark"');
    expect(tessera.size).toBe(1);
  });
});
