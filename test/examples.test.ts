/**
 * The runnable examples (examples/express, fastify, koa, hono, fetch), each started on a free
 * port and walked through over real HTTP with a small cookie jar: a wrong password, signing in,
 * the guarded page and JSON route, signing out, and the old cookie replayed.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as expressExample from '../examples/express/server.js';
import * as fastifyExample from '../examples/fastify/server.js';
import * as koaExample from '../examples/koa/server.js';
import * as honoExample from '../examples/hono/server.js';
import * as fetchExample from '../examples/fetch/server.js';
import { serveFetch } from './adapters/serve-fetch.js';
import type { RunningServer } from './adapters/suite.js';
import { FakeClock } from './support/fixtures.js';

function listen(listener: RequestListener): Promise<RunningServer> {
  return new Promise((resolve) => {
    const server: Server = createServer(listener);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}

const clock = new FakeClock();

const EXAMPLES: { name: string; start: () => Promise<RunningServer> }[] = [
  {
    name: 'express',
    start: () => listen(expressExample.createApp(expressExample.createManager(clock.now))),
  },
  {
    name: 'fastify',
    start: async () => {
      const app = await fastifyExample.createApp(fastifyExample.createManager(clock.now));
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
    },
  },
  {
    name: 'koa',
    start: () => listen(koaExample.createApp(koaExample.createManager(clock.now)).callback()),
  },
  {
    name: 'hono',
    start: () => serveFetch(honoExample.createApp(honoExample.createManager(clock.now)).fetch),
  },
  {
    name: 'fetch',
    start: () => serveFetch(fetchExample.createHandler(fetchExample.createManager(clock.now))),
  },
];

/** A browser's view of one site: a cookie jar, and redirects followed by hand through it. */
class Browser {
  readonly cookies = new Map<string, string>();

  constructor(readonly base: string) {}

  /** One request, no redirect followed; the jar takes the response's cookies. */
  async send(
    method: string,
    path: string,
    options: { form?: Record<string, string>; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    if (this.cookies.size > 0) {
      headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    }
    let body: string | undefined;
    if (options.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(options.form).toString();
    }
    const response = await fetch(this.base + path, { method, headers, body, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const name = pair!.slice(0, pair!.indexOf('=')).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a));
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, pair!.slice(pair!.indexOf('=') + 1));
    }
    return response;
  }

  /** A request, then the redirects it leads to (as GETs); answers the last page and the hops. */
  async go(
    method: string,
    path: string,
    form?: Record<string, string>,
  ): Promise<{ status: number; text: string; hops: string[] }> {
    let response = await this.send(method, path, { form });
    const hops: string[] = [];
    while (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location')!;
      hops.push(`${response.status} ${location}`);
      await response.body?.cancel();
      response = await this.send('GET', location);
    }
    return { status: response.status, text: await response.text(), hops };
  }
}

const flashOf = (html: string) =>
  [...html.matchAll(/<p class="flash ([^"]*)">([^<]*)<\/p>/g)].map((m) => `${m[1]}: ${m[2]}`);

describe.each(EXAMPLES)('the $name example', ({ start }) => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await start();
  });
  afterAll(() => server.close());

  it('gives a visitor the sign-in form and no cookie; guarded routes redirect or answer 401', async () => {
    const browser = new Browser(server.url);
    const home = await browser.send('GET', '/');
    expect(home.status).toBe(200);
    expect(home.headers.get('set-cookie')).toBeNull();
    expect(await home.text()).toContain('<form method="post" action="/login">');

    const account = await browser.send('GET', '/account');
    expect(account.status).toBe(303);
    expect(account.headers.get('location')).toBe('/');
    const me = await browser.send('GET', '/api/me');
    expect(me.status).toBe(401);
    expect(await me.json()).toEqual({ error: 'sign in first' });
    expect(browser.cookies.size).toBe(0);
  });

  it('shows "Wrong password" once after a failed sign-in', async () => {
    const browser = new Browser(server.url);
    const failed = await browser.go('POST', '/login', {
      username: expressExample.DEMO_USER,
      password: 'not the password',
    });
    expect(failed.hops).toEqual(['303 /']);
    expect(flashOf(failed.text)).toEqual(['error: Wrong password']);
    expect(failed.text).toContain('action="/login"');
    const again = await browser.go('GET', '/');
    expect(flashOf(again.text)).toEqual([]);
    expect((await browser.send('GET', '/api/me')).status).toBe(401);
  });

  it('signs in on a new session ID, shows "Signed in" once, and opens the guarded routes', async () => {
    const browser = new Browser(server.url);
    await browser.go('POST', '/login', { username: 'alice', password: 'wrong' });
    const beforeLogin = browser.cookies.get('sid');
    expect(beforeLogin).toBeDefined();

    const signedIn = await browser.go('POST', '/login', {
      username: expressExample.DEMO_USER,
      password: expressExample.DEMO_PASSWORD,
    });
    expect(signedIn.hops).toEqual(['303 /']);
    expect(flashOf(signedIn.text)).toEqual(['info: Signed in']);
    expect(signedIn.text).toContain('Signed in as alice');
    expect(browser.cookies.get('sid')).not.toBe(beforeLogin);

    const again = await browser.go('GET', '/');
    expect(flashOf(again.text)).toEqual([]);
    expect(again.text).toContain('Signed in as alice');

    const account = await browser.go('GET', '/account');
    expect(account).toMatchObject({ status: 200, hops: [] });
    expect(account.text).toContain('Account of alice');
    const me = await browser.send('GET', '/api/me');
    expect(me.status).toBe(200);
    expect(await me.json()).toEqual({ user: 'alice', username: 'alice' });
  });

  it('signs out with "Signed out" shown on the next page; the old cookie gets nothing', async () => {
    const browser = new Browser(server.url);
    await browser.go('POST', '/login', { username: 'alice', password: 'wonderland' });
    const signedInCookie = browser.cookies.get('sid')!;

    const signedOut = await browser.go('POST', '/logout', {}); // a browser's empty form
    expect(signedOut.hops).toEqual(['303 /']);
    expect(flashOf(signedOut.text)).toEqual(['info: Signed out']);
    expect(signedOut.text).toContain('action="/login"');
    expect(browser.cookies.get('sid')).not.toBe(signedInCookie);
    expect(flashOf((await browser.go('GET', '/')).text)).toEqual([]);
    expect((await browser.send('GET', '/account')).status).toBe(303);

    const replay = new Browser(server.url);
    replay.cookies.set('sid', signedInCookie);
    expect((await replay.send('GET', '/api/me')).status).toBe(401);
    expect((await replay.send('GET', '/account')).headers.get('location')).toBe('/');
    const home = await replay.go('GET', '/');
    expect(home.text).not.toContain('Signed in as');
    expect(flashOf(home.text)).toEqual([]);
  });

  it('refuses a sign-in form posted from another site', async () => {
    const browser = new Browser(server.url);
    const response = await browser.send('POST', '/login', {
      form: { username: 'alice', password: 'wonderland' },
      headers: { 'sec-fetch-site': 'cross-site' },
    });
    expect(response.status).toBe(403);
    expect(browser.cookies.size).toBe(0);
  });
});
