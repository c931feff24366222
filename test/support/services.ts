import { connect } from 'node:net';

/** Whether a TCP server answers at host:port within the timeout. */
export function probeTcp(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** How to reach a shared server: a spread into `pg` or `mysql2` options. */
export interface ServiceConnection {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
}

/** A shared server the tests use (never stopped, flushed or reconfigured by them). */
export interface SharedService {
  /** `PostgreSQL at 127.0.0.1:5432`: for skip reasons and test titles. */
  label: string;
  /** The URL, as given in the environment or by default. */
  url: string;
  host: string;
  port: number;
  connection: ServiceConnection;
}

/** Reads the service's URL from `variable`, or takes `fallback`. */
function sharedService(name: string, variable: string, fallback: string): SharedService {
  const url = process.env[variable] || fallback;
  const parsed = new URL(url);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(parsed.port || new URL(fallback).port);
  const password = decodeURIComponent(parsed.password);
  return {
    label: `${name} at ${host}:${port}`,
    url,
    host,
    port,
    connection: {
      host,
      port,
      user: decodeURIComponent(parsed.username),
      ...(password === '' ? {} : { password }),
      database: decodeURIComponent(parsed.pathname.slice(1)),
    },
  };
}

/**
 * The shared servers of the store tests, each from an environment variable with this machine's
 * server as the default: `TEST_POSTGRES_URL` (`postgres://postgres@127.0.0.1:5432/test`),
 * `TEST_MYSQL_URL` (`mysql://root@127.0.0.1:3306/test`), `TEST_REDIS_URL`
 * (`redis://127.0.0.1:6379`). Memcached and Redis Cluster are private servers the tests start.
 */
export const SHARED = {
  postgres: sharedService(
    'PostgreSQL',
    'TEST_POSTGRES_URL',
    'postgres://postgres@127.0.0.1:5432/test',
  ),
  mysql: sharedService('MariaDB', 'TEST_MYSQL_URL', 'mysql://root@127.0.0.1:3306/test'),
  redis: sharedService('Redis', 'TEST_REDIS_URL', 'redis://127.0.0.1:6379'),
};

/** `url` with `query` (`table=t`) added after the URL's own parameters, if it has any. */
export function withQuery(url: string, query: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}${query}`;
}

/** Gates tests on a shared server (see {@link requireService}); by default its port must answer. */
export function requireShared(
  service: SharedService,
  check: () => Promise<boolean | string> = () => probeTcp(service.host, service.port),
): Promise<ServiceGate> {
  return requireService(service.label, check);
}

/** Whether this run is CI, where a missing service fails the run instead of skipping. */
export const inCI = process.env.CI === 'true' || process.env.CI === '1';

export interface ServiceGate {
  available: boolean;
  /** Why the tests are skipped; empty when they run. */
  reason: string;
  /** A describe-title suffix stating the skip reason, or nothing. */
  label: string;
}

/**
 * Decides whether the tests of a real service run. Outside CI a missing service skips them
 * with the reason in the test title and on stderr; in CI it throws, failing the run.
 */
export async function requireService(
  name: string,
  check: () => Promise<boolean | string>,
): Promise<ServiceGate> {
  let result: boolean | string;
  try {
    result = await check();
  } catch (error) {
    result = error instanceof Error ? error.message : String(error);
  }
  if (result === true) return { available: true, reason: '', label: '' };
  const reason = `${name} is not available${typeof result === 'string' ? `: ${result}` : ''}`;
  if (inCI) throw new Error(`CI needs ${reason}`);
  console.warn(`[tessera tests] skipping: ${reason}`);
  return { available: false, reason, label: ` [skipped: ${reason}]` };
}

/**
 * Calls `run` until it resolves, pausing `pauseMs` between failed tries, and answers its value;
 * rethrows the last failure once `timeoutMs` has passed. For a store whose client reconnects to
 * a real server after an outage, which takes real time (no clock to inject).
 */
export async function eventually<T>(
  run: () => T | Promise<T>,
  timeoutMs = 10_000,
  pauseMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await run();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }
}

/**
 * Waits until `check` answers true, asking again every `pauseMs`; a check that throws counts as
 * false. Rejects, naming `what`, once `timeoutMs` has passed. For a private server the tests
 * start, pause or restart.
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  pauseMs = 50,
): Promise<void> {
  await eventually(
    async () => {
      const holds = await check().catch(() => false);
      if (!holds) throw new Error(`timed out waiting for ${what}`);
    },
    timeoutMs,
    pauseMs,
  );
}
