import { connect } from 'node:net';
import { Hono } from 'hono';
import { stream } from 'hono/streaming';
import { afterEach, describe, expect, it } from 'vitest';
import { session, type SessionEnv } from '../../src/adapters/hono.js';
import { SessionManager } from '../../src/manager.js';
import {
  defineAdapterSuite,
  FlakyStore,
  routes,
  STREAM_CHUNKS,
  TEST_SECRET,
  type RunningServer,
} from './suite.js';
import { serveFetch } from './serve-fetch.js';
import { defineSecuritySuite, securityRoutes } from './security-suite.js';

function app(manager: SessionManager): Hono<SessionEnv> {
  const hono = new Hono<SessionEnv>();
  hono.onError((_error, c) => c.text('handler failed', 500));
  hono.use(session(manager));
  hono.get('/get/:key', (c) => c.json(routes.get(c.get('session'), c.req.param('key'))));
  hono.post('/set/:key/:value', (c) =>
    c.json(routes.set(c.get('session'), c.req.param('key'), c.req.param('value'))),
  );
  hono.post('/login/:user', async (c) =>
    c.json(await routes.login(c.get('session'), c.req.param('user'))),
  );
  hono.post('/logout', async (c) => c.json(await routes.logout(c.get('session'))));
  hono.get('/whoami', (c) => c.json(routes.whoami(c.get('session'))));
  hono.post('/sensitive', (c) => c.json(securityRoutes.sensitive(c.get('session'))));
  hono.post('/reauth', async (c) => c.json(await securityRoutes.reauth(c.get('session'))));
  hono.post('/token/:user', async (c) =>
    c.json(await securityRoutes.token(c.get('session'), c.req.param('user'))),
  );
  hono.post('/stream', (c) => {
    routes.stream(c.get('session'));
    c.header('Content-Type', 'text/plain');
    return stream(c, async (out) => {
      for (const chunk of STREAM_CHUNKS) {
        await out.sleep(1);
        await out.write(chunk);
      }
    });
  });
  hono.post('/early', (c) => c.text(routes.early(c.get('session'))));
  hono.post('/fail', (c) => {
    c.get('session').set('failed', 'yes');
    throw new Error('boom');
  });
  hono.post('/decorated', (c) => {
    c.get('session').set('decorated', 'yes');
    c.header('X-Route', 'decorated');
    c.header('Set-Cookie', 'other=1; Path=/');
    return c.text('decorated');
  });
  hono.get('/redirect', (c) => {
    c.get('session').set('redirected', 'yes');
    return Response.redirect('http://127.0.0.1/elsewhere', 302);
  });
  return hono;
}

defineAdapterSuite({ name: 'hono', start: (manager) => serveFetch(app(manager).fetch) });
defineSecuritySuite({ name: 'hono', start: (manager) => serveFetch(app(manager).fetch) });

describe('hono middleware', () => {
  const servers: RunningServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  async function start() {
    const store = new FlakyStore(Date.now);
    const manager = new SessionManager({ store, secrets: [TEST_SECRET] });
    const server = await serveFetch(app(manager).fetch);
    servers.push(server);
    return { store, server };
  }

  it('saves the session with the response of app.onError', async () => {
    const { server } = await start();
    const answer = await fetch(`${server.url}/fail`, { method: 'POST' });
    expect(answer.status).toBe(500);
    expect(answer.headers.getSetCookie()).toHaveLength(1);
  });

  it("replaces the handler's response and all its headers when the session cannot be saved", async () => {
    const { server, store } = await start();
    store.failing.add('create');
    const answer = await fetch(`${server.url}/decorated`, { method: 'POST' });
    expect(answer.status).toBe(503);
    expect(answer.headers.get('x-route')).toBeNull();
    expect(answer.headers.getSetCookie()).toEqual([]);
    expect(await answer.text()).not.toContain('decorated');
  });

  it('takes HTTPS from the socket, not from an absolute-form request target', async () => {
    const { server } = await start();
    const { port } = new URL(server.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(
          'POST https://app.example/set/a/1 HTTP/1.1\r\nHost: app.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
        );
      });
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    const head = raw.split('\r\n\r\n')[0]!;
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    const setCookie = head.split('\r\n').find((line) => /^set-cookie:/i.test(line));
    expect(setCookie).toMatch(/^set-cookie: sid=/i);
    expect(setCookie).not.toMatch(/secure/i);
  });

  it('adds the cookie to a response whose headers are immutable', async () => {
    const { server } = await start();
    const answer = await fetch(`${server.url}/redirect`, { redirect: 'manual' });
    expect(answer.status).toBe(302);
    expect(answer.headers.get('location')).toBe('http://127.0.0.1/elsewhere');
    expect(answer.headers.getSetCookie()).toHaveLength(1);
  });
});
