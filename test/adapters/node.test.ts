import { once } from 'node:events';
import { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { commitBeforeHeaders, withSession, type SessionHandler } from '../../src/adapters/node.js';
import { SessionManager } from '../../src/manager.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { listen } from '../compat/helpers.js';
import {
  defineAdapterSuite,
  nodeChunks,
  routes,
  TEST_SECRET,
  type RunningServer,
} from './suite.js';
import { defineSecuritySuite, securityRoutes } from './security-suite.js';

function sendJson(res: ServerResponse, value: unknown): void {
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(value));
}

function start(manager: SessionManager): Promise<RunningServer> {
  return listen(
    withSession(manager, async (req, res, session) => {
      const [, action, a = '', b = ''] = new URL(req.url ?? '/', 'http://localhost').pathname.split(
        '/',
      );
      const route = `${req.method} ${action}`;
      if (route === 'GET get') return sendJson(res, routes.get(session, a));
      if (route === 'POST set') return sendJson(res, routes.set(session, a, b));
      if (route === 'POST login') return sendJson(res, await routes.login(session, a));
      if (route === 'POST logout') return sendJson(res, await routes.logout(session));
      if (route === 'GET whoami') return sendJson(res, routes.whoami(session));
      if (route === 'POST sensitive') return sendJson(res, securityRoutes.sensitive(session));
      if (route === 'POST reauth') return sendJson(res, await securityRoutes.reauth(session));
      if (route === 'POST token') return sendJson(res, await securityRoutes.token(session, a));
      if (route === 'POST stream') {
        routes.stream(session);
        res.setHeader('Content-Type', 'text/plain');
        Readable.from(nodeChunks()).pipe(res);
        return;
      }
      if (route === 'POST early') {
        res.setHeader('Content-Type', 'text/plain');
        res.end(routes.early(session));
        await once(res, 'finish');
        return;
      }
      res.statusCode = 404;
      res.end();
    }),
  );
}

defineAdapterSuite({ name: 'node:http', start });
defineSecuritySuite({ name: 'node:http', start });

describe('withSession handlers and response gates', () => {
  const running: RunningServer[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((server) => server.close()));
  });

  async function serve(handler: SessionHandler<Record<string, unknown>>) {
    const store = new MemoryStore({ sweepInterval: 0 });
    const manager = new SessionManager<Record<string, unknown>>({ store, secrets: [TEST_SECRET] });
    const server = await listen(withSession(manager, handler));
    running.push(server);
    return { url: server.url, store };
  }

  it('runs a synchronous handler: its session is saved and its cookie sent', async () => {
    const { url } = await serve((_req, res, session) => {
      const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
      session.set('visits', visits);
      res.end(String(visits));
    });
    const first = await fetch(url);
    const cookie = first.headers.getSetCookie()[0]!.split(';', 1)[0]!;
    expect(await first.text()).toBe('1');
    const second = await fetch(url, { headers: { cookie } });
    expect(await second.text()).toBe('2');
  });

  it('answers a bare 500 when a synchronous handler throws, showing nothing of the error', async () => {
    const { url, store } = await serve((_req, _res, session) => {
      session.set('a', 1);
      throw new Error('secret internals');
    });
    const answer = await fetch(url);
    expect(answer.status).toBe(500);
    expect(await answer.text()).toBe('Internal Server Error\n');
    // As on every other response, what the handler changed before it threw is saved.
    expect(answer.headers.getSetCookie()).toHaveLength(1);
    expect(store.size).toBe(1);
  });

  it('answers a bare 500 when an asynchronous handler rejects', async () => {
    const { url } = await serve(async () => {
      await Promise.resolve();
      throw new Error('secret internals');
    });
    const answer = await fetch(url);
    expect(answer.status).toBe(500);
    expect(await answer.text()).toBe('Internal Server Error\n');
  });

  it('answers a bare 500 when a handler returns a rejecting thenable that is not a Promise', async () => {
    const { url } = await serve(() => ({
      then(_resolve: (value: unknown) => void, reject: (error: unknown) => void) {
        reject(new Error('secret internals'));
      },
    }));
    const answer = await fetch(url);
    expect(answer.status).toBe(500);
  });

  it('passes every argument of a held writeHead, write and end through', async () => {
    const callbacks: string[] = [];
    const { url } = await serve((_req, res, session) => {
      session.set('made', true);
      res.writeHead(201, 'Made Here', { 'X-Made': 'yes' });
      res.write('one ', 'utf8', () => callbacks.push('write'));
      res.write(Buffer.from('two'), () => callbacks.push('write buffer'));
      res.end(() => callbacks.push('end'));
    });
    const answer = await fetch(url);
    expect(answer.status).toBe(201);
    expect(answer.statusText).toBe('Made Here');
    expect(answer.headers.get('x-made')).toBe('yes');
    expect(answer.headers.getSetCookie()).toHaveLength(1);
    expect(await answer.text()).toBe('one two');
    expect(callbacks).toEqual(['write', 'write buffer', 'end']);
  });

  for (const handler of ['synchronous', 'asynchronous'] as const) {
    it(`ends a response whose headers went out around the gate, without its cookie (${handler} handler)`, async () => {
      const { url } = await serve(async (_req, res, session) => {
        session.set('late', true);
        ServerResponse.prototype.writeHead.call(res, 200, { 'Content-Type': 'text/plain' });
        if (handler === 'asynchronous') await Promise.resolve();
        res.end('sent early');
      });
      const answer = await fetch(url);
      expect(answer.status).toBe(200);
      expect(await answer.text()).toBe('sent early');
      expect(answer.headers.getSetCookie()).toEqual([]);
    });
  }

  it('opens two gates on one response in turn, each adding its headers once', async () => {
    const order: string[] = [];
    const server = await listen((_req, res) => {
      // The outer gate's commit answers at once, the inner one's through a promise.
      const gate = (name: string) =>
        commitBeforeHeaders(
          res,
          name === 'outer'
            ? () => ({ setCookie: [`${name}=1`], cacheControl: undefined })
            : async () => {
                order.push(name);
                return { setCookie: [`${name}=1`], cacheControl: undefined };
              },
          () => res.destroy(),
        );
      gate('outer');
      gate('inner');
      res.write('a');
      res.end('b');
    });
    running.push(server);
    const answer = await fetch(server.url);
    expect(await answer.text()).toBe('ab');
    expect(answer.headers.getSetCookie()).toEqual(['inner=1', 'outer=1']);
    expect(order).toEqual(['inner']);
  });

  it('stays in front of a method that middleware replaced after the gate went up', async () => {
    const server = await listen((_req, res) => {
      commitBeforeHeaders(
        res,
        async () => ({ setCookie: ['late=1'], cacheControl: undefined }),
        () => res.destroy(),
      );
      const gatedEnd = res.end;
      res.end = function (this: typeof res, ...args: unknown[]) {
        res.setHeader('X-Wrapped', 'yes');
        return (gatedEnd as (...a: unknown[]) => typeof res).apply(this, args);
      } as typeof res.end;
      res.end('done');
    });
    running.push(server);
    const answer = await fetch(server.url);
    expect(await answer.text()).toBe('done');
    expect(answer.headers.get('x-wrapped')).toBe('yes');
    expect(answer.headers.getSetCookie()).toEqual(['late=1']);
  });
});
