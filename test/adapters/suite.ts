/**
 * The shared adapter suite: every framework adapter runs the same behaviour checks over real
 * HTTP on 127.0.0.1, each against its own server, manager, store and clock.
 *
 * An adapter's test file implements this route table on its framework (using `routes` for the
 * session logic, so every adapter does exactly the same thing) and calls `defineAdapterSuite`:
 *
 * - `GET /get/:key` → `{ value }` (`null` when absent)
 * - `POST /set/:key/:value` → `{ ok: true }`
 * - `POST /login/:user` → regenerate, then setUser; `{ user }`
 * - `POST /logout` → destroy; `{ ok: true }`
 * - `GET /whoami` → `{ user, isNew }`
 * - `POST /stream` → sets `streamed`, then answers `STREAM_CHUNKS` as a streamed body
 * - `POST /early` → sets `early`, answers `early` (text), and lets its promise settle only after
 *   the response has been sent where the framework allows a handler to send before returning
 *   (node:http, Express, Koa with `ctx.respond = false`, Fastify); Hono and Fetch handlers
 *   answer by returning, so there it is an ordinary early return.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SessionManager, type SessionManagerOptions } from '../../src/manager.js';
import type { DefaultSessionData, Session } from '../../src/session.js';
import {
  cookieAttributes,
  cookieValue,
  FlakyStore,
  send,
  STREAM_CHUNKS,
  TEST_SECRET,
  type AdapterHarness,
  type Answer,
  type RunningServer,
} from './harness.js';

export * from './harness.js';

type AnySession = Session<DefaultSessionData>;

/** The session logic of each route; adapters translate requests to these calls. */
export const routes = {
  get(session: AnySession, key: string) {
    return { value: session.get(key) ?? null };
  },
  set(session: AnySession, key: string, value: string) {
    session.set(key, value);
    return { ok: true };
  },
  async login(session: AnySession, user: string) {
    await session.regenerate();
    session.setUser(user);
    return { user };
  },
  async logout(session: AnySession) {
    await session.destroy();
    return { ok: true };
  },
  whoami(session: AnySession) {
    return { user: session.userId, isNew: session.isNew };
  },
  stream(session: AnySession) {
    session.set('streamed', 'yes');
  },
  early(session: AnySession) {
    session.set('early', 'yes');
    return 'early';
  },
};

const MINUTE = 60_000;

/**
 * Registers the whole suite for one adapter.
 */
export function defineAdapterSuite(harness: AdapterHarness): void {
  describe(`adapter suite: ${harness.name}`, () => {
    const running: RunningServer[] = [];

    afterEach(async () => {
      await Promise.all(running.splice(0).map((server) => server.close()));
    });

    async function setup(
      options: Partial<SessionManagerOptions> = {},
      storeOptions: { synchronous?: boolean } = {},
    ) {
      const clock = { now: 1_700_000_000_000 };
      const store = new FlakyStore(() => clock.now, storeOptions);
      const manager = new SessionManager({
        store,
        secrets: [TEST_SECRET],
        now: () => clock.now,
        ...harness.managerOptions,
        ...options,
      });
      const server = await harness.start(manager);
      running.push(server);

      const call = (
        method: 'GET' | 'POST',
        path: string,
        options: { cookie?: string | undefined; headers?: Record<string, string> } = {},
      ): Promise<Answer> => send(method, server.url + path, options);

      /** Stores `a=1` in a new session and answers its cookie value. */
      async function newSession(): Promise<string> {
        const answer = await call('POST', '/set/a/1');
        expect(answer.status).toBe(200);
        expect(answer.setCookies).toHaveLength(1);
        return cookieValue(answer.setCookies[0]!)!;
      }

      const advance = (ms: number) => {
        clock.now += ms;
      };
      return { clock, store, manager, server, call, newSession, advance };
    }

    it('creates a session with a safe cookie and no-store', async () => {
      const { call } = await setup();
      const answer = await call('POST', '/set/a/1');
      expect(answer.status).toBe(200);
      expect(answer.json).toEqual({ ok: true });
      expect(answer.setCookies).toHaveLength(1);
      const line = answer.setCookies[0]!;
      expect(cookieValue(line)).toMatch(/^[\w.~%-]{40,}$/);
      const attributes = cookieAttributes(line);
      expect(attributes.has('httponly')).toBe(true);
      expect(attributes.get('samesite')?.toLowerCase()).toBe('lax');
      expect(attributes.get('path')).toBe('/');
      expect(attributes.has('domain')).toBe(false);
      expect(attributes.has('secure')).toBe(false);
      // A browser-session cookie by default: neither Max-Age nor Expires.
      expect(attributes.has('max-age')).toBe(false);
      expect(attributes.has('expires')).toBe(false);
      expect(answer.headers.get('cache-control')).toBe('no-store');
    });

    it('sets no cookie for a request that stores nothing', async () => {
      const { call, store } = await setup();
      const read = await call('GET', '/get/a');
      expect(read.status).toBe(200);
      expect(read.json).toEqual({ value: null });
      expect(read.setCookies).toEqual([]);
      const who = await call('GET', '/whoami');
      expect(who.json).toEqual({ user: null, isNew: true });
      expect(who.setCookies).toEqual([]);
      expect(store.inner.size).toBe(0);
    });

    it('tracks a session across requests without re-sending the cookie', async () => {
      const { call, newSession } = await setup();
      const cookie = await newSession();
      const second = await call('POST', '/set/b/2', { cookie });
      expect(second.status).toBe(200);
      expect(second.setCookies).toEqual([]);
      expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
      expect((await call('GET', '/get/b', { cookie })).json).toEqual({ value: '2' });
      expect((await call('GET', '/whoami', { cookie })).json).toEqual({ user: null, isNew: false });
    });

    it('regenerates at login: a new cookie value, and the old one is dead', async () => {
      const { call, newSession, manager } = await setup();
      const before = await newSession();
      const login = await call('POST', '/login/alice', { cookie: before });
      expect(login.status).toBe(200);
      expect(login.setCookies).toHaveLength(1);
      const after = cookieValue(login.setCookies[0]!)!;
      expect(after).toBeTruthy();
      expect(after).not.toBe(before);
      expect(login.headers.get('cache-control')).toBe('no-store');

      expect((await call('GET', '/whoami', { cookie: after })).json).toEqual({
        user: 'alice',
        isNew: false,
      });
      expect((await call('GET', '/get/a', { cookie: after })).json).toEqual({ value: null });
      expect((await call('GET', '/whoami', { cookie: before })).json).toEqual({
        user: null,
        isNew: true,
      });
      expect((await call('GET', '/get/a', { cookie: before })).json).toEqual({ value: null });

      expect(await manager.listUserSessions('alice')).toHaveLength(1);
    });

    it('records the user agent and client address of a new session', async () => {
      const { call, manager } = await setup();
      const login = await call('POST', '/login/dave', {
        headers: { 'user-agent': 'suite-agent/1.0' },
      });
      expect(login.status).toBe(200);
      const listed = await manager.listUserSessions('dave');
      expect(listed).toHaveLength(1);
      expect(listed[0]!.userAgent).toBe('suite-agent/1.0');
      if (harness.knowsClientIp !== false) expect(listed[0]!.ip).toMatch(/127\.0\.0\.1$/);
    });

    it('destroys at logout: a clearing cookie with the same Path, and the old cookie is dead', async () => {
      const { call } = await setup();
      const login = await call('POST', '/login/bob');
      const cookie = cookieValue(login.setCookies[0]!)!;
      const logout = await call('POST', '/logout', { cookie });
      expect(logout.status).toBe(200);
      expect(logout.setCookies).toHaveLength(1);
      const line = logout.setCookies[0]!;
      expect(cookieValue(line)).toBe('');
      const attributes = cookieAttributes(line);
      expect(attributes.get('path')).toBe('/');
      expect(attributes.has('httponly')).toBe(true);
      const maxAge = attributes.get('max-age');
      const expires = attributes.get('expires');
      expect(maxAge === '0' || (expires !== undefined && Date.parse(expires) <= Date.now())).toBe(
        true,
      );
      expect((await call('GET', '/whoami', { cookie })).json).toEqual({ user: null, isNew: true });
    });

    it('expires an idle session on the server clock, and activity keeps it alive', async () => {
      const { call, newSession, advance } = await setup({
        idleTimeout: 30 * MINUTE,
        absoluteTimeout: 12 * 60 * MINUTE,
      });
      const cookie = await newSession();
      advance(20 * MINUTE);
      expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
      advance(20 * MINUTE);
      expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
      advance(30 * MINUTE + 1);
      const late = await call('GET', '/get/a', { cookie });
      expect(late.status).toBe(200);
      expect(late.json).toEqual({ value: null });
      expect((await call('GET', '/whoami', { cookie })).json).toEqual({ user: null, isNew: true });
    });

    it('expires a session at the absolute timeout however active it is', async () => {
      const { call, newSession, advance } = await setup({
        idleTimeout: 30 * MINUTE,
        absoluteTimeout: 60 * MINUTE,
      });
      const cookie = await newSession();
      for (let i = 0; i < 2; i++) {
        advance(20 * MINUTE);
        expect((await call('POST', `/set/n${i}/x`, { cookie })).status).toBe(200);
        expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
      }
      advance(20 * MINUTE + 1);
      expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: null });
      expect((await call('GET', '/whoami', { cookie })).json).toEqual({ user: null, isNew: true });
    });

    it('answers a fresh session for a tampered cookie', async () => {
      const { call, newSession } = await setup();
      const cookie = await newSession();
      const last = cookie.at(-1)!;
      const tampered = cookie.slice(0, -1) + (last === 'A' ? 'B' : 'A');
      const read = await call('GET', '/get/a', { cookie: tampered });
      expect(read.status).toBe(200);
      expect(read.json).toEqual({ value: null });
      expect(read.setCookies).toEqual([]);
      const write = await call('POST', '/set/c/3', { cookie: tampered });
      expect(write.status).toBe(200);
      const fresh = cookieValue(write.setCookies[0]!);
      expect(fresh).toBeTruthy();
      expect(fresh).not.toBe(tampered);
      expect(fresh).not.toBe(cookie);
      expect((await call('GET', '/get/a', { cookie: fresh })).json).toEqual({ value: null });
      expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
    });

    for (const synchronous of [false, true]) {
      const read = synchronous ? 'a read answered at once' : 'get';
      it(`answers 503 without a cookie when the store fails at load, in ${read}`, async () => {
        const { call, newSession, store } = await setup({}, { synchronous });
        const cookie = await newSession();
        expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
        store.failing.add('get');
        const answer = await call('GET', '/get/a', { cookie });
        expect(answer.status).toBe(503);
        expect(answer.setCookies).toEqual([]);
        expect(answer.body).not.toMatch(/store|outage|STORE_UNAVAILABLE/i);
        expect(answer.headers.get('cache-control')).toBe('no-store');
        store.failing.clear();
        expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
      });
    }

    it('reads through a store that answers at once', async () => {
      const { call, newSession, store } = await setup({}, { synchronous: true });
      const cookie = await newSession();
      const readsBefore = { ...store.reads };
      expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
      expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
      expect(store.reads.promised - readsBefore.promised).toBe(0);
      expect(store.reads.atOnce - readsBefore.atOnce).toBe(2);
      const unknown = await call('GET', '/get/a', {
        cookie: cookie.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')),
      });
      expect(unknown.status).toBe(200);
      expect(unknown.json).toEqual({ value: null });
    });

    for (const synchronous of [false, true]) {
      const save = synchronous ? 'a create answered at once' : 'create';
      it(`answers 503 without a cookie when a new session cannot be saved, in ${save}`, async () => {
        const { call, store } = await setup({}, { synchronous });
        store.failing.add('create');
        const answer = await call('POST', '/set/a/1');
        expect(answer.status).toBe(503);
        expect(answer.setCookies).toEqual([]);
        expect(answer.json).toBeUndefined();
        expect(answer.body).not.toMatch(/store|outage|STORE_UNAVAILABLE/i);
        expect(store.inner.size).toBe(0);
      });
    }

    it('creates a new session through a store that answers at once, with either crypto provider', async () => {
      const { call, store } = await setup({}, { synchronous: true });
      const before = { ...store.creates };
      const answer = await call('POST', '/set/a/1');
      expect(answer.status).toBe(200);
      expect(answer.setCookies).toHaveLength(1);
      expect(answer.headers.get('cache-control')).toBe('no-store');
      expect(store.creates.promised - before.promised).toBe(0);
      expect(store.creates.atOnce - before.atOnce).toBe(1);
      const cookie = cookieValue(answer.setCookies[0]!);
      expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
    });

    for (const synchronous of [false, true]) {
      const save = synchronous ? 'a save answered at once' : 'update';
      it(`answers 503 without a cookie when an update cannot be saved, in ${save}, and the old cookie still works`, async () => {
        const { call, newSession, store } = await setup({}, { synchronous });
        const cookie = await newSession();
        store.failing.add('update');
        const answer = await call('POST', '/set/b/2', { cookie });
        expect(answer.status).toBe(503);
        expect(answer.setCookies).toEqual([]);
        store.failing.clear();
        expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
        expect((await call('GET', '/get/b', { cookie })).json).toEqual({ value: null });
      });
    }

    it('saves through a store that answers at once', async () => {
      const { call, newSession, store } = await setup({}, { synchronous: true });
      const cookie = await newSession();
      const savesBefore = { ...store.saves };
      const write = await call('POST', '/set/b/2', { cookie });
      expect(write.status).toBe(200);
      expect(write.setCookies).toEqual([]);
      expect(store.saves.promised - savesBefore.promised).toBe(0);
      expect(store.saves.atOnce - savesBefore.atOnce).toBe(1);
      expect((await call('GET', '/get/b', { cookie })).json).toEqual({ value: '2' });
    });

    it('keeps all writes of 30 concurrent requests on one session through a store that answers at once', async () => {
      const { call, newSession } = await setup({}, { synchronous: true });
      const cookie = await newSession();
      const answers = await Promise.all(
        Array.from({ length: 30 }, (_, i) => call('POST', `/set/k${i}/${i}`, { cookie })),
      );
      expect(answers.map((answer) => answer.status)).toEqual(answers.map(() => 200));
      for (let i = 0; i < 30; i++) {
        expect((await call('GET', `/get/k${i}`, { cookie })).json).toEqual({ value: String(i) });
      }
    });

    for (const synchronous of [false, true]) {
      const save = synchronous ? 'a create answered at once' : 'create';
      it(`answers 503 without a cookie or body chunks when a streamed response cannot be saved, in ${save}`, async () => {
        const { call, store } = await setup({}, { synchronous });
        store.failing.add('create');
        const answer = await call('POST', '/stream');
        expect(answer.status).toBe(503);
        expect(answer.setCookies).toEqual([]);
        expect(answer.body).not.toContain('chunk');
      });
    }

    for (const synchronous of [false, true]) {
      const save = synchronous ? 'a create answered at once' : 'create';
      it(`saves the session and sets its cookie before a streamed body, in ${save}`, async () => {
        const { call } = await setup({}, { synchronous });
        const answer = await call('POST', '/stream');
        expect(answer.status).toBe(200);
        expect(answer.body).toBe(STREAM_CHUNKS.join(''));
        expect(answer.setCookies).toHaveLength(1);
        const cookie = cookieValue(answer.setCookies[0]!);
        expect((await call('GET', '/get/streamed', { cookie })).json).toEqual({ value: 'yes' });
      });
    }

    it('saves the session of a response ended before the handler settles', async () => {
      const { call } = await setup();
      const answer = await call('POST', '/early');
      expect(answer.status).toBe(200);
      expect(answer.body).toBe('early');
      expect(answer.setCookies).toHaveLength(1);
      const cookie = cookieValue(answer.setCookies[0]!);
      expect((await call('GET', '/get/early', { cookie })).json).toEqual({ value: 'yes' });
    });

    it('keeps all writes of 30 concurrent requests on one session', async () => {
      const { call, newSession } = await setup();
      const cookie = await newSession();
      const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
      const answers = await Promise.all(
        keys.map((key) => call('POST', `/set/${key}/v-${key}`, { cookie })),
      );
      expect(answers.map((answer) => answer.status)).toEqual(keys.map(() => 200));
      expect(answers.flatMap((answer) => answer.setCookies)).toEqual([]);
      const values = await Promise.all(keys.map((key) => call('GET', `/get/${key}`, { cookie })));
      expect(values.map((answer) => answer.json.value)).toEqual(keys.map((key) => `v-${key}`));
      expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: '1' });
    });

    it('does not let a request racing a logout bring the session back', async () => {
      const { call, store } = await setup();
      const login = await call('POST', '/login/carol');
      const cookie = cookieValue(login.setCookies[0]!)!;
      const gate = store.hold('update');
      const racing = call('POST', '/set/late/1', { cookie });
      await gate.reached;
      const logout = await call('POST', '/logout', { cookie });
      expect(logout.status).toBe(200);
      gate.release();
      const raced = await racing;
      expect(raced.status).toBeLessThan(500);
      expect(raced.setCookies.filter((line) => cookieValue(line) !== '')).toEqual([]);
      expect(store.inner.size).toBe(0);
      expect((await call('GET', '/whoami', { cookie })).json).toEqual({ user: null, isNew: true });
      expect((await call('GET', '/get/late', { cookie })).json).toEqual({ value: null });
    });

    it('believes X-Forwarded-Proto only with trustProxy', async () => {
      const plain = await setup();
      const ignored = await plain.call('POST', '/set/a/1', {
        headers: { 'x-forwarded-proto': 'https' },
      });
      expect(ignored.setCookies).toHaveLength(1);
      expect(cookieValue(ignored.setCookies[0]!)).toBeTruthy();
      expect(cookieAttributes(ignored.setCookies[0]!).has('secure')).toBe(false);

      const proxied = await setup({ trustProxy: true });
      const answer = await proxied.call('POST', '/set/a/1', {
        headers: { 'x-forwarded-proto': 'https' },
      });
      expect(answer.setCookies).toHaveLength(1);
      const line = answer.setCookies[0]!;
      const value = cookieValue(line, '__Host-sid');
      expect(value).toBeTruthy();
      expect(cookieAttributes(line).has('secure')).toBe(true);
      const read = await fetch(`${proxied.server.url}/get/a`, {
        headers: { cookie: `__Host-sid=${value}`, 'x-forwarded-proto': 'https' },
      });
      expect(await read.json()).toEqual({ value: '1' });
    });
  });
}
