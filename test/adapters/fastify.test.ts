import { once } from 'node:events';
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { fastifySession } from '../../src/adapters/fastify.js';
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

type Params = { key: string; value: string; user: string };

function addRoutes(app: FastifyInstance): void {
  app.get<{ Params: Params }>('/get/:key', async (request) =>
    routes.get(request.session, request.params.key),
  );
  app.post<{ Params: Params }>('/set/:key/:value', async (request) =>
    routes.set(request.session, request.params.key, request.params.value),
  );
  app.post<{ Params: Params }>('/login/:user', (request) =>
    routes.login(request.session, request.params.user),
  );
  app.post('/logout', (request) => routes.logout(request.session));
  app.get('/whoami', async (request) => routes.whoami(request.session));
  app.post('/stream', async (request, reply) => {
    routes.stream(request.session);
    return reply.type('text/plain').send(Readable.from(nodeChunks()));
  });
  app.post('/sensitive', async (request) => securityRoutes.sensitive(request.session));
  app.post('/reauth', (request) => securityRoutes.reauth(request.session));
  app.post<{ Params: Params }>('/token/:user', (request) =>
    securityRoutes.token(request.session, request.params.user),
  );
  app.post('/early', async (request, reply) => {
    reply.type('text/plain').send(routes.early(request.session));
    await once(reply.raw, 'finish');
    return reply;
  });
}

async function listen(app: FastifyInstance): Promise<RunningServer> {
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: address, close: () => app.close() };
}

async function start(manager: SessionManager): Promise<RunningServer> {
  const app = Fastify();
  await app.register(fastifySession, { manager });
  addRoutes(app);
  return listen(app);
}

defineAdapterSuite({ name: 'fastify', start });
defineSecuritySuite({ name: 'fastify', start });

describe('fastify plugin', () => {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  const manager = () => {
    const store = new FlakyStore(Date.now);
    return { store, manager: new SessionManager({ store, secrets: [TEST_SECRET] }) };
  };

  it('serves the scope it is registered in and its children, not sibling scopes', async () => {
    const { manager: sessions } = manager();
    const app = Fastify();
    apps.push(app);
    await app.register(
      async (scope) => {
        await scope.register(fastifySession, { manager: sessions });
        scope.post('/set', async (request) => routes.set(request.session, 'a', '1'));
        await scope.register(async (child) => {
          child.get('/child', async (request) => ({ hasSession: request.session !== null }));
        });
      },
      { prefix: '/with' },
    );
    await app.register(
      async (scope) => {
        scope.post('/set', async (request) => ({ hasSession: request.session != null }));
      },
      { prefix: '/without' },
    );
    app.get('/root', async (request) => ({ hasSession: request.session != null }));
    const { url } = await listen(app);

    const inside = await fetch(`${url}/with/set`, { method: 'POST' });
    expect(inside.status).toBe(200);
    expect(inside.headers.getSetCookie()).toHaveLength(1);
    expect(await (await fetch(`${url}/with/child`)).json()).toEqual({ hasSession: true });

    const sibling = await fetch(`${url}/without/set`, { method: 'POST' });
    expect(await sibling.json()).toEqual({ hasSession: false });
    expect(sibling.headers.getSetCookie()).toEqual([]);
    const root = await fetch(`${url}/root`);
    expect(await root.json()).toEqual({ hasSession: false });
    expect(root.headers.getSetCookie()).toEqual([]);
  });

  it('refuses to be registered twice on one path', async () => {
    const { manager: sessions } = manager();
    const app = Fastify();
    apps.push(app);
    await app.register(fastifySession, { manager: sessions });
    await expect(
      app.register(async (scope) => {
        await scope.register(fastifySession, { manager: sessions });
      }),
    ).rejects.toThrow(/already decorated/);
  });

  it('hands a commit failure to setErrorHandler when onError throws, without a cookie', async () => {
    const { store, manager: sessions } = manager();
    const app = Fastify();
    apps.push(app);
    app.setErrorHandler((error: { code?: string }, _request, reply) => {
      reply.code(503).send({ handled: error.code });
    });
    await app.register(fastifySession, {
      manager: sessions,
      onError: (error) => {
        throw error;
      },
    });
    addRoutes(app);
    const { url } = await listen(app);
    store.failing.add('create');
    const answer = await fetch(`${url}/set/a/1`, { method: 'POST' });
    expect(answer.status).toBe(503);
    expect(await answer.json()).toEqual({ handled: 'STORE_UNAVAILABLE' });
    expect(answer.headers.getSetCookie()).toEqual([]);
  });

  it('carries the cookie on an error response', async () => {
    const { manager: sessions } = manager();
    const app = Fastify();
    apps.push(app);
    await app.register(fastifySession, { manager: sessions });
    app.post('/fail', async (request) => {
      request.session.set('before', 'error');
      throw new Error('boom');
    });
    const { url } = await listen(app);
    const answer = await fetch(`${url}/fail`, { method: 'POST' });
    expect(answer.status).toBe(500);
    expect(answer.headers.getSetCookie()).toHaveLength(1);
  });
});
