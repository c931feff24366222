import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  Cookie,
  MemoryStore,
  Session,
  Store,
  type SessionData,
} from '../../src/compat/express-session/index.js';
import { SessionError } from '../../src/errors.js';
import { manualClock } from './helpers.js';

type Memory = InstanceType<typeof MemoryStore>;

const call = <T>(run: (cb: (err: unknown, value?: T) => void) => void) =>
  new Promise<T | undefined>((resolve, reject) =>
    run((err, value) => (err ? reject(err) : resolve(value))),
  );

/** Session data as a store holds it: the cookie as a plain object, as JSON gives it back. */
const sessionWith = (data: Record<string, unknown>, expires: Date | null = null): SessionData =>
  ({
    cookie: { originalMaxAge: null, expires, httpOnly: true, path: '/' },
    ...data,
  }) as unknown as SessionData;

describe('Cookie', () => {
  it('has express-session defaults', () => {
    const cookie = new Cookie();
    expect(cookie.path).toBe('/');
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.maxAge).toBeNull();
    expect(cookie.expires).toBeNull();
    expect(cookie.originalMaxAge).toBeNull();
    expect(cookie.serialize('name', 'va lue')).toBe('name=va%20lue; Path=/; HttpOnly');
  });

  it('keeps maxAge, expires and originalMaxAge in step', () => {
    const cookie = new Cookie({ maxAge: 60_000 });
    expect(cookie.originalMaxAge).toBe(60_000);
    expect(cookie.expires).toBeInstanceOf(Date);
    const remaining = cookie.maxAge!;
    expect(remaining).toBeGreaterThan(59_000);
    expect(remaining).toBeLessThanOrEqual(60_000);
    cookie.expires = null;
    expect(cookie.maxAge).toBeNull();
    expect(cookie.originalMaxAge).toBeNull();
  });

  it('takes the last of expires and maxAge given, and rejects bad values', () => {
    const at = new Date(Date.now() + 10_000);
    expect(new Cookie({ maxAge: 60_000, expires: at }).expires).toBe(at);
    expect(() => new Cookie('x' as never)).toThrow(/argument options must be a object/);
    expect(() => new Cookie({ maxAge: '42' as never })).toThrow(/maxAge must be a number or Date/);
  });

  it('serializes every attribute, and JSON is its data', () => {
    const cookie = new Cookie({
      domain: 'example.test',
      path: '/app',
      secure: true,
      sameSite: 'lax',
      partitioned: true,
      priority: 'low',
      expires: new Date(0),
    });
    expect(cookie.serialize('sid', 'v')).toBe(
      'sid=v; Domain=example.test; Path=/app; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; Partitioned; Priority=Low; SameSite=Lax',
    );
    expect(JSON.parse(JSON.stringify(cookie))).toEqual({
      originalMaxAge: cookie.originalMaxAge,
      partitioned: true,
      priority: 'low',
      expires: '1970-01-01T00:00:00.000Z',
      secure: true,
      httpOnly: true,
      domain: 'example.test',
      path: '/app',
      sameSite: 'lax',
    });
  });

  it('refuses an invalid expiry, or a name or domain the serializer rejects', () => {
    expect(() => new Cookie({ expires: new Date(NaN) }).serialize('a', 'b')).toThrow(
      'option expires is invalid',
    );
    expect(() => new Cookie({ domain: 'bad;domain' }).serialize('a', 'b')).toThrow(TypeError);
    expect(() => new Cookie().serialize('bad name', 'b')).toThrow(TypeError);
  });

  it('ignores __proto__ in options read back from a store', () => {
    const cookie = new Cookie(JSON.parse('{"__proto__":{"polluted":true},"path":"/x"}'));
    expect(Object.getPrototypeOf(cookie)).toBe(Cookie.prototype);
    expect(cookie.path).toBe('/x');
  });
});

describe('Session', () => {
  it('copies data but not reserved names, and keeps methods and id non-enumerable', () => {
    const req = { sessionID: 'abc' } as never;
    const session = new Session(req, { a: 1, id: 'forged', save: 'x', regenerate: 2, b: { c: 3 } });
    expect(session.id).toBe('abc');
    expect(Object.keys(session).sort()).toEqual(['a', 'b']);
    expect(typeof session.save).toBe('function');
    expect(() => {
      (session as { id: string }).id = 'changed';
    }).toThrow(TypeError);
  });
});

describe('Store', () => {
  it('is callable on an existing object and extends EventEmitter', () => {
    const target = Object.create(Store.prototype) as InstanceType<typeof Store>;
    Store.call(target);
    expect(target).toBeInstanceOf(EventEmitter);
    expect(target.listenerCount('x')).toBe(0);
    expect(typeof target.regenerate).toBe('function');
    expect(typeof target.load).toBe('function');
    expect(typeof target.createSession).toBe('function');
  });

  it('createSession turns stored data into a Session with a Cookie, keeping originalMaxAge', () => {
    const store = new MemoryStore({ sweepInterval: 0 });
    const req = { sessionID: 'sid-1' } as Parameters<typeof store.createSession>[0];
    const expires = new Date(Date.now() + 5_000);
    const session = store.createSession(req, {
      cookie: { originalMaxAge: 60_000, expires: expires.toISOString(), path: '/', httpOnly: true },
      views: 3,
    } as unknown as SessionData);
    expect(req.session).toBe(session);
    expect(session.cookie).toBeInstanceOf(Cookie);
    expect(session.cookie.expires).toEqual(expires);
    expect(session.cookie.originalMaxAge).toBe(60_000);
    expect(session.views).toBe(3);
  });

  it('generate() outside the middleware says so', () => {
    const store = new MemoryStore({ sweepInterval: 0 });
    expect(() => store.generate({} as never)).toThrow(/session middleware/);
  });
});

describe('MemoryStore', () => {
  it('answers all() as an object keyed by session ID, and length()', async () => {
    const store = new MemoryStore({ sweepInterval: 0 });
    await call((cb) => store.set('one', sessionWith({ n: 1 }), cb));
    await call((cb) => store.set('two', sessionWith({ n: 2 }), cb));
    const all = (await call<Record<string, SessionData>>((cb) => store.all(cb)))!;
    expect(Object.keys(all).sort()).toEqual(['one', 'two']);
    expect(all.one).toMatchObject({ n: 1 });
    expect(await call<number>((cb) => store.length(cb))).toBe(2);
    await call((cb) => store.clear(cb));
    expect(await call<number>((cb) => store.length(cb))).toBe(0);
  });

  it('expires sessions on its clock, by cookie.expires', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now, sweepInterval: 0 });
    await call((cb) => store.set('s', sessionWith({ n: 1 }, new Date(clock.now() + 1_000)), cb));
    await call((cb) => store.set('forever', sessionWith({ n: 2 }), cb));
    expect(await call((cb) => store.get('s', cb))).toMatchObject({ n: 1 });
    clock.advance(1_000);
    expect(await call((cb) => store.get('s', cb))).toBeUndefined();
    expect(await call((cb) => store.get('forever', cb))).toMatchObject({ n: 2 });
  });

  it('touch() moves the stored cookie of a live session only', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now, sweepInterval: 0 });
    const later = new Date(clock.now() + 10_000);
    await call((cb) => store.set('s', sessionWith({ n: 1 }, new Date(clock.now() + 1_000)), cb));
    await call((cb) => store.touch('s', sessionWith({ n: 'ignored' }, later), cb));
    await call((cb) => store.touch('missing', sessionWith({}, later), cb));
    clock.advance(5_000);
    expect(await call((cb) => store.get('s', cb))).toMatchObject({
      n: 1,
      cookie: { expires: later.toISOString() },
    });
    expect(await call((cb) => store.get('missing', cb))).toBeUndefined();
  });

  it('is bounded: the least recently used session goes first', async () => {
    const store: Memory = new MemoryStore({ maxSessions: 3, sweepInterval: 0 });
    for (const sid of ['a', 'b', 'c']) await call((cb) => store.set(sid, sessionWith({ sid }), cb));
    await call((cb) => store.get('a', cb));
    await call((cb) => store.set('d', sessionWith({ sid: 'd' }), cb));
    const all = (await call<Record<string, SessionData>>((cb) => store.all(cb)))!;
    expect(Object.keys(all).sort()).toEqual(['a', 'c', 'd']);
  });

  it('stays bounded under a flood of new sessions', async () => {
    const store: Memory = new MemoryStore({ maxSessions: 500, sweepInterval: 0 });
    for (let i = 0; i < 20_000; i++) store.set(`s${i}`, sessionWith({}));
    expect(await call<number>((cb) => store.length(cb))).toBe(500);
  });

  it('prunes expired sessions and reports how many', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now, sweepInterval: 0 });
    store.set('old', sessionWith({}, new Date(clock.now() + 10)));
    store.set('new', sessionWith({}, new Date(clock.now() + 10_000)));
    store.set('bad', sessionWith({}, 'not a date' as never));
    clock.advance(100);
    expect(store.prune()).toBe(2);
    expect(await call<number>((cb) => store.length(cb))).toBe(1);
  });

  it('is callable on an existing object, like express-session stores are', () => {
    const target = Object.create(MemoryStore.prototype) as Memory;
    MemoryStore.call(target, { sweepInterval: 0 });
    target.set('x', sessionWith({}));
    expect(target).toBeInstanceOf(Store);
    target.close();
  });

  it('rejects bad options with a typed error', () => {
    expect(() => new MemoryStore({ maxSessions: 0 })).toThrow(SessionError);
    expect(() => new MemoryStore({ sweepInterval: -1 })).toThrow(SessionError);
  });
});
