import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SECRET_COMMAND } from '../src/manager-options.js';
import { DEADLINE_COOKIE } from '../examples/demo/app.js';
import { deviceName } from '../examples/demo/device.js';
import { bundleOnce } from './support/bundle.js';
import { SECRET } from './support/fixtures.js';
import {
  Browser as DemoBrowser,
  CHROME_LINUX,
  FIREFOX_WINDOWS,
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

let demo: RunningDemo;
beforeAll(async () => {
  demo = await serveDemo();
});
afterAll(() => demo.close());

const call = (path: string, init: CallInit = {}) => request(demo.base, path, init);
const signIn = (username?: string, password?: string, agent?: string) =>
  signInAt(demo.base, username, password, agent);

/** A browser on the demo. */
class Browser extends DemoBrowser {
  constructor(agent = CHROME_LINUX) {
    super(demo.base, agent);
  }
}

describe('the demo', () => {
  // Each test starts once every earlier session has expired, so it sees only its own.
  beforeEach(() => demo.clock.advance(12 * 60 * MINUTE + 1));

  it('shows the login form to a visitor, and stores nothing for it', async () => {
    const response = await call('/');
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain('<form method="post" action="/login">');
    expect(noticeOf(html)).toBeUndefined();
    expect(response.headers.getSetCookie()).toEqual([]);
  });

  it('signs in with a form: a new session, a redirect home, and a welcome page', async () => {
    const response = await call('/login', {
      body: 'username=bob&password=builder',
      headers: FORM,
    });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/');
    const cookie = response.headers.getSetCookie()[0]!.split(';')[0]!;
    const home = await call('/', { cookie });
    const html = await home.text();
    expect(html).toContain('Welcome, bob');
    expect(html).toContain('Sign out');
    expect(home.headers.get('cache-control')).toBe('no-store');
  });

  it('refuses a wrong password with 401, for forms and JSON alike', async () => {
    expect((await call('/login', { json: { username: 'alice', password: 'nope' } })).status).toBe(
      401,
    );
    expect((await call('/login', { json: { username: 'mallory', password: '' } })).status).toBe(
      401,
    );
    const form = await call('/login', {
      body: 'username=alice&password=wrong',
      headers: FORM,
    });
    expect(form.status).toBe(401);
    expect(await form.text()).toContain('Wrong username or password');
    expect(form.headers.getSetCookie()).toEqual([]);
  });

  it('keeps the username in the form after a wrong password, escaped, and focuses the password', async () => {
    const html = await (
      await call('/login', { body: 'username=alice&password=wrong', headers: FORM })
    ).text();
    expect(html).toMatch(/<p class="notice problem" role="alert" data-notice="wrong-password">/);
    expect(html).toContain(
      '<input name="username" value="alice" autocomplete="username" required>',
    );
    expect(html).toMatch(/<input name="password"[^>]* autofocus>/);

    const hostile = await (
      await call('/login', {
        body: new URLSearchParams({ username: '"><script>x</script>', password: 'p' }).toString(),
        headers: FORM,
      })
    ).text();
    expect(hostile).toContain('value="&#34;&#62;&#60;script&#62;x&#60;/script&#62;"');
    expect(hostile).not.toContain('<script>x');
  });

  it('answers /api/me with the user, prefs and the session times, or 401', async () => {
    expect((await call('/api/me')).status).toBe(401);
    const cookie = await signIn();
    const me = await (await call('/api/me', { cookie })).json();
    expect(me.user).toBe('alice');
    expect(me.prefs).toEqual({});
    expect(me.session.createdAt).toBe(demo.clock.now());
    expect(me.session.expiresAt).toBe(demo.clock.now() + 30 * MINUTE);
    expect(me.session.absoluteExpiresAt).toBe(demo.clock.now() + 12 * 60 * MINUTE);
  });

  it('shows what the browser holds, what the server holds, and when the session ends', async () => {
    const browser = new Browser();
    const html = await browser.signIn();
    const sid = browser.cookies.get('sid')!;

    const holds = html.slice(html.indexOf('id="browser-holds"'), html.indexOf('id="server-holds"'));
    expect(holds).toContain('<code>sid</code>');
    expect(holds).toContain('opaque 256-bit ID and its signature');
    for (const attribute of ['Path=/', 'HttpOnly', 'SameSite=Lax'])
      expect(holds).toContain(`<code>${attribute}</code>`);
    expect(holds).not.toContain('Secure</code>');
    // Neither the ID nor its signature reaches the page.
    for (const part of sid.split('.')) expect(html).not.toContain(part);

    const server = html.slice(html.indexOf('id="server-holds"'), html.indexOf('id="deadlines"'));
    expect(server).toContain('<dt>User</dt><dd>alice</dd>');
    expect(server).toMatch(/<dt>Signed in<\/dt><dd><time [^>]*>now<\/time>/);

    expect(html).toContain(
      `<strong class="countdown" data-remaining-ms="${30 * MINUTE}">in 30 minutes</strong>`,
    );
    expect(html).toContain(
      `<strong class="countdown" data-remaining-ms="${12 * 60 * MINUTE}">in 12 hours</strong>`,
    );
    expect(html).toContain('<script src="/static/countdown.js" defer></script>');
    expect(html).not.toMatch(/<script>|<style>| style="/);

    demo.clock.advance(3 * MINUTE);
    const later = await browser.page('/');
    expect(later).toMatch(/<dt>Signed in<\/dt><dd><time [^>]*>3 minutes ago<\/time>/);
    // The page saved its touch first: the idle deadline shown is the one now stored.
    expect(later).toContain(`data-remaining-ms="${30 * MINUTE}">in 30 minutes`);
    expect(later).toContain(`data-remaining-ms="${(12 * 60 - 3) * MINUTE}"`);
  });

  it('sends a strict Content-Security-Policy and serves the countdown script from its origin', async () => {
    const page = await call('/');
    const policy = page.headers.get('content-security-policy')!;
    expect(policy).toContain("script-src 'self'");
    expect(policy).toContain("style-src 'self'");
    expect(policy).not.toContain('unsafe-inline');
    // The page's script calls the JSON API of its own origin, and nothing else.
    expect(policy).toContain("connect-src 'self'");
    expect(policy).toContain("default-src 'none'");
    const stepUp = await call('/static/step-up.js');
    expect(stepUp.status).toBe(200);
    expect(stepUp.headers.get('content-type')).toMatch(/^(text|application)\/javascript/);
    expect(await stepUp.text()).toContain('REAUTH_REQUIRED');
    const script = await call('/static/countdown.js');
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/^(text|application)\/javascript/);
    expect(await script.text()).toContain('data-remaining-ms');
    expect(script.headers.getSetCookie()).toEqual([]);
    expect((await call('/static/demo.css')).headers.get('content-type')).toMatch(/^text\/css/);
  });

  it('sets preferences with a plain form, and shows them', async () => {
    const browser = new Browser();
    await browser.signIn();
    const saved = await browser.request('/prefs', { body: 'theme=dark&language=fr' });
    expect(saved.status).toBe(303);
    expect(saved.headers.get('location')).toBe('/?notice=prefs-saved');
    const html = await browser.page('/?notice=prefs-saved');
    expect(noticeOf(html)).toBe('prefs-saved');
    expect(html).toContain('<code>theme</code> = <code>dark</code>');
    expect(html).toContain('<option value="fr" selected>');
    expect(html).toContain('<body data-theme="dark">');
    const { prefs } = await (await browser.request('/api/me')).json();
    expect(prefs).toEqual({ theme: 'dark', language: 'fr' });

    const refused = await browser.request('/prefs', { body: 'bad%20name=x' });
    expect(refused.headers.get('location')).toBe('/?notice=prefs-invalid');
    expect(noticeOf(await browser.page('/?notice=prefs-invalid'))).toBe('prefs-invalid');
    expect((await (await browser.request('/api/me')).json()).prefs).toEqual(prefs);
  });

  it('sends a visitor who posts the preferences form to the sign-in page, storing nothing', async () => {
    const response = await call('/prefs', { body: 'theme=dark', headers: FORM });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/');
    expect(response.headers.getSetCookie()).toEqual([]);
  });

  it('keeps every preference of concurrent updates', async () => {
    const cookie = await signIn();
    const names = Array.from({ length: 25 }, (_, i) => `pref${i}`);
    const responses = await Promise.all(
      names.map((name) => call('/api/prefs', { cookie, json: { [name]: `value-${name}` } })),
    );
    expect(responses.every((r) => r.status === 200)).toBe(true);
    const { prefs } = await (await call('/api/me', { cookie })).json();
    for (const name of names) expect(prefs[name]).toBe(`value-${name}`);
  });

  it('rejects preferences that are not an object of strings', async () => {
    const cookie = await signIn();
    for (const body of [[1, 2], { a: 1 }, { 'bad name': 'x' }, 'text']) {
      expect((await call('/api/prefs', { cookie, json: body })).status).toBe(400);
    }
    expect((await call('/api/prefs', { json: { a: 'b' } })).status).toBe(401);
  });

  it("lists the user's sessions without IDs and revokes the others", async () => {
    const phone = await signIn('alice', 'wonderland', 'Phone');
    const laptop = await signIn('alice', 'wonderland', 'Laptop');
    const listed = await (await call('/api/sessions', { cookie: laptop })).json();
    const agents = listed.sessions.map((s: { userAgent: string }) => s.userAgent);
    expect(agents).toEqual(expect.arrayContaining(['Phone', 'Laptop']));
    expect(listed.sessions.filter((s: { current: boolean }) => s.current)).toHaveLength(1);
    const text = JSON.stringify(listed);
    for (const cookie of [phone, laptop])
      for (const part of cookie.split('=')[1]!.split('.')) expect(text).not.toContain(part);
    const revoked = await (
      await call('/api/sessions/revoke-others', { cookie: laptop, method: 'POST' })
    ).json();
    expect(revoked.revoked).toBeGreaterThanOrEqual(1);
    expect((await call('/api/me', { cookie: phone })).status).toBe(401);
    expect((await call('/api/me', { cookie: laptop })).status).toBe(200);
  });

  it('lists sessions by device, address and relative time, the current one marked', async () => {
    const laptop = new Browser(CHROME_LINUX);
    const desktop = new Browser(FIREFOX_WINDOWS);
    await desktop.signIn('bob', 'builder');
    demo.clock.advance(2 * MINUTE);
    const html = await laptop.signIn('bob', 'builder');
    const table = html.slice(html.indexOf('id="sessions"'));
    const rows = table.split('<tr').slice(2);
    expect(rows[0]).toMatch(/^ class="current">/);
    expect(rows[0]).toContain('<td>Chrome on Linux</td>');
    expect(rows[0]).toContain('<strong>This browser</strong>');
    const firefox = rows.find((row) => row.includes('<td>Firefox on Windows</td>'))!;
    expect(firefox).toContain('<td>127.0.0.1</td>');
    expect(firefox).toMatch(/>2 minutes ago<\/time><\/td>/);
    expect(firefox).toContain('<form method="post" action="/sessions/revoke">');
    expect(table).toContain('action="/sessions/revoke-others"');
  });

  it('revokes one other session with the form, and only a session of the same user', async () => {
    const laptop = new Browser(CHROME_LINUX);
    const desktop = new Browser(FIREFOX_WINDOWS);
    const phone = new Browser(SAFARI_IPHONE);
    for (const browser of [desktop, phone, laptop]) await browser.signIn();
    const firefox = await laptop.handleOf('Firefox on Windows');
    // The page's revoke button carries the handle the list gave.
    const page = await laptop.page('/');
    expect(page).toContain(`name="handle" value="${firefox}"`);

    const intruder = new Browser();
    await intruder.signIn('bob', 'builder');
    const refused = await intruder.request('/sessions/revoke', { body: `handle=${firefox}` });
    expect(refused.headers.get('location')).toBe('/?notice=not-found');
    expect((await desktop.request('/api/me')).status).toBe(200);

    const revoked = await laptop.request('/sessions/revoke', { body: `handle=${firefox}` });
    expect(revoked.status).toBe(303);
    expect(revoked.headers.get('location')).toBe('/?notice=revoked');
    expect(noticeOf(await laptop.page('/?notice=revoked'))).toBe('revoked');
    expect((await desktop.request('/api/me')).status).toBe(401);
    expect((await phone.request('/api/me')).status).toBe(200);
    expect((await laptop.request('/api/me')).status).toBe(200);

    const again = await laptop.request('/sessions/revoke', { body: `handle=${firefox}` });
    expect(again.headers.get('location')).toBe('/?notice=not-found');
    const own = await laptop.request('/sessions/revoke', {
      body: `handle=${await laptop.handleOf('current')}`,
    });
    expect(own.headers.get('location')).toBe('/?notice=current');
    expect((await laptop.request('/api/me')).status).toBe(200);
    for (const junk of ['', 'x'.repeat(500), 'not-a-handle'])
      expect(
        (await laptop.request('/sessions/revoke', { body: `handle=${junk}` })).headers.get(
          'location',
        ),
      ).toBe('/?notice=not-found');
  });

  it('revokes one session through the JSON API', async () => {
    const laptop = new Browser(CHROME_LINUX);
    const phone = new Browser(SAFARI_IPHONE);
    await phone.signIn();
    await laptop.signIn();
    const handle = await laptop.handleOf('Safari on iOS');
    const first = await laptop.request('/api/sessions/revoke', { json: { handle } });
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ revoked: true });
    expect((await laptop.request('/api/sessions/revoke', { json: { handle } })).status).toBe(404);
    expect((await phone.request('/api/me')).status).toBe(401);
  });

  it('revokes every other session with the form', async () => {
    const laptop = new Browser(CHROME_LINUX);
    const phone = new Browser(SAFARI_IPHONE);
    await phone.signIn('bob', 'builder');
    await laptop.signIn('bob', 'builder');
    const response = await laptop.request('/sessions/revoke-others', { body: '' });
    expect(response.headers.get('location')).toBe('/?notice=revoked-others');
    expect((await phone.request('/api/me')).status).toBe(401);
    expect((await laptop.request('/api/me')).status).toBe(200);
  });

  it('says "signed out" after a sign-out, and clears both cookies', async () => {
    const browser = new Browser();
    await browser.signIn();
    expect([...browser.cookies.keys()].sort()).toEqual([DEADLINE_COOKIE, 'sid']);
    const response = await browser.request('/logout', { body: '' });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/?notice=signed-out');
    expect(browser.cookies.size).toBe(0);
    const html = await browser.page('/?notice=signed-out');
    expect(noticeOf(html)).toBe('signed-out');
    expect(html).toContain('You signed out.');
    // The notice is only for a visitor: a signed-in page ignores it.
    const other = new Browser();
    await other.signIn();
    expect(noticeOf(await other.page('/?notice=signed-out'))).toBeUndefined();
  });

  it('says "ended on another device" to a browser whose session was revoked elsewhere', async () => {
    const laptop = new Browser(CHROME_LINUX);
    const phone = new Browser(SAFARI_IPHONE);
    await phone.signIn();
    await laptop.signIn();
    await laptop.request('/api/sessions/revoke', {
      json: { handle: await laptop.handleOf('Safari on iOS') },
    });
    demo.clock.advance(MINUTE);
    const html = await phone.page('/');
    expect(noticeOf(html)).toBe('ended-elsewhere');
    expect(html).toContain('Your session was ended on another device.');
    expect(html).toContain('<form method="post" action="/login"');
    // A form posted from the dead session lands on the same explanation.
    const posted = await phone.request('/prefs', { body: 'theme=dark' });
    expect(posted.headers.get('location')).toBe('/');
    expect(noticeOf(await phone.page('/'))).toBe('ended-elsewhere');
    // Signing in again starts afresh.
    expect(noticeOf(await phone.signIn())).toBeUndefined();
  });

  it('says "expired" to a browser whose session timed out', async () => {
    const browser = new Browser();
    await browser.signIn();
    demo.clock.advance(31 * MINUTE);
    const html = await browser.page('/');
    expect(noticeOf(html)).toBe('expired');
    expect(html).toContain('Your session expired.');

    // After the absolute deadline the browser has dropped the session cookie, and is still told.
    const dropped = new Browser();
    await dropped.signIn();
    demo.clock.advance(13 * 60 * MINUTE);
    dropped.cookies.delete('sid');
    expect(noticeOf(await dropped.page('/'))).toBe('expired');
  });

  it('tells a cookie that was never accepted, or ended without a known deadline, apart', async () => {
    const browser = new Browser();
    await browser.signIn();
    // Another first character of the signature: a value this server never signed.
    browser.cookies.set(
      'sid',
      browser.cookies.get('sid')!.replace(/\.(.)/, (_, c) => (c === 'A' ? '.B' : '.A')),
    );
    expect(noticeOf(await browser.page('/'))).toBe('invalid');

    // A session ended while its browser never loaded the page (so holds no deadline).
    const phone = await signIn('alice', 'wonderland', SAFARI_IPHONE);
    const laptop = await signIn('alice', 'wonderland', CHROME_LINUX);
    await call('/api/sessions/revoke-others', { cookie: laptop, method: 'POST' });
    expect(noticeOf(await (await call('/', { cookie: phone })).text())).toBe('ended');
    expect(noticeOf(await (await call('/?notice=bogus')).text())).toBeUndefined();
  });

  it('logs out: the session is destroyed and the cookie cleared', async () => {
    const cookie = await signIn('bob', 'builder');
    const response = await call('/logout', {
      cookie,
      method: 'POST',
      headers: { accept: 'application/json' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.getSetCookie()[0]).toMatch(/^sid=; Max-Age=0; Path=\//);
    expect((await call('/api/me', { cookie })).status).toBe(401);
  });

  it('expires an idle session on the server', async () => {
    const cookie = await signIn();
    demo.clock.advance(31 * MINUTE);
    expect((await call('/api/me', { cookie })).status).toBe(401);
  });
});

describe('deviceName', () => {
  it.each([
    [CHROME_LINUX, 'Chrome on Linux'],
    [FIREFOX_WINDOWS, 'Firefox on Windows'],
    [SAFARI_IPHONE, 'Safari on iOS'],
    [
      'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
      'Safari on macOS',
    ],
    [
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68',
      'Edge on Windows',
    ],
    [
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0',
      'Opera on Windows',
    ],
    [
      'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36',
      'Chrome on Android',
    ],
    [
      'Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36',
      'Samsung Internet on Android',
    ],
    [
      'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1',
      'Chrome on iOS',
    ],
    [
      'Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
      'Chrome on ChromeOS',
    ],
    [
      'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
      'Firefox on Linux',
    ],
    [
      'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36',
      'Chrome on Linux',
    ],
    ['curl/8.5.0', 'curl'],
    ['node', 'node'],
    ['Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 'Unknown device'],
    ['Mozilla/5.0 (Windows NT 10.0)', 'A browser on Windows'],
    ['', 'Unknown device'],
    [undefined, 'Unknown device'],
    [null, 'Unknown device'],
  ])('names %j as %j', (agent, name) => {
    expect(deviceName(agent)).toBe(name);
  });

  const SYSTEMS = [
    ['Windows NT 10.0; Win64; x64', 'Windows'],
    ['X11; Linux x86_64', 'Linux'],
    ['Macintosh; Intel Mac OS X 10_15_7', 'macOS'],
    ['Linux; Android 14; Pixel 8', 'Android'],
    ['X11; CrOS x86_64 14541.0.0', 'ChromeOS'],
  ] as const;
  const BROWSERS = [
    [
      'Chrome',
      (system: string) =>
        `Mozilla/5.0 (${system}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36`,
    ],
    [
      'Edge',
      (system: string) =>
        `Mozilla/5.0 (${system}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0`,
    ],
    [
      'Opera',
      (system: string) =>
        `Mozilla/5.0 (${system}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 OPR/111.0`,
    ],
    [
      'Firefox',
      (system: string) => `Mozilla/5.0 (${system}; rv:127.0) Gecko/20100101 Firefox/127.0`,
    ],
  ] as const;

  it('names every browser on every system the way browsers build their headers', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SYSTEMS),
        fc.constantFrom(...BROWSERS),
        ([system, os], [browser, header]) => {
          expect(deviceName(header(system))).toBe(`${browser} on ${os}`);
        },
      ),
    );
  });

  it('answers a short, plain name for any input, reading only its start', () => {
    const agent = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 700 }),
      fc
        .array(
          fc.constantFrom(
            'Mozilla/5.0',
            'Chrome/',
            'Edg/',
            'Linux',
            'iPhone',
            ' ',
            ';',
            '(',
            '/',
            'curl',
          ),
          { maxLength: 200 },
        )
        .map((parts) => parts.join('')),
    );
    fc.assert(
      fc.property(agent, (text) => {
        const name = deviceName(text);
        expect(name).toMatch(/^[A-Za-z0-9 ._-]{1,60}$/);
        expect(deviceName(text.slice(0, 512))).toBe(name);
      }),
    );
  });
});

const DEMO = await bundleOnce('examples/demo/server.ts', 'demo');

/** Runs the demo as `npm start` does: its process, what it printed so far, and its exit. */
function runDemo(env: Record<string, string>) {
  const child = spawn(process.execPath, [DEMO], {
    env: { ...process.env, SESSION_SECRET: SECRET, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk) => (output.stdout += chunk));
  child.stderr.on('data', (chunk) => (output.stderr += chunk));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, ...output })),
  );
  return { child, output, exited };
}

function startDemo(env: Record<string, string>) {
  return runDemo(env).exited;
}

describe('the demo start-up', () => {
  it('stops with a clear message for a bad SESSION_STORE', async () => {
    const { code, stderr } = await startDemo({ PORT: '0', SESSION_STORE: 'nosuch://x' });
    expect(code).toBe(1);
    expect(stderr).toContain('SESSION_STORE must start with memory:, sqlite:');
  });

  it('stops on a short SESSION_SECRET, saying how to make one', async () => {
    const { code, stderr } = await startDemo({
      PORT: '0',
      SESSION_STORE: 'memory:',
      SESSION_SECRET: 'short',
    });
    expect(code).toBe(1);
    expect(stderr).toContain('Invalid session configuration: secrets[0]');
    expect(stderr).toContain(`Make one with: ${SECRET_COMMAND}`);
  });

  it('stops with a clear message for an unreachable server', async () => {
    const { code, stderr } = await startDemo({
      PORT: '0',
      SESSION_STORE: 'postgres://postgres@127.0.0.1:1/test',
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /Cannot open the session store: PostgreSQL at postgres:\/\/postgres@127.0.0.1:1\/test is unreachable/,
    );
  });

  it('stops with a one-line message naming the port when the port is taken', async () => {
    const holder = createServer().listen(0);
    await new Promise((resolve) => holder.once('listening', resolve));
    const port = (holder.address() as AddressInfo).port;
    try {
      const { code, stdout, stderr } = await startDemo({
        PORT: String(port),
        SESSION_STORE: 'memory:',
      });
      expect(code).toBe(1);
      expect(stderr.trim().split('\n').at(-1)).toBe(
        `Port ${port} is already in use: stop what holds it, or set PORT to another port.`,
      );
      expect(stdout).not.toContain('Tessera demo on');
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('stops with a clear message for a PORT that is no port', async () => {
    const { code, stderr } = await startDemo({ PORT: 'eighty', SESSION_STORE: 'memory:' });
    expect(code).toBe(1);
    expect(stderr).toContain('PORT must be a port number from 0 to 65535 (got "eighty")');
  });

  it('stops with a clear message for a SESSION_REAUTH_MS that is no duration', async () => {
    for (const value of ['soon', '0', '-5']) {
      const { code, stderr } = await startDemo({
        PORT: '0',
        SESSION_STORE: 'memory:',
        SESSION_REAUTH_MS: value,
      });
      expect(code).toBe(1);
      expect(stderr).toContain(
        `SESSION_REAUTH_MS must be a positive number of milliseconds (got ${JSON.stringify(value)})`,
      );
    }
  });

  it('runs with SESSION_REAUTH_MS and bearer tokens, and logs audit events as JSON lines, never a token', async () => {
    const { child, output, exited } = runDemo({
      PORT: '0',
      SESSION_STORE: 'memory:',
      SESSION_REAUTH_MS: '90000',
    });
    try {
      const base = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', () => {
          const port = /Tessera demo on http:\/\/localhost:(\d+)/.exec(output.stdout)?.[1];
          if (port !== undefined) resolve(`http://127.0.0.1:${port}`);
        });
        void exited.then(({ stderr }) => reject(new Error(`the demo stopped: ${stderr}`)));
      });
      const alice = { username: 'alice', password: 'wonderland' };
      const refused = await request(base, '/login', {
        json: alice,
        headers: { 'sec-fetch-site': 'cross-site', 'user-agent': 'forger' },
      });
      expect(refused.status).toBe(403);
      // A second session, so that the page offers to sign the others out.
      await signInAt(base);
      const issued = await request(base, '/api/token', {
        json: alice,
        headers: { 'user-agent': 'curl/8.5.0' },
      });
      expect(issued.status).toBe(200);
      expect(issued.headers.getSetCookie()).toEqual([]);
      const { token } = await issued.json();
      const bearer = { authorization: `Bearer ${token}` };
      const page = await request(base, '/', { headers: bearer });
      expect(await page.text()).toContain('within the last 90 seconds');
      expect(page.headers.getSetCookie()).toEqual([]);
      expect((await request(base, '/logout', { method: 'POST', headers: bearer })).status).toBe(
        200,
      );

      child.kill('SIGTERM');
      const { code, stdout } = await exited;
      expect(code).toBe(0);
      const lines = stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line));
      expect(lines).toEqual([
        expect.objectContaining({
          event: 'crossOriginRefused',
          reason: 'sec-fetch-site',
          method: 'POST',
          site: 'cross-site',
          userAgent: 'forger',
          handle: null,
        }),
        expect.objectContaining({ event: 'login', reason: 'login', userId: 'alice' }),
        expect.objectContaining({ event: 'login', reason: 'login', userId: 'alice' }),
        expect.objectContaining({ event: 'logout', reason: 'destroy', userId: 'alice' }),
      ]);
      expect(lines[2].handle).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(lines[2].userAgent).toBe('curl/8.5.0');
      expect(lines[3].handle).toBe(lines[2].handle);
      expect(lines[2].time).toMatch(/^\d{4}-\d\d-\d\dT/);
      for (const part of token.split('.')) expect(stdout).not.toContain(part);
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    }
  });
});
