/**
 * Starts the demo: `npm start`. Configured by environment variables:
 * PORT (3000), SESSION_SECRET, SESSION_STORE (sqlite:data/sessions.db),
 * SESSION_IDLE_TIMEOUT_MS, SESSION_ABSOLUTE_TIMEOUT_MS, SESSION_REAUTH_MS (300000: how recent a
 * sign-in "sign out all other sessions" needs), TRUST_PROXY (1 behind one proxy).
 * Any configuration it cannot use, or a port it cannot listen on, stops it with a one-line
 * message and exit code 1. The manager's audit events go to stdout, one JSON line each.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SessionManager } from '../../src/index.js';
import { createDemoApp, DEFAULT_REAUTH_MS } from './app.js';
import { SECRET_COMMAND } from '../../src/manager-options.js';
import { openStore, StoreUrlError } from '../../src/store-url.js';

const DEVELOPMENT_SECRET = 'tessera-demo-development-secret-not-for-production';

function numberFromEnv(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`${name} must be a positive number of milliseconds (got ${JSON.stringify(raw)})`);
    process.exit(1);
  }
  return value;
}

function portFromEnv(): number {
  const raw = process.env.PORT ?? '3000';
  const port = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`PORT must be a port number from 0 to 65535 (got ${JSON.stringify(raw)})`);
    process.exit(1);
  }
  return port;
}

/** The events an audit log keeps: who signed in or out, what was revoked or refused. */
const AUDIT_EVENTS = [
  'login',
  'logout',
  'revoked',
  'crossOriginRefused',
  'reauthRequired',
] as const;

/**
 * Writes each audit event to stdout as one JSON line. The events carry the session's handle
 * (a hash), never its ID or token, so the lines are safe to keep.
 */
function logAuditEvents(manager: SessionManager): void {
  for (const name of AUDIT_EVENTS) {
    manager.on(name, (event) =>
      console.log(JSON.stringify({ time: new Date().toISOString(), event: name, ...event })),
    );
  }
}

/** The one-line reason a server could not listen on `port`. */
function listenFailure(port: number, error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'EADDRINUSE':
      return `Port ${port} is already in use: stop what holds it, or set PORT to another port.`;
    case 'EACCES':
      return `Port ${port} needs privileges this process lacks: set PORT to a port above 1023.`;
    default:
      return `Cannot listen on port ${port}: ${error.message}`;
  }
}

async function main(): Promise<void> {
  const port = portFromEnv();
  const reauthMaxAge = numberFromEnv('SESSION_REAUTH_MS') ?? DEFAULT_REAUTH_MS;
  let secret = process.env.SESSION_SECRET;
  if (secret === undefined || secret === '') {
    console.warn(
      'WARNING: SESSION_SECRET is not set; using a development secret. Never do this in production.',
    );
    console.warn(`Make a secret with: ${SECRET_COMMAND}`);
    secret = DEVELOPMENT_SECRET;
  }
  const storeUrl = process.env.SESSION_STORE || 'sqlite:data/sessions.db';
  let opened;
  try {
    opened = await openStore(storeUrl);
  } catch (error) {
    console.error(
      `Cannot open the session store: ${error instanceof Error ? error.message : String(error)}`,
    );
    process.exit(1);
  }
  const trustProxy = process.env.TRUST_PROXY === '1';
  let manager: SessionManager;
  try {
    manager = new SessionManager({
      store: opened.store,
      secrets: [secret],
      idleTimeout: numberFromEnv('SESSION_IDLE_TIMEOUT_MS'),
      absoluteTimeout: numberFromEnv('SESSION_ABSOLUTE_TIMEOUT_MS'),
      trustProxy,
      // API clients: POST /api/token, then Authorization: Bearer <token>.
      headerTransport: true,
    });
  } catch (error) {
    console.error(
      `Invalid session configuration: ${error instanceof Error ? error.message : String(error)}`,
    );
    await opened.close();
    process.exit(1);
  }
  logAuditEvents(manager);
  const app = createDemoApp(manager, { reauthMaxAge });
  // Behind one proxy, Express then takes the client's address and HTTPS from its headers.
  if (trustProxy) app.set('trust proxy', 1);
  const server = createServer(app);
  server.once('error', (error: NodeJS.ErrnoException) => {
    console.error(listenFailure(port, error));
    void opened.close().finally(() => process.exit(1));
  });
  server.listen(port, () => {
    const { port: bound } = server.address() as AddressInfo;
    console.log(`Tessera demo on http://localhost:${bound} (sessions in ${opened.description})`);
  });
  const shutdown = () => {
    server.close(() => void opened.close().finally(() => process.exit(0)));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  console.error(error instanceof StoreUrlError ? error.message : error);
  process.exit(1);
});
