/**
 * Runs the synchronizer-token suite on every adapter. Each parses url-encoded forms as an
 * application on its framework does: Express with `express.urlencoded()`, Fastify with a
 * content-type parser (what `@fastify/formbody` registers), Koa and node:http with a few lines
 * before the session layer; Hono and Fetch read the form themselves.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { session as expressSession } from '../../src/adapters/express.js';
import { fastifySession } from '../../src/adapters/fastify.js';
import { withSession as fetchSession } from '../../src/adapters/fetch.js';
import { session as honoSession, type SessionEnv } from '../../src/adapters/hono.js';
import { session as koaSession } from '../../src/adapters/koa.js';
import { withSession as nodeSession } from '../../src/adapters/node.js';
import type { SessionManager } from '../../src/manager.js';
import { listen } from '../compat/helpers.js';
import { csrfRoutes, defineCsrfSuite } from './csrf-token-suite.js';
import { serveFetch } from './serve-fetch.js';

/** A url-encoded request body as an object; `undefined` for any other content type. */
async function readForm(req: IncomingMessage): Promise<Record<string, string> | undefined> {
  if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') return undefined;
  let text = '';
  for await (const chunk of req) text += String(chunk);
  return Object.fromEntries(new URLSearchParams(text));
}

function sendJson(res: ServerResponse, value: unknown): void {
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(value));
}

/** The field `note` of a parsed body, whatever its shape. */
function noteOf(body: unknown): unknown {
  return (body as { note?: unknown } | undefined)?.note;
}

defineCsrfSuite({
  name: 'express',
  async start(manager) {
    const app = express();
    app.use(express.urlencoded({ extended: false }));
    app.use(expressSession(manager));
    app.get('/form', (req, res) => {
      res.json(csrfRoutes.form(req.session));
    });
    app.post('/submit', (req, res) => {
      res.json(csrfRoutes.submit(req.session, noteOf(req.body)));
    });
    app.post('/login/:user', async (req, res) => {
      res.json(await csrfRoutes.login(req.session, req.params.user));
    });
    return listen(app);
  },
});

defineCsrfSuite({
  name: 'fastify',
  async start(manager) {
    const app = Fastify();
    app.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string' },
      (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(String(body)))),
    );
    await app.register(fastifySession, { manager });
    app.get('/form', async (request) => csrfRoutes.form(request.session));
    app.post('/submit', async (request) =>
      csrfRoutes.submit(request.session, noteOf(request.body)),
    );
    app.post<{ Params: { user: string } }>('/login/:user', (request) =>
      csrfRoutes.login(request.session, request.params.user),
    );
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, close: () => app.close() };
  },
});

defineCsrfSuite({
  name: 'koa',
  async start(manager) {
    const app = new Koa();
    app.silent = true;
    app.use(async (ctx, next) => {
      (ctx.request as { body?: unknown }).body = await readForm(ctx.req);
      await next();
    });
    app.use(koaSession(manager));
    app.use(async (ctx) => {
      const [, action, user = ''] = ctx.path.split('/');
      const route = `${ctx.method} ${action}`;
      if (route === 'GET form') ctx.body = csrfRoutes.form(ctx.session);
      else if (route === 'POST submit') {
        ctx.body = csrfRoutes.submit(ctx.session, noteOf((ctx.request as { body?: unknown }).body));
      } else if (route === 'POST login') ctx.body = await csrfRoutes.login(ctx.session, user);
    });
    return listen(app.callback());
  },
});

defineCsrfSuite({
  name: 'node:http',
  start(manager: SessionManager) {
    const handler = nodeSession(manager, async (req, res, session) => {
      const [, action, user = ''] = (req.url ?? '/').split('/');
      const route = `${req.method} ${action}`;
      const body = (req as { body?: unknown }).body;
      if (route === 'GET form') return sendJson(res, csrfRoutes.form(session));
      if (route === 'POST submit') return sendJson(res, csrfRoutes.submit(session, noteOf(body)));
      if (route === 'POST login') return sendJson(res, await csrfRoutes.login(session, user));
      res.statusCode = 404;
      res.end();
    });
    // A plain node:http server parses the form before it hands the request to the session.
    return listen((req, res) => {
      readForm(req).then((form) => {
        (req as { body?: unknown }).body = form;
        handler(req, res);
      }, res.destroy.bind(res));
    });
  },
});

defineCsrfSuite({
  name: 'hono',
  multipart: true,
  start(manager) {
    const app = new Hono<SessionEnv>();
    app.use(honoSession(manager));
    app.get('/form', (c) => c.json(csrfRoutes.form(c.get('session'))));
    app.post('/submit', async (c) => {
      const form = c.req.header('content-type')?.includes('json') ? {} : await c.req.parseBody();
      return c.json(csrfRoutes.submit(c.get('session'), form.note));
    });
    app.post('/login/:user', async (c) =>
      c.json(await csrfRoutes.login(c.get('session'), c.req.param('user'))),
    );
    return serveFetch(app.fetch);
  },
});

defineCsrfSuite({
  name: 'fetch',
  multipart: true,
  start(manager) {
    return serveFetch(
      fetchSession(manager, async (request, session) => {
        const [, action, user = ''] = new URL(request.url).pathname.split('/');
        const route = `${request.method} ${action}`;
        if (route === 'GET form') return Response.json(csrfRoutes.form(session));
        if (route === 'POST submit') {
          const json = request.headers.get('content-type')?.includes('json') === true;
          const note = json ? undefined : (await request.formData()).get('note');
          return Response.json(csrfRoutes.submit(session, note));
        }
        if (route === 'POST login') return Response.json(await csrfRoutes.login(session, user));
        return new Response('not found', { status: 404 });
      }),
    );
  },
});
