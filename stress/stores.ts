/**
 * Opens each store the stress tool drives, through its public API, with the client settings
 * its documentation recommends (docs/stores/*.md): the `docs` profile. Two more profiles show
 * the PostgreSQL finding: `demo`, the pool of src/store-url.ts, and `fixed`, the
 * settings docs/reliability.md proposes.
 */
import { randomBytes } from 'node:crypto';
import type { SessionStore } from '../src/store.js';
import { RedisWatchdog } from '../src/stores/redis.js';
import { SHARED } from '../test/support/services.js';

/** The stores the tool knows. */
export type StoreKind = 'postgres' | 'mysql' | 'redis' | 'memcached' | 'sqlite';

/** The networked stores, in the order a run visits them. */
export const NETWORKED: readonly StoreKind[] = ['postgres', 'mysql', 'redis', 'memcached'];

/** Which client settings to open a store with. */
export type Profile = 'docs' | 'demo' | 'fixed';

/** Where a store's server is: a host and port, or an SQLite file. */
export interface Endpoint {
  host?: string;
  port?: number;
  file?: string;
}

/** What the tool needs to open one store. */
export interface StoreSpec {
  kind: StoreKind;
  endpoint: Endpoint;
  /** The table (SQL stores) or key prefix (Redis, Memcached); one per run. */
  name: string;
  profile: Profile;
  /**
   * Driver settings laid over the profile's, to try others (`--client JSON`): for PostgreSQL
   * the `pg.Pool` options, for MySQL the `mysql2` pool options, for Memcached the memjs options.
   */
  client?: Record<string, unknown>;
}

/** An open store and how to close it and its client. */
export interface OpenStore {
  store: SessionStore;
  /** Closes the store, then its client. */
  close(): Promise<void>;
  /** Removes what the run stored (the table, the keys): for a shared server. */
  drop(): Promise<void>;
}

/**
 * The shared PostgreSQL and MariaDB servers, from TEST_POSTGRES_URL and TEST_MYSQL_URL as for the
 * tests (never stopped or flushed: the tool uses its own table).
 */
export const POSTGRES = SHARED.postgres.connection;
export const MARIADB = SHARED.mysql.connection;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A name for one run's table or key prefix, unlikely to meet another run's. */
export function runName(): string {
  return `tessera_stress_${randomBytes(4).toString('hex')}`;
}

/** node-postgres pool settings per profile (see docs/reliability.md for the finding behind `fixed`). */
export function postgresPoolOptions(profile: Profile): Record<string, unknown> {
  switch (profile) {
    case 'demo':
      // src/store-url.ts: a connect timeout, no query timeout.
      return { connectionTimeoutMillis: 5_000, max: 10 };
    case 'docs':
      // docs/stores/postgres.md, "Constructing it".
      return { connectionTimeoutMillis: 2_000, query_timeout: 5_000 };
    case 'fixed':
      // The documented settings, and idle connections closed after 1 s instead of 10 s, so that
      // none that sat idle through an outage is handed to a request once the network is back.
      return { connectionTimeoutMillis: 2_000, query_timeout: 5_000, idleTimeoutMillis: 1_000 };
  }
}

/** mysql2 pool settings per profile (see docs/reliability.md for the finding behind `fixed`). */
export function mysqlPoolOptions(profile: Profile): Record<string, unknown> {
  // docs/stores/mysql.md, "Constructing it" (the demo's pool is the same but for 5 s to connect).
  const documented = { connectTimeout: profile === 'demo' ? 5_000 : 2_000, connectionLimit: 10 };
  // mysql2 closes idle connections only when maxIdle is below connectionLimit.
  return profile === 'fixed' ? { ...documented, idleTimeout: 1_000, maxIdle: 5 } : documented;
}

/** Opens a store of `spec.kind` and creates its table where it has one. */
export async function openStore(spec: StoreSpec): Promise<OpenStore> {
  const { endpoint, name, profile } = spec;
  switch (spec.kind) {
    case 'postgres': {
      const { default: pg } = await import('pg');
      const { PostgresStore } = await import('../src/stores/postgres.js');
      const pool = new pg.Pool({
        ...POSTGRES,
        host: endpoint.host ?? POSTGRES.host,
        port: endpoint.port ?? POSTGRES.port,
        ...postgresPoolOptions(profile),
        ...spec.client,
      });
      // An idle connection the relay cuts is reported here; the pool replaces it.
      pool.on('error', () => undefined);
      const store = new PostgresStore({ pool, table: name, pruneInterval: 0 });
      await store.createTable();
      return {
        store,
        close: async () => {
          await store.close();
          await pool.end();
        },
        drop: async () => {
          const direct = new pg.Client({ ...POSTGRES, connectionTimeoutMillis: 2_000 });
          await direct.connect();
          try {
            await direct.query(`DROP TABLE IF EXISTS "${name}"`);
          } finally {
            await direct.end();
          }
        },
      };
    }
    case 'mysql': {
      const mysql = await import('mysql2/promise');
      const { MysqlStore } = await import('../src/stores/mysql.js');
      const pool = mysql.createPool({
        ...MARIADB,
        host: endpoint.host ?? MARIADB.host,
        port: endpoint.port ?? MARIADB.port,
        ...mysqlPoolOptions(profile),
        ...spec.client,
      });
      // Every profile: the store runs each statement on a connection of its own, bounded by its
      // statementTimeout (5 s), and destroys a connection whose statement timed out.
      const store = new MysqlStore({ pool, table: name, pruneInterval: 0 });
      await store.createTable();
      return {
        store,
        close: async () => {
          await store.close();
          await pool.end();
        },
        drop: async () => {
          const direct = await mysql.createConnection({ ...MARIADB, connectTimeout: 2_000 });
          try {
            await direct.query(`DROP TABLE IF EXISTS \`${name}\``);
          } finally {
            await direct.end();
          }
        },
      };
    }
    case 'redis': {
      const { createClient } = await import('redis');
      const { RedisStore } = await import('../src/stores/redis.js');
      // docs/stores/redis.md, "Constructing it"; `fixed` caps the reconnect backoff lower.
      const cap = profile === 'fixed' ? 250 : 2_000;
      const create = () => {
        const client = createClient({
          disableOfflineQueue: true,
          pingInterval: 5_000,
          socket: {
            host: endpoint.host ?? '127.0.0.1',
            port: endpoint.port,
            connectTimeout: 2_000,
            socketTimeout: 10_000,
            reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, cap),
          },
        });
        client.on('error', () => undefined);
        return client;
      };
      // `fixed`: the store's watchdog replaces a client whose connection went silent.
      const client = profile === 'fixed' ? await RedisWatchdog.open(create) : create();
      if (!(client instanceof RedisWatchdog)) await client.connect();
      const store = new RedisStore({ client, prefix: `${name}:` });
      return {
        store,
        close: async () => {
          // close() waits for commands in flight, which a silent connection never answers.
          const closed = client.close().then(
            () => true,
            () => false,
          );
          const done = await Promise.race([closed, pause(2_000).then(() => false)]);
          if (!done) client.destroy();
        },
        // The tool's Redis servers are private and removed with their directory.
        drop: async () => undefined,
      };
    }
    case 'memcached': {
      const { default: memjs } = await import('memjs');
      const { MemcachedStore } = await import('../src/stores/memcached.js');
      // docs/stores/memcached.md, "Constructing it".
      const client = memjs.Client.create(`${endpoint.host ?? '127.0.0.1'}:${endpoint.port}`, {
        timeout: 0.5,
        conntimeout: 1,
        retries: 2,
        retry_delay: 0.2,
        keepAlive: true,
        logger: { log: () => undefined },
        ...spec.client,
      });
      // The instances checks revoke sessions and cap them per user: they need the user index.
      const store = new MemcachedStore({ client, prefix: `${name}:`, userIndex: 'best-effort' });
      return {
        store,
        close: async () => client.close(),
        drop: async () => undefined,
      };
    }
    case 'sqlite': {
      const { default: Database } = await import('better-sqlite3');
      const { SqliteStore } = await import('../src/stores/sqlite.js');
      if (endpoint.file === undefined) throw new Error('sqlite needs a file');
      const db = new Database(endpoint.file);
      const store = new SqliteStore({ db, table: name, pruneInterval: 0 });
      return {
        store,
        close: async () => {
          await store.close();
          db.close();
        },
        drop: async () => undefined,
      };
    }
  }
}
