/**
 * Store URLs: one string that names a store and how to reach it, as the `tessera-session` CLI
 * and the demo take it (`SESSION_STORE`): `memory:`, `sqlite:PATH`, `postgres://...`,
 * `mysql://...`, `redis://...`, `redis-cluster://host:port,host:port,...` and
 * `memcached://host:port`, with `?table=` (SQL), `?prefix=` (Redis, Memcached) or
 * `?userIndex=best-effort` (Memcached).
 *
 * {@link parseStoreUrl} reads a URL whole, opening nothing, so a bad one opens no connection
 * (`store-url/parse.ts`); {@link connectStore} opens the client it names and checks that the
 * server answers (`store-url/connect.ts`); {@link storeOn} builds the store on that client;
 * {@link openStore} does all three and creates the SQL table. Drivers are optional peer
 * dependencies, so each is imported only when its URL is opened.
 *
 * @packageDocumentation
 */
import type { SessionStore } from './store.js';
import { connectStore, within, type StoreConnection } from './store-url/connect.js';
import { parseStoreUrl } from './store-url/parse.js';

export {
  connectStore,
  memcachedStats,
  type ConnectOptions,
  type RedisNode,
  type StoreConnection,
} from './store-url/connect.js';
export {
  parseStoreUrl,
  StoreUnreachableError,
  StoreUrlError,
  type StoreSpec,
} from './store-url/parse.js';

/** Closes a store, then the client the application gave it (a store never closes its client). */
export function closeStoreThenClient(
  store: { close?: () => unknown },
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
  /** The store and where it is, for messages: `PostgreSQL at postgres://app:***@db/app`. */
  description: string;
  close: () => Promise<void>;
}

/** Options of {@link storeOn}: the SQL stores' pruning options, and whether SQLite creates its table. */
export interface StoreOnOptions {
  /**
   * SQLite only: create the table and its indexes if missing (the other SQL stores never create
   * one when built; see {@link openStore}).
   * @defaultValue true
   */
  createTable?: boolean;
  /** SQL stores: how often expired rows are pruned, `0` for never. @defaultValue 300_000 */
  pruneInterval?: number;
  /** SQL stores: the most rows one prune statement deletes. @defaultValue 1_000 */
  pruneBatchSize?: number;
  /** SQL stores: the clock expiry is compared against. @defaultValue `Date.now` */
  now?: () => number;
}

/**
 * Builds the store on an open connection. Closing the store leaves the connection open; close
 * both, the store first ({@link closeStoreThenClient}).
 */
export async function storeOn(
  connection: StoreConnection,
  options: StoreOnOptions = {},
): Promise<SessionStore> {
  const pruning = {
    pruneInterval: options.pruneInterval,
    pruneBatchSize: options.pruneBatchSize,
    now: options.now,
  };
  switch (connection.kind) {
    case 'memory': {
      const { MemoryStore } = await import('./stores/memory.js');
      return new MemoryStore();
    }
    case 'sqlite': {
      const { SqliteStore } = await import('./stores/sqlite.js');
      const { db, spec } = connection;
      return new SqliteStore({
        db,
        table: spec.table,
        createTable: options.createTable,
        ...pruning,
      });
    }
    case 'postgres': {
      const { PostgresStore } = await import('./stores/postgres.js');
      return new PostgresStore({ pool: connection.pool, table: connection.spec.table, ...pruning });
    }
    case 'mysql': {
      const { MysqlStore } = await import('./stores/mysql.js');
      return new MysqlStore({ pool: connection.pool, table: connection.spec.table, ...pruning });
    }
    case 'redis':
    case 'redis-cluster': {
      const { RedisStore } = await import('./stores/redis.js');
      return new RedisStore({ client: connection.client, prefix: connection.spec.prefix });
    }
    case 'memcached': {
      const { MemcachedStore } = await import('./stores/memcached.js');
      const { client, spec } = connection;
      return new MemcachedStore({ client, prefix: spec.prefix, userIndex: spec.userIndex });
    }
  }
}

/**
 * Creates the session table and its indexes of a SQL store if missing (`CREATE ... IF NOT
 * EXISTS`, safe to run again and from several processes at once); does nothing for the other
 * stores, which keep no schema.
 */
export async function createTables(connection: StoreConnection): Promise<void> {
  switch (connection.kind) {
    case 'sqlite': {
      const { sqliteSchema } = await import('./stores/sqlite.js');
      connection.db.exec(sqliteSchema(connection.spec.table));
      return;
    }
    case 'postgres': {
      const { createPostgresTable } = await import('./stores/postgres.js');
      await createPostgresTable(connection.pool, { table: connection.spec.table });
      return;
    }
    case 'mysql': {
      const { createMysqlTable } = await import('./stores/mysql.js');
      await createMysqlTable(connection.pool, { table: connection.spec.table });
      return;
    }
  }
}

/**
 * Opens the store for `url` (see {@link parseStoreUrl}), creating the SQL table if missing (and a
 * SQLite file). Throws {@link StoreUrlError} for a URL it cannot use, and its subclass
 * {@link StoreUnreachableError} for a server that does not answer.
 */
export async function openStore(original: string): Promise<OpenedStore> {
  const connection = await connectStore(parseStoreUrl(original));
  try {
    await within(connection.description, createTables(connection));
    const store = await storeOn(connection);
    return {
      store,
      description: connection.description,
      close: closeStoreThenClient(store, () => connection.close()),
    };
  } catch (error) {
    await connection.close().catch(() => undefined);
    throw error;
  }
}
