/**
 * The application the stress tool drives: plain node:http with Tessera's adapter, so what the
 * clients see is what an application sees. Every answer is JSON.
 *
 * - `GET /`: reads the session (read-only).
 * - `POST /inc?k=KEY`: adds one to the session's counter `KEY` (default `n`); a 200 means the
 *   write is stored, since the adapter answers only after the session is saved.
 * - `POST /login?u=USER`: signs in as USER on a new session ID, keeping the data.
 * - `POST /logout`: ends the session.
 * - `POST /revoke?u=USER`: ends every session of USER.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SessionManager } from '../src/manager.js';
import type { Session } from '../src/session.js';
import { withSession } from '../src/adapters/node.js';

/** The session data: counters by name. */
export type Counters = Record<string, number>;

/** What every 200 carries: the session's counters and user as this request leaves them. */
export interface View {
  data: Counters;
  user: string | null;
  /** Sessions ended, for `/revoke`. */
  removed?: number;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function view(session: Session<Counters>, extra: Partial<View> = {}): View {
  return { data: session.toJSON() as Counters, user: session.userId, ...extra };
}

async function handle(
  manager: SessionManager<Counters>,
  req: IncomingMessage,
  res: ServerResponse,
  session: Session<Counters>,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /':
      return send(res, 200, view(session));
    case 'POST /inc': {
      const key = url.searchParams.get('k') ?? 'n';
      session.set(key, (session.get(key) ?? 0) + 1);
      return send(res, 200, view(session));
    }
    case 'POST /login':
      await session.login(url.searchParams.get('u') ?? 'user', { keep: true });
      return send(res, 200, view(session));
    case 'POST /logout':
      await session.destroy();
      return send(res, 200, view(session));
    case 'POST /revoke': {
      const removed = await manager.revokeUserSessions(url.searchParams.get('u') ?? 'user');
      return send(res, 200, view(session, { removed }));
    }
    default:
      return send(res, 404, { error: 'not found' });
  }
}

/** An HTTP server for `manager` (not listening yet). */
export function createStressApp(manager: SessionManager<Counters>): Server {
  const server = createServer(
    withSession(manager, (req, res, session) => handle(manager, req, res, session)),
  );
  server.keepAliveTimeout = 30_000;
  return server;
}

/** Listens on a free loopback port; answers the base URL. */
export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Closes the server and its idle keep-alive connections. */
export async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
