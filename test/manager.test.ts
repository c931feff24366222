import { execSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionError, SessionManager, type SessionStore } from '../src/index.js';
import { MemoryStore } from '../src/stores/memory.js';
import { SECRET_COMMAND } from '../src/manager-options.js';
import { webCryptoProvider } from '../src/crypto.js';
import { defineStoreConformance } from '../src/testing/index.js';
import {
  FakeClock,
  InstrumentedStore,
  SECRET,
  cookiePair,
  rawIdOf,
  setup,
  sha256,
} from './support/fixtures.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

async function login(
  manager: SessionManager<any>,
  data: Record<string, unknown> = { user: 'alice' },
) {
  const session = await manager.load({});
  for (const [key, value] of Object.entries(data)) session.set(key, value);
  const headers = await manager.commit(session);
  return { session, cookie: cookiePair(headers.setCookie), headers };
}

/** An answer the manager gave at once, without a promise. */
function atOnce<T>(answer: T | Promise<T>): T {
  expect(answer).not.toBeInstanceOf(Promise);
  return answer as T;
}

/** An answer the manager gave through a promise: it had to wait. */
function waited<T>(answer: T | Promise<T>): Promise<T> {
  expect(answer).toBeInstanceOf(Promise);
  return answer as Promise<T>;
}

/** Logs in, and has the manager load the cookie once, as the first request after login does. */
async function loginAndVerify(manager: SessionManager<any>, data?: Record<string, unknown>) {
  const { cookie } = await login(manager, data);
  await manager.load({ cookie });
  return cookie;
}

describe('session IDs and the store key', () => {
  it('issues 256-bit base64url IDs that never repeat', async () => {
    const { manager } = setup();
    const ids = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const { cookie } = await login(manager, { n: i });
      const id = rawIdOf(cookie);
      expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
      ids.add(id);
    }
    expect(ids.size).toBe(2000);
  });

  it('gives two logins of one user unrelated IDs that carry no user data', async () => {
    const { manager } = setup();
    const a = rawIdOf((await login(manager, { user: 'alice' })).cookie);
    const b = rawIdOf((await login(manager, { user: 'alice' })).cookie);
    expect(a).not.toBe(b);
    expect(a.slice(0, 8)).not.toBe(b.slice(0, 8));
    expect(Buffer.from(a, 'base64url').toString('latin1')).not.toContain('alice');
  });

  it('hands the store only the SHA-256 of the ID', async () => {
    const { manager, store, memory } = setup();
    const { cookie } = await login(manager);
    const id = rawIdOf(cookie);
    expect(memory.size).toBe(1);
    expect(await store.inner.get(id)).toBeNull();
    expect(await store.inner.get(sha256(id))).not.toBeNull();
  });
});

describe('secrets', () => {
  it('refuses to start without a secret of at least 32 bytes', () => {
    const store = new MemoryStore();
    expect(() => new SessionManager({ store, secrets: [] })).toThrow(SessionError);
    expect(() => new SessionManager({ store, secrets: ['short'] })).toThrow(/32 bytes/);
    expect(() => new SessionManager({ store, secrets: [SECRET, 'x'.repeat(31)] })).toThrow(
      /secrets\[1\]/,
    );
    try {
      new SessionManager({ store, secrets: ['short'] });
    } catch (error) {
      expect((error as SessionError).code).toBe('INVALID_OPTION');
    }
  });

  it('says, when a secret is missing or short, a command that makes one the manager accepts', () => {
    const store = new MemoryStore();
    const refusals = [undefined, [], ['short']].map((secrets) => {
      try {
        new SessionManager({ store, secrets: secrets as string[] });
      } catch (error) {
        return error as SessionError;
      }
      throw new Error(`secrets ${JSON.stringify(secrets)} were accepted`);
    });
    for (const refusal of refusals) {
      expect(refusal.code).toBe('INVALID_OPTION');
      expect(refusal.message).toContain(`Make one with: ${SECRET_COMMAND}`);
    }
    const secret = execSync(SECRET_COMMAND, { encoding: 'utf8' }).trim();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(() => new SessionManager({ store, secrets: [secret] })).not.toThrow();
  });

  it('rotates: the first secret signs, every listed secret verifies, a removed one is rejected', async () => {
    const clock = new FakeClock();
    const store = new MemoryStore({ now: clock.now });
    const oldSecret = 'o'.repeat(32);
    const newSecret = 'n'.repeat(32);
    const before = new SessionManager({ store, secrets: [oldSecret], now: clock.now });
    const { cookie } = await login(before);
    const rotated = new SessionManager({ store, secrets: [newSecret, oldSecret], now: clock.now });
    expect((await rotated.load({ cookie })).get('user')).toBe('alice');
    const fresh = await login(rotated);
    expect((await before.load({ cookie: fresh.cookie })).isNew).toBe(true);
    const retired = new SessionManager({ store, secrets: [newSecret], now: clock.now });
    const reasons: string[] = [];
    retired.on('rejected', (event) => reasons.push(event.reason));
    expect((await retired.load({ cookie })).isNew).toBe(true);
    expect(reasons).toEqual(['signature']);
  });
});

describe('rejected cookies', () => {
  it('gives a fresh anonymous session for tampered, unsigned, malformed and unknown cookies', async () => {
    const { manager } = setup();
    const { cookie } = await login(manager, { secret: 'data' });
    const value = cookie.slice(4);
    const [id, signature] = value.split('.') as [string, string];
    const flip = (text: string) => text.slice(0, -1) + (text.endsWith('A') ? 'B' : 'A');
    const otherId = 'A'.repeat(43);
    const variants = [
      `sid=${id}.${flip(signature)}`,
      `sid=${flip(id)}.${signature}`,
      `sid=${id}`,
      `sid=${value}garbage`,
      `sid=${value}.`,
      `sid=${id}.${signature.slice(0, 20)}`,
      `sid=s%3A${value}`,
      `sid=${otherId}.${signature}`,
      'sid=',
      'sid',
    ];
    for (const variant of variants) {
      const session = await manager.load({ cookie: variant });
      expect(session.isNew, variant).toBe(true);
      expect(session.get('secret'), variant).toBeUndefined();
    }
  });

  it('never adopts an ID it did not issue: data set after a rejected cookie gets a new ID', async () => {
    const { manager } = setup();
    const forged = `sid=${'F'.repeat(43)}.${'G'.repeat(43)}`;
    const session = await manager.load({ cookie: forged });
    session.set('x', 1);
    const headers = await manager.commit(session);
    expect(rawIdOf(cookiePair(headers.setCookie))).not.toBe('F'.repeat(43));
  });

  it('rejects a validly signed ID that has no record, and sets no cookie for it', async () => {
    const { manager } = setup();
    const { session, cookie } = await login(manager);
    await session.destroy();
    const events: string[] = [];
    manager.on('rejected', (event) => events.push(event.reason));
    const again = await manager.load({ cookie });
    expect(again.isNew).toBe(true);
    expect((await manager.commit(again)).setCookie).toEqual([]);
    expect(events).toEqual(['unknown']);
  });

  it('survives hostile Cookie headers without throwing and stays linear', async () => {
    const { manager } = setup();
    const { cookie } = await login(manager);
    const hostile = [
      '%',
      'sid=%E0%A4%A',
      'sid="unterminated',
      `sid=${'a'.repeat(8192)}`,
      ';'.repeat(5000),
      Array.from({ length: 1000 }, (_, i) => `c${i}=v${i}`).join('; '),
      '__proto__=1; constructor=2; hasOwnProperty=3; sid=x',
      'sïd=ünïcödé; sid=日本',
      `${'sid=x;'.repeat(2000)}`,
      '=;=;=;sid',
      '\u0000sid=\u0000',
    ];
    for (const header of hostile) {
      const session = await manager.load({ cookie: header });
      expect(session.isNew).toBe(true);
    }
    const started = process.hrtime.bigint();
    await manager.load({ cookie: 'a=b; '.repeat(20_000) });
    expect(Number(process.hrtime.bigint() - started) / 1e9).toBeLessThan(5);
    expect((await manager.load({ cookie: `${cookie}; __proto__=x` })).isNew).toBe(false);
  });

  it('finds the valid cookie among duplicates in either order', async () => {
    const { manager } = setup();
    const { cookie } = await login(manager);
    const bogus = `sid=${'Z'.repeat(43)}.${'Y'.repeat(43)}`;
    expect((await manager.load({ cookie: `${bogus}; ${cookie}` })).get('user')).toBe('alice');
    expect((await manager.load({ cookie: `${cookie}; ${bogus}` })).get('user')).toBe('alice');
  });

  it('matches the cookie name case-exactly and only from the Cookie header', async () => {
    const { manager } = setup();
    const { cookie } = await login(manager);
    expect((await manager.load({ cookie: cookie.replace('sid=', 'SID=') })).isNew).toBe(true);
    expect((await manager.load({ cookie: cookie.replace('sid=', 'xsid=') })).isNew).toBe(true);
  });
});

describe('laziness and round trips', () => {
  it('stores nothing and sets no cookie until the session holds data', async () => {
    const { manager, store, memory } = setup();
    const session = await manager.load({});
    session.get('anything');
    const headers = await manager.commit(session);
    expect(headers.setCookie).toEqual([]);
    expect(headers.cacheControl).toBeUndefined();
    expect(store.total()).toBe(0);
    expect(memory.size).toBe(0);
  });

  it('costs a read-only request exactly one store call and no write', async () => {
    const { manager, store } = setup();
    const { cookie } = await login(manager, { user: 'alice', prefs: { theme: 'dark' } });
    store.reset();
    const session = await manager.load({ cookie });
    expect(session.get('user')).toBe('alice');
    expect(session.get('prefs')).toEqual({ theme: 'dark' });
    const headers = await manager.commit(session);
    expect(headers.setCookie).toEqual([]);
    expect(store.calls).toEqual({ get: 1 });
  });

  it('commit answers at once a session that needs no store call, and a promise for the rest', async () => {
    const { manager, store, clock } = setup();
    const { cookie } = await login(manager, { user: 'alice', prefs: { theme: 'dark' } });
    store.reset();

    const reader = await manager.load({ cookie });
    expect(reader.get('user')).toBe('alice');
    // The session holds data: its response must not be cached, even without a user.
    expect(manager.commit(reader)).toEqual({ setCookie: [], cacheControl: 'no-store' });
    expect(store.calls).toEqual({ get: 1 });

    const writer = await manager.load({ cookie });
    writer.set('count', 1);
    await waited(manager.commit(writer));
    expect(store.count('update')).toBe(1);

    const mutator = await manager.load({ cookie });
    (mutator.get('prefs') as { theme: string }).theme = 'light';
    await waited(manager.commit(mutator));
    expect((await manager.load({ cookie })).get('prefs')).toEqual({ theme: 'light' });

    clock.advance(2 * MINUTE);
    const due = await manager.load({ cookie });
    store.reset();
    await waited(manager.commit(due));
    expect(store.calls).toEqual({ touch: 1 });

    const anonymous = await manager.load({});
    expect(manager.commit(anonymous)).toEqual({ setCookie: [], cacheControl: undefined });
    const fresh = await manager.load({});
    fresh.set('cart', 1);
    await waited(manager.commit(fresh));

    const leaving = await manager.load({ cookie });
    await leaving.destroy();
    const cleared = atOnce(manager.commit(leaving));
    expect(cleared.setCookie).toHaveLength(1);
    expect(cleared.setCookie[0]).toMatch(/^sid=; .*Expires=Thu, 01 Jan 1970/);
  });

  it('refuses data it cannot compare, with a rejected promise', async () => {
    const { manager } = setup();
    const { cookie } = await login(manager, { user: 'alice', box: { n: 1 } });
    const session = await manager.load({ cookie });
    (session.get('box') as { n: unknown }).n = 10n;
    await expect(waited(manager.commit(session))).rejects.toThrow();
  });

  it('gives a signed-in read-only session Cache-Control: no-store, at once', async () => {
    const { manager } = setup();
    const first = await manager.load({});
    await first.login('alice');
    const { setCookie } = await manager.commit(first);
    const session = await manager.load({ cookie: cookiePair(setCookie) });
    expect(session.userId).toBe('alice');
    expect(manager.commit(session)).toEqual({ setCookie: [], cacheControl: 'no-store' });
  });

  it('answers responses that set no cookie with frozen headers, and a new cookie with its own', async () => {
    const { manager } = setup();
    const anonymous = await manager.load({});
    const none = await manager.commit(anonymous);
    expect(none).toEqual({ setCookie: [], cacheControl: undefined });
    expect(Object.isFrozen(none) && Object.isFrozen(none.setCookie)).toBe(true);
    const fresh = await manager.load({});
    fresh.set('k', 1);
    const created = await manager.commit(fresh);
    expect(created.setCookie).toHaveLength(1);
    expect(created.cacheControl).toBe('no-store');
    expect(Object.isFrozen(created.setCookie)).toBe(false);
    const again = await manager.load({ cookie: cookiePair(created.setCookie) });
    expect(again.get('k')).toBe(1);
    const holding = atOnce(manager.commit(again));
    expect(holding).toEqual({ setCookie: [], cacheControl: 'no-store' });
    expect(Object.isFrozen(holding) && Object.isFrozen(holding.setCookie)).toBe(true);
    expect(manager.commit(await manager.load({ cookie: cookiePair(created.setCookie) }))).toBe(
      holding,
    );
  });

  it('costs a read+write request one read and one conditional write', async () => {
    const { manager, store } = setup();
    const { cookie } = await login(manager);
    store.reset();
    const session = await manager.load({ cookie });
    session.set('count', 1);
    await manager.commit(session);
    expect(store.calls).toEqual({ get: 1, update: 1 });
  });
});

describe('a store that answers at once', () => {
  it('reads through it without waiting, from the first sight of a cookie', async () => {
    const { manager, store } = setup({}, { synchronous: true });
    const { cookie } = await login(manager, { user: 'alice', cart: 3 });
    store.reset();
    const session = atOnce(manager.load({ cookie }));
    expect(session.get('user')).toBe('alice');
    expect(session.get('cart')).toBe(3);
    expect(atOnce(manager.commit(session)).setCookie).toEqual([]);
    expect(store.calls).toEqual({ get: 1 });
  });

  it('gives a new session at once to a request without a cookie, once the manager is ready', async () => {
    const { manager, store } = setup({}, { synchronous: true });
    // The default crypto provider is resolved asynchronously: until then every load waits.
    await waited(manager.load({}));
    const session = atOnce(manager.load({ userAgent: 'test-agent' }));
    expect(session.isNew).toBe(true);
    expect(store.total()).toBe(0);
  });

  it('waits on a store that answers promises', async () => {
    const { manager, store } = setup();
    const cookie = await loginAndVerify(manager);
    store.reset();
    expect((await waited(manager.load({ cookie }))).get('user')).toBe('alice');
    expect(store.calls).toEqual({ get: 1 });
  });

  it('waits on a store that answers thenables that are not native promises', async () => {
    const clock = new FakeClock();
    const memory = new MemoryStore({ now: clock.now, sweepInterval: 0 });
    // Each method answers an object with only `then`, as promise libraries outside the language do.
    const thenable = <T>(value: T | Promise<T>) => ({
      then: (onDone: (v: T) => unknown, onFailed?: (e: unknown) => unknown) =>
        Promise.resolve(value).then(onDone, onFailed),
    });
    const store = new Proxy(memory, {
      get(target, name) {
        const member = Reflect.get(target, name, target) as unknown;
        return typeof member === 'function'
          ? (...args: unknown[]) =>
              thenable((member as (...a: unknown[]) => unknown).apply(target, args))
          : member;
      },
    }) as unknown as SessionStore;
    const manager = new SessionManager({ store, secrets: [SECRET], now: clock.now });
    const { cookie } = await login(manager, { user: 'alice', n: 1 });
    const session = await waited(manager.load({ cookie }));
    expect(session.get('user')).toBe('alice');
    session.set('n', 2);
    await waited(manager.commit(session));
    expect((await manager.load({ cookie })).get('n')).toBe(2);
  });

  it('rejects with STORE_UNAVAILABLE when the store throws, never an empty session', async () => {
    const { manager, store } = setup({}, { synchronous: true });
    const cookie = await loginAndVerify(manager);
    store.failing.add('get');
    const thrown = await waited(manager.load({ cookie })).catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(SessionError);
    expect((thrown as SessionError).code).toBe('STORE_UNAVAILABLE');
    expect((thrown as Error).message).not.toContain(rawIdOf(cookie));
    await expect(manager.load({ cookie })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    store.failing.clear();
    expect(atOnce(manager.load({ cookie })).get('user')).toBe('alice');
  });

  it('gives a fresh session for an expired or deleted record, and reports the expiry', async () => {
    const clock = new FakeClock();
    // A store whose clock lags still returns the record: the manager's own check must expire it.
    const memory = new MemoryStore({ now: () => clock.now() - 24 * HOUR, sweepInterval: 0 });
    const store = new InstrumentedStore(memory, { synchronous: true });
    const manager = new SessionManager({
      store,
      secrets: [SECRET],
      now: clock.now,
      idleTimeout: 30 * MINUTE,
    });
    const reasons: string[] = [];
    manager.on('expired', (event) => reasons.push(event.reason));
    const first = await loginAndVerify(manager);
    clock.advance(31 * MINUTE);
    store.reset();
    const expired = atOnce(manager.load({ cookie: first }));
    expect(expired.isNew).toBe(true);
    expect(expired.get('user')).toBeUndefined();
    expect(reasons).toEqual(['idle']);
    expect(store.calls).toEqual({ get: 1 });
    const second = await loginAndVerify(manager);
    await memory.delete(sha256(rawIdOf(second)));
    store.reset();
    expect(atOnce(manager.load({ cookie: second })).isNew).toBe(true);
    expect(store.calls).toEqual({ get: 1 });
  });

  it('decrypts sealed records at once with node:crypto, and waits on Web Crypto', async () => {
    const encryption = { keys: [{ id: 'k1', key: Buffer.alloc(32, 7).toString('base64') }] };
    const { manager, store } = setup({ encryption }, { synchronous: true });
    const cookie = await loginAndVerify(manager, { user: 'alice' });
    store.reset();
    expect(atOnce(manager.load({ cookie })).get('user')).toBe('alice');
    expect(store.calls).toEqual({ get: 1 });
    const web = setup({ encryption, crypto: webCryptoProvider() }, { synchronous: true });
    const sealed = await loginAndVerify(web.manager, { user: 'bob' });
    web.store.reset();
    // Web Crypto decrypts with a promise: the load waits on it.
    const loading = waited(web.manager.load({ cookie: sealed }));
    expect((await loading).get('user')).toBe('bob');
    expect(web.store.calls).toEqual({ get: 1 });
  });

  it('saves a changed session at once: one update', async () => {
    const { manager, store } = setup({}, { synchronous: true });
    const cookie = await loginAndVerify(manager);
    store.reset();
    const session = atOnce(manager.load({ cookie }));
    session.set('theme', 'dark');
    const headers = atOnce(manager.commit(session));
    expect(headers.setCookie).toEqual([]);
    expect(store.calls).toEqual({ get: 1, update: 1 });
    expect(atOnce(manager.load({ cookie })).get('theme')).toBe('dark');
  });

  it('meets a conflict by waiting, reading again and re-applying the changes', async () => {
    const { manager, store } = setup({}, { synchronous: true });
    const cookie = await loginAndVerify(manager);
    const first = atOnce(manager.load({ cookie }));
    const second = atOnce(manager.load({ cookie }));
    first.set('a', 1);
    second.set('b', 2);
    atOnce(manager.commit(first));
    store.reset();
    // The stored version moved on: the save backs off, reads again and writes on top.
    await waited(manager.commit(second));
    expect(store.calls).toEqual({ update: 2, get: 1 });
    const final = atOnce(manager.load({ cookie }));
    expect([final.get('a'), final.get('b'), final.get('user')]).toEqual([1, 2, 'alice']);
  });

  it('fails a save as a rejection (a failing store, data too large) and moves a new user to a new ID', async () => {
    const { manager, store } = setup({ maxDataBytes: 1024 }, { synchronous: true });
    const cookie = await loginAndVerify(manager);
    store.failing.add('update');
    const failing = atOnce(manager.load({ cookie }));
    failing.set('a', 1);
    await expect(manager.commit(failing)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    store.failing.clear();
    const large = atOnce(manager.load({ cookie }));
    large.set('blob', 'x'.repeat(2048));
    store.reset();
    await expect(manager.commit(large)).rejects.toMatchObject({ code: 'DATA_TOO_LARGE' });
    expect(store.total()).toBe(0);
    const binding = atOnce(manager.load({ cookie }));
    binding.setUser('bob');
    store.reset();
    // Binding a user moves the session to a new ID: the old cookie leads nowhere.
    const { setCookie } = await manager.commit(binding);
    expect(store.calls).toEqual({ delete: 1, create: 1 });
    const moved = await manager.load({ cookie: cookiePair(setCookie) });
    expect(moved.userId).toBe('bob');
    expect(moved.get('a')).toBeUndefined();
    expect(atOnce(manager.load({ cookie })).isNew).toBe(true);
  });

  it('stores a new session and signs its cookie at once: one create', async () => {
    const { manager, store } = setup({}, { synchronous: true });
    await loginAndVerify(manager);
    const created: unknown[] = [];
    manager.on('created', (event) => created.push(event));
    store.reset();
    const session = atOnce(manager.load({}));
    session.set('cart', 1);
    const headers = atOnce(manager.commit(session));
    expect(store.calls).toEqual({ create: 1 });
    expect(headers.setCookie).toHaveLength(1);
    // A browser-session cookie by default: no Max-Age.
    expect(headers.setCookie[0]).toMatch(
      /^sid=[\w-]{43}\.[\w-]{43}; Path=\/; HttpOnly; SameSite=Lax$/,
    );
    expect(headers.cacheControl).toBe('no-store');
    expect(created).toEqual([expect.objectContaining({ userId: null, reason: 'new' })]);
    expect(session.isNew).toBe(false);
    const cookie = cookiePair(headers.setCookie);
    const again = await manager.load({ cookie });
    expect(again.get('cart')).toBe(1);
    // The store holds the hash of the ID, never the ID.
    expect(await store.inner.get(sha256(rawIdOf(cookie)))).not.toBeNull();
    expect(await store.inner.get(rawIdOf(cookie))).toBeNull();
    // The cookie is sent once; later saves of the same session carry none.
    session.set('cart', 2);
    expect(atOnce(manager.commit(session)).setCookie).toEqual([]);
  });

  it('answers await as well when it answered at once', async () => {
    const { manager, store } = setup({}, { synchronous: true });
    await loginAndVerify(manager);
    store.reset();
    const session = await manager.load({});
    session.set('cart', 1);
    const { setCookie } = await manager.commit(session);
    expect(store.calls).toEqual({ create: 1 });
    expect((await manager.load({ cookie: cookiePair(setCookie) })).get('cart')).toBe(1);
  });

  it('fails a new session as a rejection (a failing store, data too large) and waits to cap a user', async () => {
    const { manager, store } = setup(
      { maxDataBytes: 1024, maxSessionsPerUser: 1 },
      { synchronous: true },
    );
    await loginAndVerify(manager);
    store.failing.add('create');
    const failing = atOnce(manager.load({}));
    failing.set('a', 1);
    await expect(manager.commit(failing)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(failing.isNew).toBe(true);
    store.failing.clear();

    const large = atOnce(manager.load({}));
    large.set('blob', 'x'.repeat(2048));
    store.reset();
    await expect(manager.commit(large)).rejects.toMatchObject({ code: 'DATA_TOO_LARGE' });
    expect(store.total()).toBe(0);

    const first = await manager.load({});
    first.setUser('carol');
    const { setCookie: firstCookie } = await manager.commit(first);
    const second = atOnce(manager.load({}));
    second.setUser('carol');
    store.reset();
    // Capping reads the user's sessions: that waits.
    const { setCookie } = await waited(manager.commit(second));
    expect(store.count('create')).toBe(1);
    expect((await manager.load({ cookie: cookiePair(setCookie) })).userId).toBe('carol');
    // The cap of one session per user removed the first.
    expect((await manager.load({ cookie: cookiePair(firstCookie) })).isNew).toBe(true);
  });

  it('waits on Web Crypto to hash and sign a new session, then creates it the same way', async () => {
    const { manager, store } = setup({ crypto: webCryptoProvider() }, { synchronous: true });
    await loginAndVerify(manager);
    store.reset();
    const session = atOnce(manager.load({}));
    session.set('cart', 1);
    const committing = waited(manager.commit(session));
    expect(store.total()).toBe(0);
    const { setCookie } = await committing;
    expect(store.calls).toEqual({ create: 1 });
    expect((await manager.load({ cookie: cookiePair(setCookie) })).get('cart')).toBe(1);
  });

  it('stores and signs a regenerated anonymous session under a new ID, then deletes the old', async () => {
    const { manager, store } = setup({}, { synchronous: true });
    const cookie = await loginAndVerify(manager);
    const session = atOnce(manager.load({ cookie }));
    await session.regenerate({ keep: true });
    store.reset();
    // The create answers at once; the delete of the old record (a promise here) follows it.
    const headers = await waited(manager.commit(session));
    expect(store.calls).toEqual({ create: 1, delete: 1 });
    expect(headers.setCookie).toHaveLength(1);
    const fresh = cookiePair(headers.setCookie);
    expect(fresh).not.toBe(cookie);
    expect((await manager.load({ cookie: fresh })).get('user')).toBe('alice');
    expect((await manager.load({ cookie })).isNew).toBe(true);
  });
});

describe('expiry, enforced on the server', () => {
  it('expires after the idle timeout', async () => {
    const { manager, clock } = setup();
    const { cookie } = await login(manager);
    clock.advance(29 * MINUTE);
    expect((await manager.load({ cookie })).get('user')).toBe('alice');
    clock.advance(31 * MINUTE);
    const session = await manager.load({ cookie });
    expect(session.isNew).toBe(true);
    expect(session.get('user')).toBeUndefined();
  });

  it('throttles touches: at most one per touch interval, and activity keeps the session alive', async () => {
    const { manager, clock, store } = setup();
    const { cookie } = await login(manager);
    store.reset();
    for (let i = 0; i < 10; i++) {
      clock.advance(5_000);
      await manager.commit(await manager.load({ cookie }));
    }
    expect(store.count('touch')).toBe(0);
    clock.advance(15_000);
    await manager.commit(await manager.load({ cookie }));
    expect(store.count('touch')).toBe(1);
    for (let i = 0; i < 20; i++) {
      clock.advance(20 * MINUTE);
      expect((await manager.load({ cookie })).get('user')).toBe('alice');
      await manager.commit(await manager.load({ cookie }));
    }
  });

  it('scales the default touch interval with a short idle timeout', async () => {
    const { manager, clock } = setup({ idleTimeout: 20_000 });
    const { cookie } = await login(manager);
    for (let i = 0; i < 30; i++) {
      clock.advance(15_000);
      const session = await manager.load({ cookie });
      expect(session.get('user')).toBe('alice');
      await manager.commit(session);
    }
  });

  it('ends the session at the absolute timeout however active it is', async () => {
    const { manager, clock } = setup();
    const { cookie } = await login(manager);
    let alive = 0;
    for (let i = 0; i < 13 * 6; i++) {
      clock.advance(10 * MINUTE);
      const session = await manager.load({ cookie });
      if (session.isNew) break;
      expect(session.expiresAt).toBeLessThanOrEqual(session.absoluteExpiresAt);
      session.set('tick', i);
      await manager.commit(session);
      alive += 10;
    }
    expect(alive).toBe(11 * 60 + 50);
  });

  it('checks expiry itself, even when the store still returns the record', async () => {
    const clock = new FakeClock();
    const lagging = new MemoryStore({ now: () => clock.now() - 24 * HOUR });
    const manager = new SessionManager({ store: lagging, secrets: [SECRET], now: clock.now });
    const reasons: string[] = [];
    manager.on('expired', (event) => reasons.push(event.reason));
    const idle = await login(manager);
    clock.advance(31 * MINUTE);
    expect((await manager.load({ cookie: idle.cookie })).isNew).toBe(true);
    const absolute = await login(manager);
    for (let i = 0; i < 50; i++) {
      clock.advance(15 * MINUTE);
      const session = await manager.load({ cookie: absolute.cookie });
      if (session.isNew) break;
      session.set('tick', i);
      await manager.commit(session);
    }
    expect(reasons).toEqual(['idle', 'absolute']);
  });

  it('keeps the stored expiry rules on load, whatever the configuration says now', async () => {
    const clock = new FakeClock();
    const store = new MemoryStore({ now: clock.now });
    const strict = new SessionManager({
      store,
      secrets: [SECRET],
      now: clock.now,
      idleTimeout: 10 * MINUTE,
    });
    const { cookie } = await login(strict);
    const lax = new SessionManager({
      store,
      secrets: [SECRET],
      now: clock.now,
      idleTimeout: 10 * HOUR,
    });
    clock.advance(11 * MINUTE);
    expect((await lax.load({ cookie })).isNew).toBe(true);
  });

  it('gives a remember-me session its own timeouts and a cookie to match', async () => {
    const { manager, clock } = setup();
    const { session, cookie } = await login(manager);
    const same = await manager.load({ cookie });
    same.setTimeouts({ idle: 7 * 24 * HOUR, absolute: 30 * 24 * HOUR, persistent: true });
    const headers = await manager.commit(same);
    expect(headers.setCookie[0]).toMatch(/Max-Age=2592000/);
    clock.advance(3 * 24 * HOUR);
    expect((await manager.load({ cookie })).get('user')).toBe('alice');
    expect(session.createdAt).toBe(same.createdAt);
    expect(() => same.setTimeouts({ idle: -1 })).toThrow(SessionError);
  });
});

describe('dirty tracking and concurrency', () => {
  it('keeps concurrent writes of different keys', async () => {
    const { manager } = setup();
    const { cookie } = await login(manager);
    const sessions = await Promise.all(Array.from({ length: 20 }, () => manager.load({ cookie })));
    sessions.forEach((session, i) => session.set(`k${i}`, i));
    await Promise.all(sessions.map((session) => manager.commit(session)));
    const final = await manager.load({ cookie });
    for (let i = 0; i < 20; i++) expect(final.get(`k${i}`)).toBe(i);
    expect(final.get('user')).toBe('alice');
  });

  it('lets the last writer of one key win, and re-applies deletions', async () => {
    const { manager } = setup();
    const { cookie } = await login(manager, { user: 'alice', a: 1, b: 2 });
    const first = await manager.load({ cookie });
    const second = await manager.load({ cookie });
    first.set('a', 'first');
    second.set('a', 'second');
    second.delete('b');
    await manager.commit(first);
    await manager.commit(second);
    const final = await manager.load({ cookie });
    expect(final.get('a')).toBe('second');
    expect(final.has('b')).toBe(false);
  });

  it('notices objects changed in place', async () => {
    const { manager } = setup();
    const { cookie } = await login(manager, { cart: ['apple'] });
    const session = await manager.load({ cookie });
    (session.get('cart') as string[]).push('pear');
    await manager.commit(session);
    expect((await manager.load({ cookie })).get('cart')).toEqual(['apple', 'pear']);
  });

  it('never brings back a session that a concurrent request destroyed', async () => {
    const { manager, memory } = setup();
    const { cookie } = await login(manager);
    const slow = await manager.load({ cookie });
    const logout = await manager.load({ cookie });
    await logout.destroy();
    await manager.commit(logout);
    slow.set('late', 'write');
    const headers = await manager.commit(slow);
    expect(headers.setCookie).toEqual([]);
    expect(slow.isEnded).toBe(true);
    expect(memory.size).toBe(0);
    expect((await manager.load({ cookie })).isNew).toBe(true);
  });

  it('gives up with WRITE_CONFLICT when the version never settles', async () => {
    const clock = new FakeClock();
    const inner = new MemoryStore({ now: clock.now });
    const store = new InstrumentedStore(inner);
    store.update = async () => ({ status: 'conflict' });
    const manager = new SessionManager({ store, secrets: [SECRET], now: clock.now, maxRetries: 2 });
    const { cookie } = await login(manager);
    const session = await manager.load({ cookie });
    session.set('x', 1);
    await expect(manager.commit(session)).rejects.toMatchObject({
      code: 'WRITE_CONFLICT',
      status: 503,
    });
  });
});

describe('regenerate and destroy', () => {
  it('moves to a new ID and kills the old one once the new one is stored', async () => {
    const { manager, store } = setup();
    const { cookie } = await login(manager, { user: 'alice', cart: [1] });
    const session = await manager.load({ cookie });
    await session.regenerate();
    expect(session.get('cart')).toBeUndefined();
    session.set('user', 'alice');
    const headers = await manager.commit(session);
    expect(await store.inner.get(sha256(rawIdOf(cookie)))).toBeNull();
    const next = cookiePair(headers.setCookie);
    expect(rawIdOf(next)).not.toBe(rawIdOf(cookie));
    expect((await manager.load({ cookie })).isNew).toBe(true);
    expect((await manager.load({ cookie: next })).get('user')).toBe('alice');
  });

  it('keeps all, none or some of the data as asked', async () => {
    const { manager } = setup();
    const data = { user: 'alice', cart: [1], theme: 'dark' };
    for (const [keep, expected] of [
      [true, ['cart', 'theme', 'user']],
      [false, []],
      [['theme'], ['theme']],
    ] as const) {
      const { cookie } = await login(manager, data);
      const session = await manager.load({ cookie });
      await session.regenerate({ keep: keep as boolean | string[] });
      expect(session.keys().sort()).toEqual(expected);
    }
  });

  it('clears the old cookie when the regenerated session stays empty', async () => {
    const { manager } = setup({ cookie: { path: '/app', domain: 'example.com' } });
    const { cookie } = await login(manager);
    const session = await manager.load({ cookie });
    await session.regenerate();
    const headers = await manager.commit(session);
    expect(headers.setCookie).toHaveLength(1);
    expect(headers.setCookie[0]).toMatch(/^sid=; /);
    expect(headers.setCookie[0]).toMatch(/Path=\/app/);
    expect(headers.setCookie[0]).toMatch(/Domain=example.com/);
  });

  it('login() regenerates and binds the user with an authentication time', async () => {
    const { manager, clock } = setup();
    const session = await manager.load({});
    session.set('anonymous', 'cart');
    await session.login('alice');
    expect(session.get('anonymous')).toBeUndefined();
    expect(session.userId).toBe('alice');
    expect(session.authenticatedAt).toBe(clock.now());
  });

  it('destroy deletes the record and clears the cookie with its Path and Domain', async () => {
    const { manager, memory } = setup({ cookie: { path: '/app', domain: 'example.com' } });
    const { cookie } = await login(manager);
    const session = await manager.load({ cookie });
    await session.destroy();
    expect(memory.size).toBe(0);
    expect(session.get('user')).toBeUndefined();
    expect(() => session.set('user', 'x')).toThrow(/destroyed/);
    const headers = await manager.commit(session);
    expect(headers.setCookie[0]).toMatch(/^sid=; Max-Age=0; /);
    expect(headers.setCookie[0]).toMatch(/; Path=\/app;/);
    expect(headers.setCookie[0]).toMatch(/; Domain=example.com;/);
    expect(headers.setCookie[0]).toMatch(/; Expires=Thu, 01 Jan 1970 00:00:00 GMT/);
    expect(headers.cacheControl).toBe('no-store');
  });
});

describe("a user's sessions", () => {
  it('lists them without IDs, marks the current one, and revokes the others', async () => {
    const { manager, clock } = setup();
    const devices = [];
    for (const agent of ['Firefox', 'Chrome', 'Safari']) {
      const session = await manager.load({ userAgent: agent, ip: '203.0.113.9' });
      await session.login('alice');
      const headers = await manager.commit(session);
      devices.push(cookiePair(headers.setCookie));
      clock.advance(MINUTE);
    }
    const current = await manager.load({ cookie: devices[1] });
    const list = await manager.listUserSessions('alice', current);
    expect(list).toHaveLength(3);
    expect(list.filter((s) => s.current)).toHaveLength(1);
    expect(list.find((s) => s.current)?.userAgent).toBe('Chrome');
    expect(list[0]!.ip).toBe('203.0.113.9');
    const text = JSON.stringify(list);
    for (const device of devices) expect(text).not.toContain(rawIdOf(device));
    expect(await manager.revokeUserSessions('alice', { except: current })).toBe(2);
    expect((await manager.load({ cookie: devices[0] })).isNew).toBe(true);
    expect((await manager.load({ cookie: devices[1] })).userId).toBe('alice');
    expect(await manager.revokeUserSessions('alice')).toBe(1);
    expect((await manager.load({ cookie: devices[1] })).isNew).toBe(true);
  });

  it("records the login request's browser and address on the regenerated session", async () => {
    const { manager } = setup();
    const anonymous = await manager.load({ userAgent: 'old-browser', ip: '192.0.2.1' });
    anonymous.set('cart', 1);
    const cookie = cookiePair((await manager.commit(anonymous)).setCookie);
    const session = await manager.load({ cookie, userAgent: 'new-browser', ip: '192.0.2.2' });
    await session.login('dave');
    await manager.commit(session);
    const [info] = await manager.listUserSessions('dave');
    expect(info).toMatchObject({ userAgent: 'new-browser', ip: '192.0.2.2' });
  });

  it('caps sessions per user: the oldest goes', async () => {
    const { manager, clock } = setup({ maxSessionsPerUser: 2 });
    const cookies = [];
    for (let i = 0; i < 3; i++) {
      const session = await manager.load({});
      await session.login('bob');
      cookies.push(cookiePair((await manager.commit(session)).setCookie));
      clock.advance(MINUTE);
    }
    expect((await manager.load({ cookie: cookies[0] })).isNew).toBe(true);
    expect((await manager.load({ cookie: cookies[1] })).userId).toBe('bob');
    expect((await manager.load({ cookie: cookies[2] })).userId).toBe('bob');
    expect(await manager.listUserSessions('bob')).toHaveLength(2);
  });

  it('revokes one session by its handle, only for its own user', async () => {
    const { manager } = setup();
    const session = await manager.load({});
    await session.login('carol');
    const cookie = cookiePair((await manager.commit(session)).setCookie);
    const [info] = await manager.listUserSessions('carol');
    expect(await manager.revokeUserSession('mallory', info!.handle)).toBe(false);
    expect(await manager.revokeUserSession('carol', info!.handle)).toBe(true);
    expect((await manager.load({ cookie })).isNew).toBe(true);
  });
});

describe('a store without a user index', () => {
  /** The memory store with its user index hidden: what a store without one offers. */
  function withoutIndex(store: MemoryStore): SessionStore {
    return {
      get: (key) => store.get(key),
      create: (key, record) => store.create(key, record),
      update: (key, record, version) => store.update(key, record, version),
      touch: (key, expiresAt) => store.touch(key, expiresAt),
      delete: (key) => store.delete(key),
    };
  }

  it("keeps sessions and users, refuses to list or revoke a user's sessions, and revokes by handle", async () => {
    const memory = new MemoryStore({ sweepInterval: 0 });
    const manager = new SessionManager({ store: withoutIndex(memory), secrets: [SECRET] });
    const session = await manager.load({});
    await session.login('erin');
    const cookie = cookiePair((await manager.commit(session)).setCookie);
    expect((await manager.load({ cookie })).userId).toBe('erin');
    await expect(manager.listUserSessions('erin')).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await expect(manager.revokeUserSessions('erin')).rejects.toMatchObject({
      code: 'UNSUPPORTED',
    });
    const [listed] = await memory.listByUser('erin');
    expect(await manager.revokeUserSession('erin', listed!.key)).toBe(true);
    expect((await manager.load({ cookie })).isNew).toBe(true);
  });

  it('refuses maxSessionsPerUser at start-up', () => {
    const store = withoutIndex(new MemoryStore({ sweepInterval: 0 }));
    expect(() => new SessionManager({ store, secrets: [SECRET], maxSessionsPerUser: 2 })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION' }),
    );
  });

  defineStoreConformance({
    name: 'MemoryStore without its user index',
    createStore: (clock) => withoutIndex(new MemoryStore({ now: clock.now, sweepInterval: 0 })),
    synchronous: true,
    userIndex: false,
    prune: false,
    runner: { describe, it, beforeEach, afterEach },
  });
});

describe('key material given as bytes', () => {
  it('keeps secrets and encryption keys as they were at start-up, with the default provider', async () => {
    const secret = new Uint8Array(32).fill(7);
    const key = new Uint8Array(32).fill(9);
    const manager = new SessionManager({
      store: new MemoryStore({ sweepInterval: 0 }),
      secrets: [secret],
      encryption: { keys: [{ id: 'k1', key }] },
    });
    secret.fill(0);
    key.fill(0);
    const session = await manager.load({});
    session.set('a', 1);
    const cookie = cookiePair((await manager.commit(session)).setCookie);
    const expected = createHmac('sha256', new Uint8Array(32).fill(7))
      .update(rawIdOf(cookie))
      .digest('base64url');
    expect(cookie.split('.')[1]).toBe(expected);
    expect((await manager.load({ cookie })).get('a')).toBe(1);
  });
});

describe('cookie attributes', () => {
  it('defaults to HttpOnly, SameSite=Lax, Path=/, no Domain, and Cache-Control: no-store', async () => {
    const { manager } = setup();
    const { headers } = await login(manager);
    const setCookie = headers.setCookie[0]!;
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Lax/);
    expect(setCookie).toMatch(/Path=\//);
    expect(setCookie).not.toMatch(/Domain/);
    expect(setCookie).not.toMatch(/Secure/);
    expect(headers.cacheControl).toBe('no-store');
  });

  it('is Secure with the __Host- prefix on HTTPS, and reads it back only there', async () => {
    const { manager } = setup();
    const session = await manager.load({ https: true });
    session.set('a', 1);
    const headers = await manager.commit(session);
    expect(headers.setCookie[0]).toMatch(/^__Host-sid=/);
    expect(headers.setCookie[0]).toMatch(/; Secure/);
    const cookie = cookiePair(headers.setCookie);
    expect((await manager.load({ cookie, https: true })).get('a')).toBe(1);
    expect((await manager.load({ cookie, https: false })).isNew).toBe(true);
  });

  it('trusts X-Forwarded-Proto only with trustProxy', async () => {
    const plain = setup();
    const s1 = await plain.manager.load({ forwardedProto: 'https' });
    s1.set('a', 1);
    expect((await plain.manager.commit(s1)).setCookie[0]).not.toMatch(/Secure/);
    const proxied = setup({ trustProxy: true });
    const s2 = await proxied.manager.load({ forwardedProto: 'https, http' });
    s2.set('a', 1);
    expect((await proxied.manager.commit(s2)).setCookie[0]).toMatch(/^__Host-sid=.*Secure/);
  });

  it('fails at start-up on unsafe or impossible cookie options', () => {
    const bad = [
      { sameSite: 'none' as const },
      { sameSite: 'none' as const, secure: 'auto' as const },
      { name: '__Host-sid', secure: true, domain: 'example.com' },
      { name: '__Host-sid', secure: true, path: '/app' },
      { name: '__Secure-sid' },
      { path: '/a;b' },
      { path: '/a\r\nSet-Cookie: x=y' },
      { domain: 'example.com;x' },
      { domain: 'exa mple.com' },
      { name: 'bad name' },
      { name: 'a,b' },
      { partitioned: true },
    ];
    for (const cookie of bad) {
      expect(() => setup({ cookie }), JSON.stringify(cookie)).toThrow(SessionError);
    }
    expect(() => setup({ cookie: { sameSite: 'none', secure: true } })).not.toThrow();
  });

  it('rejects bad manager options with a typed error', () => {
    for (const options of [
      { idleTimeout: 0 },
      { idleTimeout: -5 },
      { absoluteTimeout: Number.NaN },
      { touchInterval: 40 * MINUTE },
      { storeTimeout: 0 },
      { store: undefined },
      { encryption: { keys: [] } },
      { encryption: { keys: [{ id: 'k1', key: 'too-short' }] } },
    ]) {
      expect(() => setup(options as never), JSON.stringify(options)).toThrow(SessionError);
    }
  });
});

describe('encryption at rest', () => {
  const key1 = Buffer.alloc(32, 1).toString('base64');
  const key2 = Buffer.alloc(32, 2).toString('base64url');

  it('stores sealed data that reveals nothing, with a fresh IV per write', async () => {
    const { manager, store, clock } = setup({ encryption: { keys: [{ id: 'k1', key: key1 }] } });
    const { cookie } = await login(manager, { user: 'alice', card: '4111-1111' });
    const key = sha256(rawIdOf(cookie));
    const first = (await store.inner.get(key))!.data;
    expect(first).toMatch(/^e1\.k1\./);
    expect(first).not.toContain('alice');
    expect(first).not.toContain('4111');
    const session = await manager.load({ cookie });
    session.set('card', '4111-1111');
    session.touch();
    clock.advance(1);
    session.set('n', 1);
    await manager.commit(session);
    const second = (await store.inner.get(key))!.data;
    expect(second.split('.')[2]).not.toBe(first.split('.')[2]);
    expect((await manager.load({ cookie })).get('card')).toBe('4111-1111');
  });

  it('decrypts under an older key and seals with the newest', async () => {
    const clock = new FakeClock();
    const memory = new MemoryStore({ now: clock.now });
    const base = { store: memory, secrets: [SECRET], now: clock.now };
    const old = new SessionManager({ ...base, encryption: { keys: [{ id: 'k1', key: key1 }] } });
    const { cookie } = await login(old);
    const ring = new SessionManager({
      ...base,
      encryption: {
        keys: [
          { id: 'k2', key: key2 },
          { id: 'k1', key: key1 },
        ],
      },
    });
    const session = await ring.load({ cookie });
    expect(session.get('user')).toBe('alice');
    session.set('n', 2);
    await ring.commit(session);
    expect((await memory.get(sha256(rawIdOf(cookie))))!.data).toMatch(/^e1\.k2\./);
    const dropped = new SessionManager({
      ...base,
      encryption: { keys: [{ id: 'k3', key: key1 }] },
    });
    expect((await dropped.load({ cookie })).isNew).toBe(true);
  });

  it('rejects plaintext, tampered blobs and blobs moved to another record', async () => {
    const { manager, store } = setup({ encryption: { keys: [{ id: 'k1', key: key1 }] } });
    const a = await login(manager, { user: 'alice' });
    const b = await login(manager, { user: 'bob' });
    const keyA = sha256(rawIdOf(a.cookie));
    const keyB = sha256(rawIdOf(b.cookie));
    const blobA = (await store.inner.get(keyA))!;
    await store.inner.update(keyB, { ...blobA }, 1);
    expect((await manager.load({ cookie: b.cookie })).get('user')).toBeUndefined();
    const flipped = blobA.data.slice(0, -2) + (blobA.data.endsWith('AA') ? 'BB' : 'AA');
    await store.inner.update(keyA, { ...blobA, data: flipped }, 1);
    expect((await manager.load({ cookie: a.cookie })).isNew).toBe(true);
    const plain = await login(setup().manager);
    void plain;
    await store.inner.update(
      keyA,
      { ...blobA, data: '{"d":{"user":"mallory"},"c":0,"w":0,"i":1e12,"x":1e15}' },
      2,
    );
    expect((await manager.load({ cookie: a.cookie })).get('user')).toBeUndefined();
  });
});

describe('store failures', () => {
  it('turns a failing store into STORE_UNAVAILABLE, never an empty session', async () => {
    const { manager, store } = setup();
    const { cookie } = await login(manager);
    store.failing.add('get');
    const error = await waited(manager.load({ cookie })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionError);
    expect((error as SessionError).code).toBe('STORE_UNAVAILABLE');
    expect((error as SessionError).status).toBe(503);
    expect((error as Error).message).not.toContain(rawIdOf(cookie));
    store.failing.clear();
    expect((await manager.load({ cookie })).get('user')).toBe('alice');
  });

  it('bounds a store that does not answer', async () => {
    const { manager, store } = setup({ storeTimeout: 50 });
    const { cookie } = await login(manager);
    store.hanging.add('get');
    await expect(manager.load({ cookie })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('fails the commit of a new session without a cookie when create fails', async () => {
    const { manager, store } = setup();
    store.failing.add('create');
    const session = await manager.load({});
    session.set('a', 1);
    await expect(manager.commit(session)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });
});

describe('data', () => {
  it('keeps method-like and prototype keys as plain data', async () => {
    const { manager } = setup();
    const session = await manager.load({});
    for (const key of [
      'save',
      'regenerate',
      'destroy',
      'constructor',
      'hasOwnProperty',
      'toString',
    ])
      session.set(key, key);
    session.set('__proto__', { polluted: true });
    const cookie = cookiePair((await manager.commit(session)).setCookie);
    const loaded = await manager.load({ cookie });
    expect(typeof loaded.save).toBe('function');
    expect(loaded.get('save')).toBe('save');
    expect(loaded.get('hasOwnProperty')).toBe('hasOwnProperty');
    expect(loaded.get('__proto__')).toEqual({ polluted: true });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('reads inherited names as absent and keeps a __proto__ key through regenerate and rebase', async () => {
    const { manager } = setup();
    const session = await manager.load({});
    for (const key of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      expect(session.get(key)).toBeUndefined();
      expect(session.has(key)).toBe(false);
    }
    session.set('__proto__', { a: 1 });
    session.set('plain', 1);
    expect(session.keys().sort()).toEqual(['__proto__', 'plain']);
    expect(Object.getPrototypeOf(session.toJSON())).toBe(Object.prototype);
    await session.regenerate({ keep: ['__proto__'] });
    expect(session.keys()).toEqual(['__proto__']);
    await session.regenerate({ keep: true });
    expect(session.get('__proto__')).toEqual({ a: 1 });
    const cookie = cookiePair((await manager.commit(session)).setCookie);

    const first = await manager.load({ cookie });
    const second = await manager.load({ cookie });
    first.set('x', 1);
    await manager.commit(first);
    second.set('__proto__', { a: 2 });
    await manager.commit(second);
    const merged = await manager.load({ cookie });
    expect(merged.keys().sort()).toEqual(['__proto__', 'x']);
    expect(merged.get('__proto__')).toEqual({ a: 2 });
    expect(merged.get('x')).toBe(1);
    expect(({} as Record<string, unknown>).a).toBeUndefined();
  });

  it('refuses values that are not JSON and sessions over maxDataBytes', async () => {
    const { manager } = setup({ maxDataBytes: 1024 });
    const a = await manager.load({});
    a.set('n', 10n);
    await expect(manager.commit(a)).rejects.toMatchObject({ code: 'INVALID_DATA' });
    const b = await manager.load({});
    b.set('big', 'x'.repeat(2000));
    await expect(manager.commit(b)).rejects.toMatchObject({ code: 'DATA_TOO_LARGE' });
  });

  it('reloads from the store, dropping unsaved changes', async () => {
    const { manager } = setup();
    const { cookie } = await login(manager, { user: 'alice' });
    const session = await manager.load({ cookie });
    session.set('user', 'mallory');
    await session.reload();
    expect(session.get('user')).toBe('alice');
  });
});

describe('events', () => {
  it('report the lifecycle and never carry a session ID', async () => {
    const { manager, clock } = setup();
    const seen: string[] = [];
    for (const name of ['created', 'regenerated', 'destroyed', 'expired', 'rejected'] as const) {
      manager.on(name, (payload) => seen.push(`${name}:${JSON.stringify(payload)}`));
    }
    const { cookie } = await login(manager);
    const s = await manager.load({ cookie });
    await s.regenerate({ keep: true });
    const next = cookiePair((await manager.commit(s)).setCookie);
    await manager.load({ cookie: cookie.slice(0, -3) + 'abc' });
    clock.advance(HOUR);
    await manager.load({ cookie: next });
    const t = await login(manager);
    await (await manager.load({ cookie: t.cookie })).destroy();
    expect(seen.map((line) => line.split(':')[0])).toEqual([
      'created',
      'regenerated',
      'created',
      'rejected',
      'rejected',
      'created',
      'destroyed',
    ]);
    expect(seen[4]).toContain('"reason":"unknown"');
    const text = seen.join('\n');
    // The events name sessions by their handle (the store key, from which no ID can be had).
    for (const c of [cookie, next, t.cookie]) expect(text).not.toContain(rawIdOf(c));
  });
});
