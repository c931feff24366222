/**
 * The demo's cross-origin protection, bearer tokens and re-authentication over real HTTP on
 * 127.0.0.1 (issue: "The demo shows all of it"). Pages, preferences and the session list are in
 * test/demo.test.ts; a real browser posting from a second origin is in test/browser.test.ts.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_REAUTH_MS } from '../examples/demo/app.js';
import {
  Browser,
  CHROME_LINUX,
  FORM,
  SAFARI_IPHONE,
  noticeOf,
  request,
  serveDemo,
  signInAt,
  type CallInit,
  type RunningDemo,
} from './support/demo-client.js';

const MINUTE = 60_000;
const REFUSAL = { error: 'Cross-origin request refused', code: 'CROSS_ORIGIN_REFUSED' };
const REAUTH = { error: 'Recent authentication required', code: 'REAUTH_REQUIRED' };
/** A signed session token: the ID and its signature, 43 base64url characters each. */
const TOKEN = /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/;

let demo: RunningDemo;
beforeAll(async () => {
  demo = await serveDemo();
});
afterAll(() => demo.close());
// Each test starts once every earlier session has expired, so it sees only its own.
beforeEach(() => demo.clock.advance(12 * 60 * MINUTE + 1));

const call = (path: string, init: CallInit = {}) => request(demo.base, path, init);
const browser = (agent = CHROME_LINUX) => new Browser(demo.base, agent);
const sessionsOf = (user: string) => demo.manager.listUserSessions(user);

/** A token from `POST /api/token`, for a client with User-Agent `agent`. */
async function tokenFor(username = 'alice', password = 'wonderland', agent = 'curl/8.5.0') {
  const response = await call('/api/token', {
    json: { username, password },
    headers: { 'user-agent': agent },
  });
  expect(response.status).toBe(200);
  expect(response.headers.getSetCookie()).toEqual([]);
  const body = await response.json();
  expect(Object.keys(body)).toEqual(['token']);
  expect(body.token).toMatch(TOKEN);
  return body.token as string;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The token with the first character of its signature changed: one this server never signed. */
function tampered(token: string): string {
  return token.replace(/\.(.)/, (_, c) => (c === 'A' ? '.B' : '.A'));
}

describe('the demo refuses unsafe requests from other origins', () => {
  const UNSAFE = ['POST', 'PUT', 'PATCH', 'DELETE'] as const;
  const FOREIGN: Record<string, Record<string, string>> = {
    'Sec-Fetch-Site: cross-site': { 'sec-fetch-site': 'cross-site' },
    'Sec-Fetch-Site: same-site': { 'sec-fetch-site': 'same-site' },
    'an Origin of another host': { origin: 'http://evil.example' },
    'an Origin of another port': { origin: 'http://127.0.0.1:1' },
    'Origin: null': { origin: 'null' },
  };

  it.each(Object.entries(FOREIGN))(
    'answers 403 to POST, PUT, PATCH and DELETE with %s, and changes nothing',
    async (_, headers) => {
      const laptop = browser(CHROME_LINUX);
      const phone = browser(SAFARI_IPHONE);
      await phone.signIn();
      await laptop.signIn();
      await laptop.request('/prefs', { body: 'theme=light' });
      const before = laptop.cookie;
      const forms = {
        '/prefs': 'theme=dark',
        '/logout': '',
        '/sessions/revoke-others': '',
        '/sessions/revoke': `handle=${await laptop.handleOf('Safari on iOS')}`,
      };
      for (const method of UNSAFE) {
        for (const [path, body] of Object.entries(forms)) {
          const response = await laptop.request(path, { method, body, headers });
          expect(response.status, `${method} ${path}`).toBe(403);
          expect(await response.json()).toEqual(REFUSAL);
          expect(response.headers.getSetCookie()).toEqual([]);
        }
        const json = await laptop.request('/api/prefs', {
          method,
          json: { theme: 'dark' },
          headers,
        });
        expect(json.status).toBe(403);
      }
      expect(laptop.cookie).toBe(before);
      expect((await (await laptop.request('/api/me')).json()).prefs).toEqual({ theme: 'light' });
      expect((await phone.request('/api/me')).status).toBe(200);
    },
  );

  it('refuses a sign-in posted from another site (login CSRF): no session, no cookie', async () => {
    const before = (await sessionsOf('bob')).length;
    const refusedEvents = demo.events.filter(([name]) => name === 'crossOriginRefused').length;
    for (const headers of Object.values(FOREIGN)) {
      const form = await call('/login', {
        body: 'username=bob&password=builder',
        headers: { ...FORM, ...headers },
      });
      expect(form.status).toBe(403);
      expect(await form.json()).toEqual(REFUSAL);
      expect(form.headers.getSetCookie()).toEqual([]);
      const json = await call('/login', {
        json: { username: 'bob', password: 'builder' },
        headers,
      });
      expect(json.status).toBe(403);
      expect(json.headers.getSetCookie()).toEqual([]);
    }
    expect(await sessionsOf('bob')).toHaveLength(before);
    const events = demo.events
      .filter(([name]) => name === 'crossOriginRefused')
      .slice(refusedEvents);
    expect(events).toHaveLength(2 * Object.keys(FOREIGN).length);
    expect(events[0]![1]).toMatchObject({ method: 'POST', site: 'cross-site', handle: null });
  });

  it('lets same-origin posts, posts with neither header, and reads from anywhere through', async () => {
    const allowed: Record<string, string>[] = [
      { 'sec-fetch-site': 'same-origin' },
      { 'sec-fetch-site': 'none' },
      { origin: demo.base },
      {},
    ];
    for (const headers of allowed) {
      const response = await call('/login', {
        json: { username: 'alice', password: 'wonderland' },
        headers,
      });
      expect(response.status).toBe(200);
    }
    const page = await call('/', { headers: { 'sec-fetch-site': 'cross-site' } });
    expect(page.status).toBe(200);
    const me = await call('/api/me', {
      cookie: await signInAt(demo.base),
      headers: { 'sec-fetch-site': 'cross-site' },
    });
    expect(me.status).toBe(200);
  });
});

describe('the demo hands API clients bearer tokens', () => {
  it('answers POST /api/token with a token and no cookie, or 401 for wrong credentials', async () => {
    await tokenFor('bob', 'builder');
    for (const json of [
      { username: 'bob', password: 'wrong' },
      { username: 'mallory', password: '' },
      { username: 'bob' },
      ['bob', 'builder'],
    ]) {
      const refused = await call('/api/token', { json });
      expect(refused.status).toBe(401);
      expect(refused.headers.getSetCookie()).toEqual([]);
    }
  });

  it('reads the session from Authorization: Bearer on /api/*, never setting a cookie', async () => {
    const token = await tokenFor();
    const me = await call('/api/me', { headers: bearer(token) });
    expect(me.status).toBe(200);
    expect((await me.json()).user).toBe('alice');
    const saved = await call('/api/prefs', { json: { theme: 'dark' }, headers: bearer(token) });
    expect(saved.status).toBe(200);
    // A bearer request carries no ambient authority: it is never refused for its origin.
    const foreign = await call('/api/prefs', {
      json: { language: 'fr' },
      headers: { ...bearer(token), 'sec-fetch-site': 'cross-site' },
    });
    expect(foreign.status).toBe(200);
    const after = await (await call('/api/me', { headers: bearer(token) })).json();
    expect(after.prefs).toEqual({ theme: 'dark', language: 'fr' });
    const page = await call('/', { headers: bearer(token) });
    expect(await page.text()).toContain('Welcome, alice');
    for (const response of [me, saved, foreign, page])
      expect(response.headers.getSetCookie()).toEqual([]);
  });

  it('lists a token’s session with its device and address beside the browser’s', async () => {
    await tokenFor('bob', 'builder', 'curl/8.5.0');
    const laptop = browser();
    const html = await laptop.signIn('bob');
    const row = html.split('<tr').find((r) => r.includes('<td>curl</td>'));
    expect(row).toContain('<td>127.0.0.1</td>');
    const { sessions } = await (await laptop.request('/api/sessions')).json();
    expect(sessions.map((s: { device: string }) => s.device).sort()).toEqual([
      'Chrome on Linux',
      'curl',
    ]);
  });

  it('answers 401 to a tampered, unknown or malformed token, never falling back to the cookie', async () => {
    const token = await tokenFor();
    const cookie = await signInAt(demo.base);
    const dead = await tokenFor();
    expect((await call('/logout', { method: 'POST', headers: bearer(dead) })).status).toBe(200);
    for (const value of [
      `Bearer ${tampered(token)}`,
      `Bearer ${dead}`,
      `Bearer ${token.split('.')[0]}`,
      'Bearer ',
      'Bearer a b',
      `Bearer ${token}x`,
    ]) {
      const headers = { authorization: value };
      expect((await call('/api/me', { cookie, headers })).status, value).toBe(401);
      expect((await call('/api/prefs', { json: { a: 'b' }, headers })).status).toBe(401);
      expect((await call('/api/sessions', { headers })).status).toBe(401);
      const logout = await call('/logout', { method: 'POST', cookie, headers });
      expect(logout.status).toBe(401);
      expect(logout.headers.getSetCookie()).toEqual([]);
    }
    // Neither the token nor the cookie was harmed by all that.
    expect((await call('/api/me', { headers: bearer(token) })).status).toBe(200);
    expect((await call('/api/me', { cookie })).status).toBe(200);
  });

  it('ends the token’s session with POST /logout', async () => {
    const token = await tokenFor('bob', 'builder');
    const before = (await sessionsOf('bob')).length;
    const response = await call('/logout', { method: 'POST', headers: bearer(token) });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
    expect(response.headers.getSetCookie()).toEqual([]);
    expect(await sessionsOf('bob')).toHaveLength(before - 1);
    expect((await call('/api/me', { headers: bearer(token) })).status).toBe(401);
    expect((await call('/logout', { method: 'POST', headers: bearer(token) })).status).toBe(401);
  });
});

describe('the demo asks for the password again before signing the other sessions out', () => {
  it(`needs a sign-in at most SESSION_REAUTH_MS old (${DEFAULT_REAUTH_MS} ms by default), else 401 REAUTH_REQUIRED`, async () => {
    const phone = await signInAt(demo.base, 'bob', 'builder', SAFARI_IPHONE);
    const laptop = await signInAt(demo.base, 'bob', 'builder', CHROME_LINUX);
    demo.clock.advance(DEFAULT_REAUTH_MS + 1);
    const reauthEvents = demo.events.filter(([name]) => name === 'reauthRequired').length;
    const refused = await call('/api/sessions/revoke-others', { cookie: laptop, method: 'POST' });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual(REAUTH);
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    expect((await call('/api/me', { cookie: phone })).status).toBe(200);
    const events = demo.events.filter(([name]) => name === 'reauthRequired').slice(reauthEvents);
    expect(events).toEqual([
      ['reauthRequired', expect.objectContaining({ reason: 'stale', userId: 'bob' })],
    ]);

    // Exactly at the limit the sign-in still counts as recent.
    const fresh = await signInAt(demo.base, 'bob', 'builder', CHROME_LINUX);
    demo.clock.advance(DEFAULT_REAUTH_MS);
    const allowed = await call('/api/sessions/revoke-others', { cookie: fresh, method: 'POST' });
    expect(allowed.status).toBe(200);
    expect(await allowed.json()).toEqual({ revoked: 2 });
    expect((await call('/api/me', { cookie: phone })).status).toBe(401);
  });

  it('re-authenticates with POST /api/reauth: 401 for a wrong password, else a new ID that kills the old cookie', async () => {
    const phone = await signInAt(demo.base, 'alice', 'wonderland', SAFARI_IPHONE);
    const laptop = browser();
    await laptop.signIn();
    await laptop.request('/api/prefs', { json: { theme: 'dark' } });
    demo.clock.advance(10 * MINUTE);
    const old = laptop.cookies.get('sid')!;

    for (const json of [{ password: 'wrong' }, { password: 'builder' }, {}, { password: 7 }]) {
      const wrong = await laptop.request('/api/reauth', { json });
      expect(wrong.status).toBe(401);
      expect(wrong.headers.getSetCookie()).toEqual([]);
    }
    expect((await laptop.request('/api/sessions/revoke-others', { method: 'POST' })).status).toBe(
      401,
    );
    expect((await call('/api/reauth', { json: { password: 'wonderland' } })).status).toBe(401);

    const reauth = await laptop.request('/api/reauth', { json: { password: 'wonderland' } });
    expect(reauth.status).toBe(200);
    expect(await reauth.json()).toEqual({ authenticatedAt: demo.clock.now() });
    expect(reauth.headers.getSetCookie()[0]).toMatch(/^sid=[^;]+; Path=\/; HttpOnly; SameSite=Lax/);
    expect(laptop.cookies.get('sid')).not.toBe(old);
    expect((await call('/api/me', { cookie: `sid=${old}` })).status).toBe(401);
    const me = await (await laptop.request('/api/me')).json();
    expect(me.prefs).toEqual({ theme: 'dark' });
    expect(me.session.authenticatedAt).toBe(demo.clock.now());

    const revoked = await laptop.request('/api/sessions/revoke-others', { method: 'POST' });
    expect(await revoked.json()).toEqual({ revoked: 1 });
    expect((await call('/api/me', { cookie: phone })).status).toBe(401);
  });

  it('re-authenticates a token too: the new token comes in Session-Token and the old one dies', async () => {
    const token = await tokenFor('bob', 'builder');
    demo.clock.advance(DEFAULT_REAUTH_MS + 1);
    const refused = await call('/api/sessions/revoke-others', {
      method: 'POST',
      headers: bearer(token),
    });
    expect(await refused.json()).toEqual(REAUTH);
    const reauth = await call('/api/reauth', {
      json: { password: 'builder' },
      headers: bearer(token),
    });
    expect(reauth.status).toBe(200);
    expect(reauth.headers.getSetCookie()).toEqual([]);
    const renewed = reauth.headers.get('session-token')!;
    expect(renewed).toMatch(TOKEN);
    expect((await call('/api/me', { headers: bearer(token) })).status).toBe(401);
    const allowed = await call('/api/sessions/revoke-others', {
      method: 'POST',
      headers: bearer(renewed),
    });
    expect(allowed.status).toBe(200);
  });

  it('without script: the page asks for the password, and the form carries it', async () => {
    const laptop = browser(CHROME_LINUX);
    const phone = browser(SAFARI_IPHONE);
    await phone.signIn('bob');
    const recent = await laptop.signIn('bob');
    // Recent: the button alone, the password field hidden and left out of the form.
    expect(recent).toContain('<label id="reauth" hidden>');
    expect(recent).toMatch(/<input name="password" type="password"[^>]* required disabled>/);
    expect(recent).toContain('within the last 5 minutes');
    expect(recent).toContain('<script src="/static/step-up.js" defer></script>');

    demo.clock.advance(DEFAULT_REAUTH_MS + 1);
    const asked = await laptop.request('/sessions/revoke-others', { body: '' });
    expect(asked.headers.get('location')).toBe('/?notice=reauth-needed');
    const page = await laptop.page('/?notice=reauth-needed');
    expect(noticeOf(page)).toBe('reauth-needed');
    expect(page).toContain('<label id="reauth">');
    expect(page).toMatch(/<input name="password" type="password"[^>]* required>/);
    expect((await phone.request('/api/me')).status).toBe(200);

    const wrong = await laptop.request('/sessions/revoke-others', { body: 'password=nope' });
    expect(wrong.headers.get('location')).toBe('/?notice=reauth-failed');
    expect(noticeOf(await laptop.page('/?notice=reauth-failed'))).toBe('reauth-failed');
    expect((await phone.request('/api/me')).status).toBe(200);

    const old = laptop.cookies.get('sid')!;
    const done = await laptop.request('/sessions/revoke-others', { body: 'password=builder' });
    expect(done.headers.get('location')).toBe('/?notice=revoked-others');
    expect(laptop.cookies.get('sid')).not.toBe(old);
    expect((await call('/api/me', { cookie: `sid=${old}` })).status).toBe(401);
    expect((await phone.request('/api/me')).status).toBe(401);
    const after = await laptop.page('/?notice=revoked-others');
    expect(noticeOf(after)).toBe('revoked-others');
    expect(after.split('<tr').length - 2).toBe(1);
  });
});
