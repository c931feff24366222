/**
 * The synchronizer-token suite every adapter runs over real HTTP on 127.0.0.1, each against its
 * own server, manager (`csrfTokens: true`) and store.
 *
 * An adapter implements this route table with `csrfRoutes`, parsing url-encoded forms the way an
 * application on its framework does (before the session layer where the framework leaves that
 * to the application):
 *
 * - `GET /form` → `{ token }`, a fresh token of the session
 * - `POST /submit` → stores the form field `note` (`null` without one); `{ ok: true, note }`
 * - `POST /login/:user` → `login(user)`; `{ token }`, a token of the new session
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SessionManager } from '../../src/manager.js';
import type { DefaultSessionData, Session } from '../../src/session.js';
import { cookieValue, FlakyStore, TEST_SECRET, type RunningServer } from './suite.js';

/** How the suite starts an adapter. */
export interface CsrfHarness {
  /** The framework's name, for test titles. */
  name: string;
  /** Starts a server implementing the route table with the given manager, on an ephemeral port. */
  start(manager: SessionManager): Promise<RunningServer>;
  /** Whether the adapter reads the field of a multipart form itself. @defaultValue false */
  multipart?: boolean;
}

type AnySession = Session<DefaultSessionData>;

/** The session logic of each route; adapters translate requests to these calls. */
export const csrfRoutes = {
  form(session: AnySession) {
    return { token: session.csrfToken() };
  },
  submit(session: AnySession, note: unknown) {
    const value = typeof note === 'string' ? note : null;
    session.set('note', value);
    return { ok: true, note: value };
  },
  async login(session: AnySession, user: string) {
    await session.login(user);
    return { token: session.csrfToken() };
  },
};

interface Answer {
  status: number;
  body: string;
  json: any;
  setCookies: string[];
}

const FORBIDDEN = 'Forbidden: missing or invalid CSRF token\n';

/** Registers the suite for one adapter. */
export function defineCsrfSuite(harness: CsrfHarness): void {
  describe(`synchronizer tokens: ${harness.name}`, () => {
    const running: RunningServer[] = [];

    afterEach(async () => {
      await Promise.all(running.splice(0).map((server) => server.close()));
    });

    async function setup() {
      const store = new FlakyStore(Date.now);
      const manager = new SessionManager({ store, secrets: [TEST_SECRET], csrfTokens: true });
      const server = await harness.start(manager);
      running.push(server);

      async function call(
        method: 'GET' | 'POST',
        path: string,
        options: { cookie?: string; headers?: Record<string, string>; body?: BodyInit } = {},
      ): Promise<Answer> {
        const headers: Record<string, string> = { ...options.headers };
        if (options.cookie !== undefined) headers.cookie = `sid=${options.cookie}`;
        const response = await fetch(server.url + path, { method, headers, body: options.body });
        const body = await response.text();
        let json: any;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        return { status: response.status, body, json, setCookies: response.headers.getSetCookie() };
      }

      /** Posts a url-encoded form to `/submit`. */
      function post(cookie: string | undefined, fields: Record<string, string>, path = '/submit') {
        return call('POST', path, {
          cookie,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(fields).toString(),
        });
      }

      /** A new session's cookie and a token of it, as a page with a form gives them. */
      async function page(): Promise<{ cookie: string; token: string }> {
        const answer = await call('GET', '/form');
        expect(answer.status).toBe(200);
        expect(answer.setCookies).toHaveLength(1);
        return { cookie: cookieValue(answer.setCookies[0]!)!, token: answer.json.token };
      }

      /** Another token of the session of `cookie`. */
      async function tokenOf(cookie: string): Promise<string> {
        const answer = await call('GET', '/form', { cookie });
        expect(answer.status).toBe(200);
        return answer.json.token;
      }

      /** Expects a refusal: 403, the plain body, no cookie, and nothing saved. */
      async function expectRefused(answer: Promise<Answer>): Promise<void> {
        const writes = store.saves.promised + store.creates.promised;
        const { status, body, setCookies } = await answer;
        expect(status).toBe(403);
        expect(body).toBe(FORBIDDEN);
        expect(setCookies).toEqual([]);
        expect(store.saves.promised + store.creates.promised).toBe(writes);
      }

      return { call, post, page, tokenOf, expectRefused };
    }

    it('lets a form with a valid token through, its body still readable by the handler', async () => {
      const { post, page } = await setup();
      const { cookie, token } = await page();
      const answer = await post(cookie, { _csrf: token, note: 'hello' });
      expect(answer.status).toBe(200);
      expect(answer.json).toEqual({ ok: true, note: 'hello' });
    });

    it('lets a request with the token in its header through', async () => {
      const { call, page } = await setup();
      const { cookie, token } = await page();
      const answer = await call('POST', '/submit', {
        cookie,
        headers: { 'X-CSRF-Token': token, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(answer.status).toBe(200);
      expect(answer.json).toEqual({ ok: true, note: null });
    });

    it('refuses a form without a token, with 403 and nothing run or saved', async () => {
      const { post, page, expectRefused } = await setup();
      const { cookie } = await page();
      await expectRefused(post(cookie, { note: 'forged' }));
      await expectRefused(post(cookie, { _csrf: '', note: 'forged' }));
    });

    it('refuses a request that carries no session at all (login CSRF)', async () => {
      const { post, page, expectRefused } = await setup();
      const { token } = await page();
      await expectRefused(post(undefined, { note: 'forged' }));
      await expectRefused(post(undefined, { _csrf: token }, '/login/mallory'));
    });

    it("refuses another session's token", async () => {
      const { post, page, expectRefused } = await setup();
      const mine = await page();
      const theirs = await page();
      await expectRefused(post(mine.cookie, { _csrf: theirs.token, note: 'forged' }));
    });

    it('refuses a tampered token, in the form or in the header', async () => {
      const { call, post, page, expectRefused } = await setup();
      const { cookie, token } = await page();
      const tampered = token.slice(0, 10) + (token[10] === 'A' ? 'B' : 'A') + token.slice(11);
      await expectRefused(post(cookie, { _csrf: tampered }));
      await expectRefused(post(cookie, { _csrf: token + 'A' }));
      await expectRefused(
        call('POST', '/submit', { cookie, headers: { 'x-csrf-token': tampered } }),
      );
    });

    it('answers a different token at every response, and every one verifies', async () => {
      const { post, page, tokenOf } = await setup();
      const { cookie, token } = await page();
      const tokens = [token, await tokenOf(cookie), await tokenOf(cookie)];
      expect(new Set(tokens).size).toBe(3);
      for (const each of tokens) {
        const answer = await post(cookie, { _csrf: each, note: 'ok' });
        expect(answer.status).toBe(200);
      }
    });

    it('keeps a token valid across requests', async () => {
      const { call, post, page } = await setup();
      const { cookie, token } = await page();
      for (let i = 0; i < 3; i++) {
        expect((await post(cookie, { _csrf: token, note: `n${i}` })).status).toBe(200);
        expect((await call('GET', '/form', { cookie })).status).toBe(200);
      }
    });

    it('invalidates tokens issued before a login; the new session gets working ones', async () => {
      const { post, page, expectRefused } = await setup();
      const { cookie, token } = await page();
      const login = await post(cookie, { _csrf: token }, '/login/alice');
      expect(login.status).toBe(200);
      const signedIn = cookieValue(login.setCookies[0]!)!;
      expect(signedIn).not.toBe(cookie);
      await expectRefused(post(signedIn, { _csrf: token, note: 'stale' }));
      const answer = await post(signedIn, { _csrf: login.json.token, note: 'fresh' });
      expect(answer.status).toBe(200);
      expect(answer.json.note).toBe('fresh');
    });

    // Express, Koa, Fastify and node:http read what the application's parser left; these tests
    // parse url-encoded forms only, so multipart runs where the adapter reads the form itself.
    if (harness.multipart === true) {
      it('reads the field of a multipart form too', async () => {
        const { call, page, expectRefused } = await setup();
        const { cookie, token } = await page();
        const form = new FormData();
        form.set('_csrf', token);
        form.set('note', 'multipart');
        const answer = await call('POST', '/submit', { cookie, body: form });
        expect(answer.status).toBe(200);
        expect(answer.json).toEqual({ ok: true, note: 'multipart' });
        const forged = new FormData();
        forged.set('note', 'forged');
        await expectRefused(call('POST', '/submit', { cookie, body: forged }));
      });
    }
  });
}
