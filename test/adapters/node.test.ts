import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { withSession } from '../../src/adapters/node.js';
import type { SessionManager } from '../../src/manager.js';
import { defineAdapterSuite, nodeChunks, routes, type RunningServer } from './suite.js';

function sendJson(res: ServerResponse, value: unknown): void {
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(value));
}

async function start(manager: SessionManager): Promise<RunningServer> {
  const server = createServer(
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
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

defineAdapterSuite({ name: 'node:http', start });
