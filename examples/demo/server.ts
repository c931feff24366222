/**
 * Starts the demo: `npm start`. Configured by environment variables:
 * PORT (3000), SESSION_SECRET, SESSION_STORE (sqlite:data/sessions.db),
 * SESSION_IDLE_TIMEOUT_MS, SESSION_ABSOLUTE_TIMEOUT_MS.
 */
import { SessionManager } from '../../src/index.js';
import { createDemoApp } from './app.js';
import { openStore, StoreUrlError } from './store-url.js';

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

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 3000);
  let secret = process.env.SESSION_SECRET;
  if (secret === undefined || secret === '') {
    console.warn(
      'WARNING: SESSION_SECRET is not set; using a development secret. Never do this in production.',
    );
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
  let manager: SessionManager;
  try {
    manager = new SessionManager({
      store: opened.store,
      secrets: [secret],
      idleTimeout: numberFromEnv('SESSION_IDLE_TIMEOUT_MS'),
      absoluteTimeout: numberFromEnv('SESSION_ABSOLUTE_TIMEOUT_MS'),
      trustProxy: process.env.TRUST_PROXY === '1',
    });
  } catch (error) {
    console.error(
      `Invalid session configuration: ${error instanceof Error ? error.message : String(error)}`,
    );
    await opened.close();
    process.exit(1);
  }
  const server = createDemoApp(manager).listen(port, () => {
    console.log(`Tessera demo on http://localhost:${port} (sessions in ${opened.description})`);
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
