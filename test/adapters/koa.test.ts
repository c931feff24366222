import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import Koa from 'koa';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { session } from '../../src/adapters/koa.js';
import { SessionManager } from '../../src/manager.js';
import {
  defineAdapterSuite,
  FlakyStore,
  nodeChunks,
  routes,
  TEST_SECRET,
  type RunningServer,
} from './suite.js';
import { defineSecuritySuite, securityRoutes } from './security-suite.js';

async function listen(app: Koa): Promise<RunningServer> {
  const server = createServer(app.callback());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function routeTable(app: Koa): void {
  app.use(async (ctx) => {
    const [, action, a = '', b = ''] = ctx.path.split('/');
    const route = `${ctx.method} ${action}`;
    if (route === 'GET get') ctx.body = routes.get(ctx.session, a);
    else if (route === 'POST set') ctx.body = routes.set(ctx.session, a, b);
    else if (route === 'POST login') ctx.body = await routes.login(ctx.session, a);
    else if (route === 'POST logout') ctx.body = await routes.logout(ctx.session);
    else if (route === 'GET whoami') ctx.body = routes.whoami(ctx.session);
    else if (route === 'POST sensitive') ctx.body = securityRoutes.sensitive(ctx.session);
    else if (route === 'POST reauth') ctx.body = await securityRoutes.reauth(ctx.session);
    else if (route === 'POST token') ctx.body = await securityRoutes.token(ctx.session, a);
    else if (route === 'POST stream') {
      routes.stream(ctx.session);
      ctx.type = 'text/plain';
      ctx.body = Readable.from(nodeChunks());
    } else if (route === 'POST early') {
      ctx.respond = false;
      ctx.res.statusCode = 200;
      ctx.res.setHeader('Content-Type', 'text/plain');
      ctx.res.end(routes.early(ctx.session));
      await once(ctx.res, 'finish');
    } else if (route === 'POST fail') {
      ctx.session.set('failed', 'yes');
      ctx.set('X-Route', 'fail');
      throw new Error('boom');
    }
  });
}

async function start(manager: SessionManager): Promise<RunningServer> {
  const app = new Koa();
  app.silent = true;
  app.use(session(manager));
  routeTable(app);
  return listen(app);
}

defineAdapterSuite({ name: 'koa', start });
defineSecuritySuite({ name: 'koa', start });

describe('koa middleware', () => {
  const servers: RunningServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  async function startWith(before?: Koa.Middleware) {
    const store = new FlakyStore(Date.now);
    const manager = new SessionManager({ store, secrets: [TEST_SECRET] });
    const app = new Koa();
    app.silent = true;
    const seen: { setCookie?: unknown; status?: number } = {};
    app.use(async (ctx, next) => {
      await next();
      seen.setCookie = ctx.response.get('Set-Cookie');
      seen.status = ctx.status;
    });
    if (before !== undefined) app.use(before);
    app.use(session(manager));
    routeTable(app);
    const server = await listen(app);
    servers.push(server);
    return { store, server, seen, manager };
  }

  it('answers a request that only reads its session at once, headers set on ctx', async () => {
    const { server, seen, manager } = await startWith();
    const login = await fetch(`${server.url}/login/alice`, { method: 'POST' });
    const cookie = login.headers.getSetCookie()[0]!.split(';')[0]!;
    const commits = vi.spyOn(manager, 'commit');
    const answer = await fetch(`${server.url}/whoami`, { headers: { cookie } });
    expect(await answer.json()).toMatchObject({ user: 'alice', isNew: false });
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.headers.getSetCookie()).toEqual([]);
    expect(seen.status).toBe(200);
    // The commit of a read-only session needs no store call: it answered without a promise.
    expect(commits).toHaveBeenCalledTimes(1);
    expect(commits.mock.results[0]?.value).not.toBeInstanceOf(Promise);
    await fetch(`${server.url}/set/a/1`, { method: 'POST', headers: { cookie } });
    expect(commits).toHaveBeenCalledTimes(2);
    expect(commits.mock.results[1]?.value).toBeInstanceOf(Promise);
  });

  it('sets the cookie on ctx, where upstream middleware sees it', async () => {
    const { server, seen } = await startWith();
    const answer = await fetch(`${server.url}/set/a/1`, { method: 'POST' });
    expect(answer.headers.getSetCookie()).toHaveLength(1);
    expect(String(seen.setCookie)).toMatch(/^sid=/);
  });

  it('turns a commit failure into ctx.status 503, seen upstream', async () => {
    const { server, seen, store } = await startWith();
    store.failing.add('create');
    const answer = await fetch(`${server.url}/set/a/1`, { method: 'POST' });
    expect(answer.status).toBe(503);
    expect(seen.status).toBe(503);
    expect(answer.headers.getSetCookie()).toEqual([]);
  });

  it("keeps the cookie on an error answered by Koa's default error handler", async () => {
    const { server } = await startWith();
    const answer = await fetch(`${server.url}/fail`, { method: 'POST' });
    expect(answer.status).toBe(500);
    expect(answer.headers.get('x-route')).toBeNull();
    expect(answer.headers.getSetCookie()).toHaveLength(1);
  });

  it('answers a plain 503 when the session of an errored request cannot be saved', async () => {
    const { server, store } = await startWith();
    store.failing.add('create');
    const answer = await fetch(`${server.url}/fail`, { method: 'POST' });
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('1');
    expect(answer.headers.getSetCookie()).toEqual([]);
  });

  it('keeps the cookie on an error answered by an upstream error middleware', async () => {
    const { server } = await startWith(async (ctx, next) => {
      try {
        await next();
      } catch {
        ctx.status = 418;
        ctx.body = { error: 'handled' };
      }
    });
    const answer = await fetch(`${server.url}/fail`, { method: 'POST' });
    expect(answer.status).toBe(418);
    expect(await answer.json()).toEqual({ error: 'handled' });
    const cookies = answer.headers.getSetCookie();
    expect(cookies).toHaveLength(1);
    const value = cookies[0]!.split(';')[0]!;
    const read = await fetch(`${server.url}/get/failed`, { headers: { cookie: value } });
    expect(await read.json()).toEqual({ value: 'yes' });
  });
});
