import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import express from 'express';
import { session, sessionErrors } from '../../src/adapters/express.js';
import type { SessionManager } from '../../src/manager.js';
import { defineSecuritySuite, securityRoutes } from './security-suite.js';
import { defineAdapterSuite, nodeChunks, routes, type RunningServer } from './suite.js';

async function start(manager: SessionManager): Promise<RunningServer> {
  const app = express();
  app.use(session(manager));
  app.get('/get/:key', (req, res) => {
    res.json(routes.get(req.session, req.params.key));
  });
  app.post('/set/:key/:value', (req, res) => {
    res.json(routes.set(req.session, req.params.key, req.params.value));
  });
  app.post('/login/:user', async (req, res) => {
    res.json(await routes.login(req.session, req.params.user));
  });
  app.post('/logout', async (req, res) => {
    res.json(await routes.logout(req.session));
  });
  app.get('/whoami', (req, res) => {
    res.json(routes.whoami(req.session));
  });
  app.post('/stream', (req, res) => {
    routes.stream(req.session);
    res.type('text/plain');
    Readable.from(nodeChunks()).pipe(res);
  });
  app.post('/early', async (req, res) => {
    res.type('text/plain').send(routes.early(req.session));
    await once(res, 'finish');
  });
  app.post('/sensitive', (req, res) => {
    res.json(securityRoutes.sensitive(req.session));
  });
  app.post('/reauth', async (req, res) => {
    res.json(await securityRoutes.reauth(req.session));
  });
  app.post('/token/:user', async (req, res) => {
    res.json(await securityRoutes.token(req.session, req.params.user));
  });
  app.use(sessionErrors());
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

defineAdapterSuite({ name: 'express', start });
defineSecuritySuite({ name: 'express', start });
