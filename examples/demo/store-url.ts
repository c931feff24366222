/**
 * Opens the store a `SESSION_STORE` URL names, with the client the demo creates for it:
 * `memory:`, `sqlite:PATH`, `postgres://...`, `mysql://...`, `redis://...`,
 * `redis-cluster://host:port,host:port,...` and `memcached://host:port`.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { SessionStore } from '../../src/index.js';

/** Closes a store, then the client the application gave it (a store never closes its client). */
export function closeStoreThenClient(
  store: { close?: () => Promise<void> },
  closeClient: () => unknown,
): () => Promise<void> {
  return async () => {
    await store.close?.();
    await closeClient();
  };
}

/** An open store, with what closes it and its clients. */
export interface OpenedStore {
  store: SessionStore;
  description: string;
  close: () => Promise<void>;
}

/** A store URL that cannot be used; the message says why. */
export class StoreUrlError extends Error {
  override name = 'StoreUrlError';
}

const STARTUP_TIMEOUT_MS = 5_000;

async function within<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StoreUrlError(`${what} did not answer within ${STARTUP_TIMEOUT_MS} ms`)),
      STARTUP_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } catch (error) {
    if (error instanceof StoreUrlError) throw error;
    throw new StoreUrlError(
      `${what} is unreachable: ${error instanceof Error ? error.message : String(error)}`,
    );
  } finally {
    clearTimeout(timer);
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/**
 * Checks that the store answers (after `prepare`, such as creating its table), so a bad URL
 * stops the start with a clear message; closes what was opened when it does not.
 */
async function probe(opened: OpenedStore, prepare?: () => Promise<void>): Promise<OpenedStore> {
  try {
    if (prepare !== undefined) await within(opened.description, prepare());
    await within(
      opened.description,
      opened.store.get('startup-probe-0000000000000000000000000000'),
    );
    return opened;
  } catch (error) {
    await opened.close().catch(() => undefined);
    throw error;
  }
}

/**
 * Takes the demo's own `table` (SQL) or `prefix` (Redis, Memcached) parameter off the URL, so
 * that the rest goes to the driver untouched.
 */
function takeParam(url: string, name: string): { url: string; value: string | undefined } {
  const at = url.indexOf('?');
  if (at === -1) return { url, value: undefined };
  const params = new URLSearchParams(url.slice(at + 1));
  const value = params.get(name) ?? undefined;
  params.delete(name);
  const rest = params.toString();
  return { url: url.slice(0, at) + (rest ? `?${rest}` : ''), value };
}

/**
 * Opens the store for `url`. SQL URLs take `?table=NAME`, Redis and Memcached URLs `?prefix=P`.
 * Throws {@link StoreUrlError} for an unknown scheme or an unreachable server.
 */
export async function openStore(original: string): Promise<OpenedStore> {
  const sql = takeParam(original, 'table');
  const table = sql.value;
  const keyed = takeParam(sql.url, 'prefix');
  const prefix = keyed.value;
  const url = keyed.url;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'memory': {
      const { MemoryStore } = await import('../../src/stores/memory.js');
      const store = new MemoryStore();
      return { store, description: 'memory', close: () => store.close() };
    }
    case 'sqlite': {
      const path = url.slice('sqlite:'.length).replace(/^\/\//, '');
      if (path === '')
        throw new StoreUrlError('sqlite: needs a file path, e.g. sqlite:data/sessions.db');
      const { default: Database } = await import('better-sqlite3');
      const { SqliteStore } = await import('../../src/stores/sqlite.js');
      const file = path === ':memory:' ? path : resolve(path);
      if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
      const db = new Database(file);
      const store = new SqliteStore({ db, table });
      return {
        store,
        description: `SQLite at ${file}`,
        close: closeStoreThenClient(store, () => db.close()),
      };
    }
    case 'postgres':
    case 'postgresql': {
      const { default: pg } = await import('pg');
      const { PostgresStore } = await import('../../src/stores/postgres.js');
      const pool = new pg.Pool({
        connectionString: url,
        connectionTimeoutMillis: STARTUP_TIMEOUT_MS,
        max: 10,
      });
      pool.on('error', () => undefined);
      const store = new PostgresStore({ pool, table });
      return probe(
        {
          store,
          description: `PostgreSQL at ${redact(url)}`,
          close: closeStoreThenClient(store, () => pool.end()),
        },
        () => store.createTable(),
      );
    }
    case 'mysql':
    case 'mariadb': {
      const mysql = await import('mysql2/promise');
      const { MysqlStore } = await import('../../src/stores/mysql.js');
      const pool = mysql.createPool({
        uri: url.replace(/^mariadb:/, 'mysql:'),
        connectTimeout: STARTUP_TIMEOUT_MS,
        connectionLimit: 10,
      });
      const store = new MysqlStore({ pool, table });
      return probe(
        {
          store,
          description: `MySQL at ${redact(url)}`,
          close: closeStoreThenClient(store, () => pool.end()),
        },
        () => store.createTable(),
      );
    }
    case 'redis':
    case 'rediss': {
      const { createClient } = await import('redis');
      const { RedisStore } = await import('../../src/stores/redis.js');
      const client = createClient({
        url,
        disableOfflineQueue: true,
        pingInterval: 5_000,
        socket: {
          connectTimeout: STARTUP_TIMEOUT_MS,
          socketTimeout: 10_000,
          reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2_000),
        },
      });
      client.on('error', () => undefined);
      const description = `Redis at ${redact(url)}`;
      await within(description, client.connect()).catch(async (error: unknown) => {
        await client.destroy();
        throw error;
      });
      const store = new RedisStore({ client, prefix });
      return probe({
        store,
        description,
        close: closeStoreThenClient(store, () => client.destroy()),
      });
    }
    case 'redis-cluster': {
      const { createCluster } = await import('redis');
      const { RedisStore } = await import('../../src/stores/redis.js');
      const hosts = url.slice('redis-cluster://'.length).split(',').filter(Boolean);
      if (hosts.length === 0)
        throw new StoreUrlError('redis-cluster: needs host:port,host:port,...');
      const cluster = createCluster({
        rootNodes: hosts.map((host) => ({ url: `redis://${host}` })),
        defaults: {
          disableOfflineQueue: true,
          pingInterval: 5_000,
          socket: {
            connectTimeout: STARTUP_TIMEOUT_MS,
            socketTimeout: 10_000,
            reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2_000),
          },
        },
      });
      cluster.on('error', () => undefined);
      const description = `Redis Cluster at ${hosts.join(',')}`;
      await within(description, cluster.connect()).catch(async (error: unknown) => {
        await cluster.destroy();
        throw error;
      });
      const store = new RedisStore({ client: cluster, prefix });
      return probe({
        store,
        description,
        close: closeStoreThenClient(store, () => cluster.destroy()),
      });
    }
    case 'memcached': {
      const { default: memjs } = await import('memjs');
      const { MemcachedStore } = await import('../../src/stores/memcached.js');
      const server = url.slice('memcached://'.length).replace(/\/$/, '');
      if (server === '') throw new StoreUrlError('memcached: needs host:port');
      const client = memjs.Client.create(server, {
        timeout: 1,
        conntimeout: 2,
        retries: 1,
        logger: { log: () => undefined },
      });
      const store = new MemcachedStore({ client: client as never, prefix });
      return probe({
        store,
        description: `Memcached at ${server}`,
        close: closeStoreThenClient(store, () => client.close()),
      });
    }
    default:
      throw new StoreUrlError(
        `SESSION_STORE must start with memory:, sqlite:, postgres://, mysql://, redis://, redis-cluster:// or memcached:// (got ${JSON.stringify(redact(url))})`,
      );
  }
}
