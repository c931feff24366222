import { spawn } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/index.js';
import { MemoryStore } from '../src/stores/memory.js';
import { createDemoApp } from '../examples/demo/app.js';
import { FakeClock, SECRET } from './support/fixtures.js';

const clock = new FakeClock();
let server: Server;
let base: string;

beforeAll(async () => {
  const manager = new SessionManager({
    store: new MemoryStore({ now: clock.now }),
    secrets: [SECRET],
    now: clock.now,
  });
  server = createDemoApp(manager).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise((resolve) => server.close(resolve)));

const call = (path: string, init: RequestInit & { cookie?: string; json?: unknown } = {}) =>
  fetch(base + path, {
    method: init.method ?? (init.json !== undefined || init.body !== undefined ? 'POST' : 'GET'),
    redirect: 'manual',
    body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
    headers: {
      ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(init.cookie ? { cookie: init.cookie } : {}),
      ...(init.headers as object),
    },
  });

async function signIn(
  username = 'alice',
  password = 'wonderland',
  agent = 'test-agent',
): Promise<string> {
  const response = await call('/login', {
    json: { username, password },
    headers: { 'user-agent': agent },
  });
  expect(response.status).toBe(200);
  return response.headers.getSetCookie()[0]!.split(';')[0]!;
}

describe('the demo', () => {
  it('shows the login form to a visitor, and stores nothing for it', async () => {
    const response = await call('/');
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('<form method="post" action="/login">');
    expect(response.headers.getSetCookie()).toEqual([]);
  });

  it('signs in with a form: a new session, a redirect home, and a welcome page', async () => {
    const response = await call('/login', {
      body: 'username=bob&password=builder',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
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
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(401);
    expect(await form.text()).toContain('Wrong username or password');
    expect(form.headers.getSetCookie()).toEqual([]);
  });

  it('answers /api/me with the user, prefs and the session times, or 401', async () => {
    expect((await call('/api/me')).status).toBe(401);
    const cookie = await signIn();
    const me = await (await call('/api/me', { cookie })).json();
    expect(me.user).toBe('alice');
    expect(me.prefs).toEqual({});
    expect(me.session.createdAt).toBe(clock.now());
    expect(me.session.expiresAt).toBe(clock.now() + 30 * 60_000);
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
      expect(text).not.toContain(cookie.split('=')[1]!.split('.')[0]);
    const revoked = await (
      await call('/api/sessions/revoke-others', { cookie: laptop, method: 'POST' })
    ).json();
    expect(revoked.revoked).toBeGreaterThanOrEqual(1);
    expect((await call('/api/me', { cookie: phone })).status).toBe(401);
    expect((await call('/api/me', { cookie: laptop })).status).toBe(200);
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
    clock.advance(31 * 60_000);
    expect((await call('/api/me', { cookie })).status).toBe(401);
  });
});

describe('the demo start-up', () => {
  it('stops with a clear message for a bad SESSION_STORE', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/demo/server.ts'], {
      env: { ...process.env, PORT: '0', SESSION_STORE: 'nosuch://x', SESSION_SECRET: SECRET },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toContain('SESSION_STORE must start with memory:, sqlite:');
  });

  it('stops with a clear message for an unreachable server', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/demo/server.ts'], {
      env: {
        ...process.env,
        PORT: '0',
        SESSION_STORE: 'postgres://postgres@127.0.0.1:1/test',
        SESSION_SECRET: SECRET,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /Cannot open the session store: PostgreSQL at postgres:\/\/postgres@127.0.0.1:1\/test is unreachable/,
    );
  });
});
