/**
 * The contenders' applications: one set of routes per framework and session library, doing the
 * same work with the same responses, so that what differs between rows is the session layer.
 *
 * Routes: `GET /login?u=N` (not measured: it gives the harness a logged-in session holding a user
 * and three small keys), `GET /read` (reads the user and one key), `GET /write` (increments one
 * key), `GET /new` (writes one key into a fresh session).
 *
 * @packageDocumentation
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import express from 'express';
import Fastify, { type FastifyInstance, type FastifyPluginCallback } from 'fastify';
import type { SessionManager } from '../../src/manager.js';
import type { Session } from '../../src/session.js';
import type { SessionStore } from '../../src/store.js';
import { CALIBRATION_WORK_MICROS, type Contender } from '../contenders.js';
import { calibratedWork } from './work.js';
import { ExpressSession, type ExpressSessionData, loadCore, loadSource } from './modules.js';
import { FloorSessions, floorRoute, type FloorAnswer } from './floor.js';

const require = createRequire(import.meta.url);

/** What a logged-in bench session holds besides its user. */
export const SESSION_KEYS = { theme: 'dark', locale: 'en-GB', cart: 3 } as const;

/** A listening application. */
export interface RunningApp {
  port: number;
  /** The HTTP server, whose `request` events the process counts. */
  server: Server;
  close(): Promise<void>;
}

/** What builds an app: the session library's store, when it has one. */
export interface AppInput {
  contender: Contender;
  secret: string;
  tesseraStore?: SessionStore;
  /** Counts a store call of the floor contenders (`get`, `create`, `update`). */
  countStoreCall?: (name: string) => void;
  peerStore?: object;
  /** Tessera's `storeTimeout`, when not its default (see `inprocess.ts`). */
  storeTimeout?: number;
}

/** The calibration contenders' fixed work per request; nothing for the others. */
function workFor(contender: Contender): () => void {
  return contender.library === 'bare-work'
    ? calibratedWork(CALIBRATION_WORK_MICROS)
    : () => undefined;
}

function userOf(query: string | null | undefined): string {
  return `user-${query ?? '0'}`;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

async function tesseraManager(input: AppInput): Promise<SessionManager> {
  if (input.tesseraStore === undefined) throw new Error('Tessera needs a store');
  const { SessionManager } = await loadCore();
  return new SessionManager({
    store: input.tesseraStore,
    secrets: [input.secret],
    ...(input.storeTimeout === undefined ? {} : { storeTimeout: input.storeTimeout }),
  });
}

/** Sets a floor answer's session headers through the framework's own header call. */
function applyFloorHeaders(answer: FloorAnswer, set: (name: string, value: string) => void): void {
  if (answer.setCookie !== undefined) set('Set-Cookie', answer.setCookie);
  if (answer.noStore) set('Cache-Control', 'no-store');
}

/* ----------------------------------------------------------------- Express ---------------- */

async function expressApp(input: AppInput): Promise<RunningApp> {
  const app = express();
  const { library } = input.contender;
  if (library === 'bare' || library === 'bare-work' || library === 'bare-layer') {
    const work = workFor(input.contender);
    let n = 0;
    if (library === 'bare-layer') app.use((_req, _res, next) => next());
    app.get('/login', (_req, res) => void res.json({ ok: true }));
    app.get('/read', (_req, res) => {
      work();
      res.json({ user: 'user-0', theme: SESSION_KEYS.theme });
    });
    app.get('/write', (_req, res) => {
      work();
      res.json({ n: ++n });
    });
    app.get('/new', (_req, res) => {
      work();
      res.json({ n: 1 });
    });
  } else if (library === 'tessera') {
    const { expressSession } = await loadCore();
    app.use(expressSession(await tesseraManager(input)));
    app.get('/login', async (req, res) => {
      await req.session.login(userOf(req.query.u as string | undefined));
      for (const [key, value] of Object.entries(SESSION_KEYS)) req.session.set(key, value);
      res.json({ ok: true });
    });
    app.get(
      '/read',
      (req, res) => void res.json({ user: req.session.userId, theme: req.session.get('theme') }),
    );
    app.get('/write', (req, res) => {
      const n = ((req.session.get('n') as number | undefined) ?? 0) + 1;
      req.session.set('n', n);
      res.json({ n });
    });
    app.get('/new', (req, res) => {
      req.session.set('n', 1);
      res.json({ n: 1 });
    });
  } else if (library === 'express-session') {
    // The options every express-session guide recommends; the other defaults are the library's.
    app.use(
      ExpressSession({
        secret: input.secret,
        name: 'sid',
        resave: false,
        saveUninitialized: false,
        ...(input.peerStore === undefined ? {} : { store: input.peerStore }),
      }),
    );
    const sessionOf = (req: unknown) => (req as { session: ExpressSessionData }).session;
    app.get('/login', (req, res, next) => {
      sessionOf(req).regenerate((error) => {
        if (error !== undefined && error !== null) return next(error);
        const session = sessionOf(req);
        session.userId = userOf(req.query.u as string | undefined);
        Object.assign(session, SESSION_KEYS);
        res.json({ ok: true });
      });
    });
    app.get('/read', (req, res) => {
      const session = sessionOf(req);
      res.json({ user: session.userId, theme: session.theme });
    });
    app.get('/write', (req, res) => {
      const session = sessionOf(req);
      const n = (session.n ?? 0) + 1;
      session.n = n;
      res.json({ n });
    });
    app.get('/new', (req, res) => {
      sessionOf(req).n = 1;
      res.json({ n: 1 });
    });
  } else if (library === 'floor') {
    const floor = await FloorSessions.create(input.secret, input.countStoreCall);
    app.get(['/login', '/read', '/write', '/new'], (req, res) => {
      const answer = floorRoute(floor, req.path, {
        cookie: req.headers.cookie,
        userAgent: req.headers['user-agent'],
        ip: () => req.ip,
        u: userOf(req.query.u as string | undefined),
      });
      if (answer === undefined) return void res.sendStatus(409);
      applyFloorHeaders(answer, (name, value) => res.setHeader(name, value));
      res.json(answer.body);
    });
  } else {
    throw new Error(`${input.contender.id}: no Express app for ${library}`);
  }
  const server = createServer(app);
  const port = await listen(server);
  return { port, server, close: () => closeServer(server) };
}

/* ----------------------------------------------------------------- Fastify ---------------- */

/** The parts of @fastify/session's request session the bench uses (loaded untyped, see below). */
interface FastifySessionObject {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
  regenerate(): Promise<void>;
}

/** What the measured Fastify routes need of a session, whichever library made it. */
interface RouteSession {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
}

/** The measured routes (`/read`, `/write`, `/new`), the same for every Fastify session library. */
function sessionRoutes<S extends RouteSession>(
  app: FastifyInstance,
  sessionOf: (request: unknown) => S,
  userIdOf: (session: S) => unknown,
): void {
  app.get('/read', async (request) => {
    const session = sessionOf(request);
    return { user: userIdOf(session), theme: session.get('theme') };
  });
  app.get('/write', async (request) => {
    const session = sessionOf(request);
    const n = ((session.get('n') as number | undefined) ?? 0) + 1;
    session.set('n', n);
    return { n };
  });
  app.get('/new', async (request) => {
    sessionOf(request).set('n', 1);
    return { n: 1 };
  });
}

async function fastifyApp(input: AppInput): Promise<RunningApp> {
  const app: FastifyInstance = Fastify({ logger: false });
  const { library } = input.contender;
  if (library === 'bare' || library === 'bare-work') {
    const work = workFor(input.contender);
    let n = 0;
    app.get('/login', async () => ({ ok: true }));
    app.get('/read', async () => {
      work();
      return { user: 'user-0', theme: SESSION_KEYS.theme };
    });
    app.get('/write', async () => {
      work();
      return { n: ++n };
    });
    app.get('/new', async () => {
      work();
      return { n: 1 };
    });
  } else if (library === 'tessera') {
    const { fastifySession } = (await loadSource('adapters/fastify.js')) as {
      fastifySession: FastifyPluginCallback<{ manager: SessionManager }>;
    };
    await app.register(fastifySession, { manager: await tesseraManager(input) });
    const sessionOf = (request: unknown) => (request as { session: Session }).session;
    app.get<{ Querystring: { u?: string } }>('/login', async (request) => {
      const session = sessionOf(request);
      await session.login(userOf(request.query.u));
      for (const [key, value] of Object.entries(SESSION_KEYS)) session.set(key, value);
      return { ok: true };
    });
    sessionRoutes(app, sessionOf, (session) => session.userId);
  } else if (library === 'fastify-session') {
    // Loaded without its types: they declare `request.session` as their own, which would clash
    // with Tessera's Fastify adapter in one compilation.
    const cookie = require('@fastify/cookie') as FastifyPluginCallback;
    const plugin = require('@fastify/session') as FastifyPluginCallback<Record<string, unknown>>;
    await app.register(cookie);
    // Library defaults, except a plain-HTTP cookie (its default `secure: true` sets no cookie
    // over HTTP) and the recommended `saveUninitialized: false`, as for express-session.
    await app.register(plugin, {
      secret: input.secret,
      cookieName: 'sid',
      cookie: { secure: false },
      saveUninitialized: false,
      ...(input.peerStore === undefined ? {} : { store: input.peerStore }),
    });
    const sessionOf = (request: unknown) => (request as { session: FastifySessionObject }).session;
    app.get<{ Querystring: { u?: string } }>('/login', async (request) => {
      await sessionOf(request).regenerate();
      // regenerate() puts a new session object on the request.
      const session = sessionOf(request);
      session.set('userId', userOf(request.query.u));
      for (const [key, value] of Object.entries(SESSION_KEYS)) session.set(key, value);
      return { ok: true };
    });
    sessionRoutes(app, sessionOf, (session) => session.get('userId'));
  } else if (library === 'floor') {
    const floor = await FloorSessions.create(input.secret, input.countStoreCall);
    for (const path of ['/login', '/read', '/write', '/new']) {
      app.get<{ Querystring: { u?: string } }>(path, async (request, reply) => {
        const answer = floorRoute(floor, path, {
          cookie: request.headers.cookie,
          userAgent: request.headers['user-agent'],
          ip: () => request.ip,
          u: userOf(request.query.u),
        });
        if (answer === undefined) return reply.code(409).send();
        applyFloorHeaders(answer, (name, value) => reply.header(name, value));
        return answer.body;
      });
    }
  } else {
    throw new Error(`${input.contender.id}: no Fastify app for ${library}`);
  }
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  return { port, server: app.server, close: () => app.close() };
}

/* --------------------------------------------------------------- node:http ---------------- */

function sendJson(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function notFound(res: ServerResponse): void {
  res.writeHead(404, { 'Content-Length': 0 });
  res.end();
}

function splitUrl(req: IncomingMessage): { path: string; u: string | null } {
  const url = req.url ?? '/';
  const mark = url.indexOf('?');
  if (mark === -1) return { path: url, u: null };
  return { path: url.slice(0, mark), u: new URLSearchParams(url.slice(mark + 1)).get('u') };
}

async function nodeApp(input: AppInput): Promise<RunningApp> {
  const { library } = input.contender;
  let server: Server;
  if (library === 'bare' || library === 'bare-work') {
    const work = workFor(input.contender);
    let n = 0;
    server = createServer((req, res) => {
      switch (splitUrl(req).path) {
        case '/login':
          return sendJson(res, { ok: true });
        case '/read':
          work();
          return sendJson(res, { user: 'user-0', theme: SESSION_KEYS.theme });
        case '/write':
          work();
          return sendJson(res, { n: ++n });
        case '/new':
          work();
          return sendJson(res, { n: 1 });
        default:
          return notFound(res);
      }
    });
  } else if (library === 'tessera') {
    const { withSession } = await loadCore();
    server = createServer(
      // Synchronous, as the bare handler is: only the log-in waits, on its own promise.
      withSession(await tesseraManager(input), (req, res, session) => {
        const { path, u } = splitUrl(req);
        switch (path) {
          case '/login':
            return session.login(userOf(u)).then(() => {
              for (const [key, value] of Object.entries(SESSION_KEYS)) session.set(key, value);
              sendJson(res, { ok: true });
            });
          case '/read':
            return sendJson(res, { user: session.userId, theme: session.get('theme') });
          case '/write': {
            const n = ((session.get('n') as number | undefined) ?? 0) + 1;
            session.set('n', n);
            return sendJson(res, { n });
          }
          case '/new':
            session.set('n', 1);
            return sendJson(res, { n: 1 });
          default:
            return notFound(res);
        }
      }),
    );
  } else if (library === 'floor') {
    const floor = await FloorSessions.create(input.secret, input.countStoreCall);
    server = createServer((req, res) => {
      const { path, u } = splitUrl(req);
      const answer = floorRoute(floor, path, {
        cookie: req.headers.cookie,
        userAgent: req.headers['user-agent'],
        ip: () => req.socket.remoteAddress,
        u: userOf(u),
      });
      if (answer === undefined) return notFound(res);
      applyFloorHeaders(answer, (name, value) => res.setHeader(name, value));
      sendJson(res, answer.body);
    });
  } else {
    throw new Error(`${input.contender.id}: no node:http app for ${library}`);
  }
  const port = await listen(server);
  return { port, server, close: () => closeServer(server) };
}

/** Builds and starts the contender's application on an ephemeral port of 127.0.0.1. */
export function startApp(input: AppInput): Promise<RunningApp> {
  switch (input.contender.framework) {
    case 'express':
      return expressApp(input);
    case 'fastify':
      return fastifyApp(input);
    case 'node':
      return nodeApp(input);
  }
}
