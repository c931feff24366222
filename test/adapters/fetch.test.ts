import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, afterEach } from 'vitest';
import { loadSession, sessionErrorResponse, withSession } from '../../src/adapters/fetch.js';
import { webCryptoProvider } from '../../src/crypto.js';
import { SessionManager } from '../../src/manager.js';
import type { DefaultSessionData, Session } from '../../src/session.js';
import { serveFetch } from './serve-fetch.js';
import { defineSecuritySuite, securityRoutes } from './security-suite.js';
import {
  cookieValue,
  defineAdapterSuite,
  FlakyStore,
  routes,
  TEST_SECRET,
  webChunks,
  type RunningServer,
} from './suite.js';

const json = (value: unknown) => Response.json(value);

async function route(request: Request, session: Session<DefaultSessionData>): Promise<Response> {
  const [, action, a = '', b = ''] = new URL(request.url).pathname.split('/');
  switch (`${request.method} ${action}`) {
    case 'GET get':
      return json(routes.get(session, a));
    case 'POST set':
      return json(routes.set(session, a, b));
    case 'POST login':
      return json(await routes.login(session, a));
    case 'POST logout':
      return json(await routes.logout(session));
    case 'GET whoami':
      return json(routes.whoami(session));
    case 'POST sensitive':
      return json(securityRoutes.sensitive(session));
    case 'POST reauth':
      return json(await securityRoutes.reauth(session));
    case 'POST token':
      return json(await securityRoutes.token(session, a));
    case 'POST stream':
      routes.stream(session);
      return new Response(webChunks(), { headers: { 'content-type': 'text/plain' } });
    case 'POST early':
      return new Response(routes.early(session), { headers: { 'content-type': 'text/plain' } });
    default:
      return new Response('not found', { status: 404 });
  }
}

/** The handler as a Fetch app; the bridge hands it @hono/node-server's bindings. */
type Bindings = { incoming: { socket: { remoteAddress?: string } } };

function handler(manager: SessionManager) {
  return withSession<DefaultSessionData, [Bindings]>(manager, route, {
    clientIp: (_request, env) => env.incoming.socket.remoteAddress,
  });
}

defineAdapterSuite({ name: 'fetch', start: (manager) => serveFetch(handler(manager)) });
defineSecuritySuite({ name: 'fetch', start: (manager) => serveFetch(handler(manager)) });

defineAdapterSuite({
  name: 'fetch on Web Crypto alone',
  start: (manager) => serveFetch(handler(manager)),
  managerOptions: { crypto: webCryptoProvider() },
});

describe('fetch adapter', () => {
  const servers: RunningServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  it('runs on a manager given Web Crypto only', async () => {
    const store = new FlakyStore(Date.now);
    const manager = new SessionManager({
      store,
      secrets: [TEST_SECRET],
      crypto: webCryptoProvider(),
    });
    const server = await serveFetch(handler(manager));
    servers.push(server);
    const created = await fetch(`${server.url}/set/a/1`, { method: 'POST' });
    const cookie = cookieValue(created.headers.getSetCookie()[0]!);
    expect(cookie).toBeTruthy();
    const read = await fetch(`${server.url}/get/a`, { headers: { cookie: `sid=${cookie}` } });
    expect(await read.json()).toEqual({ value: '1' });
    const login = await fetch(`${server.url}/login/erin`, {
      method: 'POST',
      headers: { cookie: `sid=${cookie}` },
    });
    expect(cookieValue(login.headers.getSetCookie()[0]!)).not.toBe(cookie);
  });

  it('works without a server: Request in, Response out', async () => {
    const manager = new SessionManager({
      store: new FlakyStore(Date.now),
      secrets: [TEST_SECRET],
      crypto: webCryptoProvider(),
    });
    const first = await loadSession(manager, new Request('https://app.example/'));
    first.session.set('k', 'v');
    const response = await first.finish(Response.redirect('https://app.example/next', 303));
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('https://app.example/next');
    const [line] = response.headers.getSetCookie();
    expect(line).toMatch(/^__Host-sid=.+; .*Secure/);
    expect(response.headers.get('cache-control')).toBe('no-store');

    const second = await loadSession(
      manager,
      new Request('https://app.example/', { headers: { cookie: line!.split(';')[0]! } }),
    );
    expect(second.session.get('k')).toBe('v');
    // A session holding data keeps the response out of shared caches, even with no cookie to set.
    const kept = await second.finish(new Response('same'));
    expect(kept.headers.get('cache-control')).toBe('no-store');
    expect(kept.headers.getSetCookie()).toEqual([]);
    const third = await loadSession(manager, new Request('https://app.example/'));
    const untouched = new Response('same');
    expect(await third.finish(untouched)).toBe(untouched);
  });

  it('answers the error response when the store fails at save', async () => {
    const store = new FlakyStore(Date.now);
    const manager = new SessionManager({ store, secrets: [TEST_SECRET] });
    const loaded = await loadSession(manager, new Request('http://app.example/'));
    loaded.session.set('k', 'v');
    store.failing.add('create');
    const response = await loaded.finish(new Response('body'));
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('1');
    expect(response.headers.getSetCookie()).toEqual([]);
  });

  it('loads no node: module, directly or through its value imports', () => {
    const seen = new Set<string>();
    const external: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      for (const match of source.matchAll(
        /^\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s+'([^']+)'/gm,
      )) {
        const specifier = match[1]!;
        if (specifier.startsWith('.'))
          visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
        else external.push(specifier);
      }
      expect(source).not.toMatch(/import\(\s*'node:/);
    };
    const here = dirname(fileURLToPath(import.meta.url));
    visit(resolve(here, '../../src/adapters/fetch.ts'));
    visit(resolve(here, '../../src/adapters/hono.ts'));
    expect(external.filter((name) => name.startsWith('node:'))).toEqual([]);
    expect([...seen].length).toBeGreaterThan(2);
  });

  it('answers 500 for an error that is not a store failure', () => {
    expect(sessionErrorResponse(new Error('x')).status).toBe(500);
  });
});
