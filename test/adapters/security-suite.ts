/**
 * The shared security suite: cross-origin refusal, the header (bearer) transport and step-up
 * re-authentication, run by every adapter over real HTTP on 127.0.0.1 (security checklist items
 * 27 to 30), plus the sign-in that meets a store failure.
 *
 * An adapter's test file adds these routes to the table of `suite.ts`, each calling
 * `securityRoutes` for its session logic, and calls `defineSecuritySuite` with its harness:
 *
 * - `POST /sensitive` → `requireRecentAuth(RECENT_MS)`, then `{ ok: true }`; the
 *   `REAUTH_REQUIRED` it throws is left to the adapter (and the framework) to answer
 * - `POST /reauth` → `reauthenticate()`; `{ ok: true }`
 * - `POST /token/:user` → `login(user)`, then `{ token: await issueToken() }`
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionManager, type SessionManagerOptions } from '../../src/manager.js';
import type { DefaultSessionData, Session } from '../../src/session.js';
import {
  cookieValue,
  FlakyStore,
  send,
  TEST_SECRET,
  type AdapterHarness,
  type Answer,
  type RunningServer,
} from './harness.js';

type AnySession = Session<DefaultSessionData>;

/** How recent an authentication `POST /sensitive` asks for. */
export const RECENT_MS = 5 * 60_000;

/** The session logic of the security routes; adapters translate requests to these calls. */
export const securityRoutes = {
  sensitive(session: AnySession) {
    session.requireRecentAuth(RECENT_MS);
    return { ok: true };
  },
  async reauth(session: AnySession) {
    await session.reauthenticate();
    return { ok: true };
  },
  async token(session: AnySession, user: string) {
    await session.login(user);
    return { token: await session.issueToken() };
  },
};

const AGENT = 'security-suite/1.0';

/** Registers the security suite for one adapter. */
export function defineSecuritySuite(harness: AdapterHarness): void {
  describe(`security suite: ${harness.name}`, () => {
    const running: RunningServer[] = [];
    afterEach(async () => {
      await Promise.all(running.splice(0).map((server) => server.close()));
    });

    async function setup(options: Partial<SessionManagerOptions> = {}) {
      const clock = { now: 1_700_000_000_000 };
      const store = new FlakyStore(() => clock.now);
      const manager = new SessionManager({
        store,
        secrets: [TEST_SECRET],
        now: () => clock.now,
        ...harness.managerOptions,
        ...options,
      });
      const events: { name: string; payload: any }[] = [];
      for (const name of ['crossOriginRefused', 'reauthRequired', 'login', 'logout'] as const) {
        manager.on(name, (payload) => events.push({ name, payload }));
      }
      const server = await harness.start(manager);
      running.push(server);
      const call = (
        method: 'GET' | 'POST',
        path: string,
        options: { cookie?: string; headers?: Record<string, string> } = {},
      ): Promise<Answer> =>
        send(method, server.url + path, {
          ...options,
          headers: { 'user-agent': AGENT, ...options.headers },
        });
      const loginAs = async (user: string, headers?: Record<string, string>) => {
        const answer = await call('POST', `/login/${user}`, { headers });
        expect(answer.status).toBe(200);
        return cookieValue(answer.setCookies[0]!)!;
      };
      const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
      const host = new URL(server.url).host;
      return { clock, store, manager, server, events, call, loginAs, bearer, host };
    }

    const expectRefused = (answer: Answer) => {
      expect(answer.status).toBe(403);
      expect(answer.json).toMatchObject({ code: 'CROSS_ORIGIN_REFUSED' });
      expect(answer.setCookies).toEqual([]);
      expect(answer.headers.get('cache-control')).toBe('no-store');
    };

    describe('cross-origin protection (checklist 27)', () => {
      it('refuses an unsafe request a browser marks cross-site or same-site, reading nothing', async () => {
        const { call, store, loginAs, events } = await setup();
        const cookie = await loginAs('alice');
        const reads = store.reads.promised + store.reads.atOnce;
        const sizeBefore = store.inner.size;
        for (const site of ['cross-site', 'same-site', 'Cross-Site', 'bogus']) {
          const answer = await call('POST', '/set/a/stolen', {
            cookie,
            headers: { 'sec-fetch-site': site },
          });
          expectRefused(answer);
        }
        // No load, no save: the store was not even read.
        expect(store.reads.promised + store.reads.atOnce).toBe(reads);
        expect(store.inner.size).toBe(sizeBefore);
        expect((await call('GET', '/get/a', { cookie })).json).toEqual({ value: null });
        const refused = events.filter((event) => event.name === 'crossOriginRefused');
        expect(refused).toHaveLength(4);
        expect(refused[0]!.payload).toMatchObject({
          reason: 'sec-fetch-site',
          method: 'POST',
          site: 'cross-site',
          handle: null,
          userId: null,
          userAgent: AGENT,
        });
        if (harness.knowsClientIp !== false) {
          expect(refused[0]!.payload.ip).toMatch(/127\.0\.0\.1$/);
        }
      });

      it('refuses a cross-site sign-in (login CSRF): no session, no cookie', async () => {
        const { call, store } = await setup();
        const answer = await call('POST', '/login/mallory', {
          headers: { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
        });
        expectRefused(answer);
        expect(store.inner.size).toBe(0);
      });

      it('allows same-origin, user-initiated and safe requests', async () => {
        const { call } = await setup();
        for (const site of ['same-origin', 'none']) {
          const answer = await call('POST', '/set/a/1', { headers: { 'sec-fetch-site': site } });
          expect(answer.status).toBe(200);
          expect(answer.setCookies).toHaveLength(1);
        }
        const read = await call('GET', '/get/a', {
          headers: { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
        });
        expect(read.status).toBe(200);
      });

      it('without Sec-Fetch-Site, compares Origin with Host; a request with neither passes', async () => {
        const { call, host } = await setup();
        const same = await call('POST', '/set/a/1', { headers: { origin: `http://${host}` } });
        expect(same.status).toBe(200);
        for (const origin of ['https://evil.example', 'null', 'http://127.0.0.1:1', 'nonsense']) {
          expectRefused(await call('POST', '/set/a/1', { headers: { origin } }));
        }
        const neither = await call('POST', '/set/a/1');
        expect(neither.status).toBe(200);
      });

      it('allows trusted origins and bypassed paths, and can be turned off', async () => {
        const trusted = await setup({
          crossOrigin: { trustedOrigins: ['https://app.example'], bypass: ['/set/hook'] },
        });
        const fromTrusted = await trusted.call('POST', '/set/a/1', {
          headers: { 'sec-fetch-site': 'cross-site', origin: 'https://app.example' },
        });
        expect(fromTrusted.status).toBe(200);
        const hook = await trusted.call('POST', '/set/hook/1', {
          headers: { 'sec-fetch-site': 'cross-site', origin: 'https://payments.example' },
        });
        expect(hook.status).toBe(200);
        expectRefused(
          await trusted.call('POST', '/set/hookx/1', {
            headers: { 'sec-fetch-site': 'cross-site' },
          }),
        );

        const off = await setup({ crossOrigin: false });
        const anything = await off.call('POST', '/set/a/1', {
          headers: { 'sec-fetch-site': 'cross-site' },
        });
        expect(anything.status).toBe(200);
      });
    });

    describe('header transport (checklist 29)', () => {
      const transport = { headerTransport: true } as const;

      it('hands out a token without a cookie; the token is a session, and no Set-Cookie follows', async () => {
        const { call, bearer, manager, events, store } = await setup(transport);
        const issued = await call('POST', '/token/alice');
        expect(issued.status).toBe(200);
        expect(issued.setCookies).toEqual([]);
        const token = issued.json.token as string;
        expect(token).toMatch(/^[\w-]{43}\.[\w-]{43}$/);
        expect(issued.headers.get('session-token')).toBe(token);
        expect(issued.headers.get('cache-control')).toBe('no-store');
        expect(events.map((event) => event.name)).toEqual(['login']);

        const who = await call('GET', '/whoami', { headers: bearer(token) });
        expect(who.json).toEqual({ user: 'alice', isNew: false });
        const write = await call('POST', '/set/k/v', { headers: bearer(token) });
        expect(write.status).toBe(200);
        expect(write.setCookies).toEqual([]);
        expect((await call('GET', '/get/k', { headers: bearer(token) })).json).toEqual({
          value: 'v',
        });
        // Hashed at rest, and revocable, like a cookie's session.
        const id = token.split('.')[0]!;
        expect(store.inner.get(id)).toBeNull();
        expect(store.inner.get(createHash('sha256').update(id).digest('base64url'))).not.toBeNull();
        expect(await manager.revokeUserSessions('alice')).toBe(1);
        expect((await call('GET', '/whoami', { headers: bearer(token) })).json).toEqual({
          user: null,
          isNew: true,
        });
      });

      it('is exempt from cross-origin refusal, and never falls back to the cookie', async () => {
        const { call, bearer, loginAs } = await setup(transport);
        const token = (await call('POST', '/token/alice')).json.token as string;
        const crossSite = { 'sec-fetch-site': 'cross-site', origin: 'https://api-client.example' };
        const write = await call('POST', '/set/k/v', {
          headers: { ...crossSite, ...bearer(token) },
        });
        expect(write.status).toBe(200);
        expect(write.setCookies).toEqual([]);

        // A victim's cookie beside a bogus header: the header decides, so the cookie is unused.
        const victim = await loginAs('victim');
        const forged = await call('GET', '/whoami', {
          cookie: victim,
          headers: bearer('forged.token'),
        });
        expect(forged.json).toEqual({ user: null, isNew: true });
        // Another Authorization scheme is not the transport: the cookie and the check apply.
        expectRefused(
          await call('POST', '/set/k/v', {
            cookie: victim,
            headers: { ...crossSite, authorization: 'Basic dXNlcjpwYXNz' },
          }),
        );
      });

      it('answers a tampered or unknown token with a fresh session, and ends one at logout', async () => {
        const { call, bearer, clock } = await setup({ ...transport, idleTimeout: 60_000 });
        const token = (await call('POST', '/token/bob')).json.token as string;
        const tampered = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
        expect((await call('GET', '/whoami', { headers: bearer(tampered) })).json.user).toBeNull();
        const logout = await call('POST', '/logout', { headers: bearer(token) });
        expect(logout.status).toBe(200);
        expect(logout.setCookies).toEqual([]);
        expect((await call('GET', '/whoami', { headers: bearer(token) })).json.user).toBeNull();

        const other = (await call('POST', '/token/bob')).json.token as string;
        clock.now += 60_001;
        expect((await call('GET', '/whoami', { headers: bearer(other) })).json.user).toBeNull();
      });

      it('sends the new token in Session-Token when a bearer request logs in again', async () => {
        const { call, bearer } = await setup(transport);
        const first = (await call('POST', '/token/carol')).json.token as string;
        const again = await call('POST', '/login/carol', { headers: bearer(first) });
        expect(again.status).toBe(200);
        expect(again.setCookies).toEqual([]);
        const next = again.headers.get('session-token')!;
        expect(next).toMatch(/^[\w-]{43}\.[\w-]{43}$/);
        expect(next).not.toBe(first);
        expect((await call('GET', '/whoami', { headers: bearer(next) })).json.user).toBe('carol');
        expect((await call('GET', '/whoami', { headers: bearer(first) })).json.user).toBeNull();
      });

      it('reads no header unless the transport is configured', async () => {
        const { call, loginAs } = await setup();
        const cookie = await loginAs('dave');
        const who = await call('GET', '/whoami', {
          cookie,
          headers: { authorization: `Bearer ${cookie}` },
        });
        expect(who.json.user).toBe('dave');
        const token = await call('POST', '/token/dave');
        expect(token.status).toBe(500);
      });
    });

    describe('step-up re-authentication (checklist 28)', () => {
      it('answers 401 REAUTH_REQUIRED once the login is older than asked, until reauthenticate()', async () => {
        const { call, loginAs, clock, events } = await setup();
        const cookie = await loginAs('erin');
        expect((await call('POST', '/sensitive', { cookie })).json).toEqual({ ok: true });
        clock.now += RECENT_MS + 1;
        const stale = await call('POST', '/sensitive', { cookie });
        expect(stale.status).toBe(401);
        expect(stale.json).toMatchObject({ code: 'REAUTH_REQUIRED' });
        expect(events.find((event) => event.name === 'reauthRequired')?.payload).toMatchObject({
          reason: 'stale',
          userId: 'erin',
          maxAgeMs: RECENT_MS,
          userAgent: AGENT,
        });

        const reauth = await call('POST', '/reauth', { cookie });
        expect(reauth.status).toBe(200);
        expect(reauth.setCookies).toHaveLength(1);
        const fresh = cookieValue(reauth.setCookies[0]!)!;
        expect(fresh).not.toBe(cookie);
        expect((await call('POST', '/sensitive', { cookie: fresh })).json).toEqual({ ok: true });
        // The old ID died with the re-authentication.
        expect((await call('GET', '/whoami', { cookie })).json.user).toBeNull();
        expect(events.at(-1)).toMatchObject({
          name: 'login',
          payload: { reason: 'reauthenticate', userId: 'erin' },
        });
      });

      it('refuses an anonymous request, and re-authenticates a bearer session in its header', async () => {
        const { call, bearer, clock } = await setup({ headerTransport: true });
        const anonymous = await call('POST', '/sensitive');
        expect(anonymous.status).toBe(401);
        expect(anonymous.json).toMatchObject({ code: 'REAUTH_REQUIRED' });

        const token = (await call('POST', '/token/frank')).json.token as string;
        clock.now += RECENT_MS + 1;
        expect((await call('POST', '/sensitive', { headers: bearer(token) })).status).toBe(401);
        const reauth = await call('POST', '/reauth', { headers: bearer(token) });
        expect(reauth.setCookies).toEqual([]);
        const next = reauth.headers.get('session-token')!;
        expect(next).not.toBe(token);
        expect((await call('POST', '/sensitive', { headers: bearer(next) })).status).toBe(200);
        expect((await call('GET', '/whoami', { headers: bearer(token) })).json.user).toBeNull();
      });
    });

    it('keeps the signed-in session when a sign-in meets a store failure (503)', async () => {
      const { call, store, loginAs } = await setup();
      const cookie = await loginAs('gina');
      expect((await call('POST', '/set/cart/3', { cookie })).status).toBe(200);
      store.failing.add('create');
      const failed = await call('POST', '/login/gina', { cookie });
      expect(failed.status).toBe(503);
      expect(failed.setCookies).toEqual([]);
      store.failing.clear();
      expect((await call('GET', '/whoami', { cookie })).json).toEqual({
        user: 'gina',
        isNew: false,
      });
      expect((await call('GET', '/get/cart', { cookie })).json).toEqual({ value: '3' });
    });
  });
}
