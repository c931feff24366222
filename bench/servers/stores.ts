/**
 * Builds each contender's store inside its server process, with the application's client
 * created here (as an application would) and the counting wrappers installed.
 *
 * Tessera's stores are loaded from `src/` with a dynamic import, so that a store another helper
 * has not finished does not break the bench: the parent only starts contenders whose file exists.
 *
 * @packageDocumentation
 */
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type Database from 'better-sqlite3';
import type pg from 'pg';
import type mysql from 'mysql2/promise';
import { createClient } from 'redis';
import type { SessionStore } from '../../src/store.js';
import type { Contender, StoreKind } from '../contenders.js';
import type { ServerConfig } from '../protocol.js';
import type { Counters } from './instrument.js';
import { countMethods, countPrototype, ownerOf } from './instrument.js';
import { closeStoreThenClient } from '../../src/store-url.js';
import { ExpressSession, loadSource } from './modules.js';

const require = createRequire(import.meta.url);

// The database drivers load when a contender needs them: a process counted under valgrind
// (`instructions.ts`) starts many times slower, and most contenders use none of them.
const sqlite = () => require('better-sqlite3') as typeof Database;
const postgres = () => require('pg') as typeof pg;
const mysqlDriver = () => require('mysql2/promise') as typeof mysql;

/** A store built for one contender, and how to let go of its client. */
export interface BuiltStore<S> {
  store: S;
  close(): Promise<void>;
}

/** The session-store methods counted for Tessera stores. */
const TESSERA_METHODS = [
  'get',
  'getNow',
  'create',
  'createNow',
  'update',
  'updateNow',
  'touch',
  'delete',
  'listByUser',
  'deleteByUser',
] as const;
/** The session-store methods counted for express-session and @fastify/session stores. */
const CONNECT_METHODS = ['get', 'set', 'touch', 'destroy'] as const;

function tableName(config: ServerConfig, suffix: string): string {
  return `${config.namespace}_${suffix}`.replace(/[^A-Za-z0-9_]/g, '_');
}

/** Counts SQLite statement executions (every statement of every database in this process). */
function countSqlite(db: Database.Database, counters: Counters | undefined): void {
  if (counters === undefined) return;
  const statement = db.prepare('SELECT 1');
  countPrototype(
    ownerOf(statement, 'run'),
    { run: 'statement', get: 'statement', all: 'statement', iterate: 'statement' },
    counters,
  );
}

/** Counts the queries node-postgres sends (a pool's query goes through a client's query once). */
function countPostgres(counters: Counters | undefined): void {
  if (counters === undefined) return;
  countPrototype(postgres().Client.prototype, { query: 'query' }, counters);
}

/** Counts the queries and prepared-statement executions mysql2 sends. */
function countMysql(counters: Counters | undefined): void {
  if (counters === undefined) return;
  const core = require('mysql2') as { Connection: { prototype: object } };
  const proto = ownerOf(core.Connection.prototype, 'query');
  countPrototype(proto, { query: 'query', execute: 'execute' }, counters);
}

/**
 * Counts node-redis round trips: one per single command, and one per MULTI or pipeline batch
 * (its commands go out in one write and come back together).
 */
function countRedis(client: object, counters: Counters | undefined): void {
  if (counters === undefined) return;
  const proto = ownerOf(client, 'sendCommand');
  countPrototype(
    proto,
    { sendCommand: 'command', _executeMulti: 'multi', _executePipeline: 'pipeline' },
    counters,
  );
}

function postgresPool(config: ServerConfig): pg.Pool {
  const pgConfig = config.services.postgres;
  if (pgConfig === undefined) throw new Error('PostgreSQL is not available');
  const pool = new (postgres().Pool)({ ...pgConfig, max: 10, connectionTimeoutMillis: 5_000 });
  pool.on('error', () => undefined);
  return pool;
}

function mysqlPool(config: ServerConfig): mysql.Pool {
  const myConfig = config.services.mysql;
  if (myConfig === undefined) throw new Error('MySQL is not available');
  return mysqlDriver().createPool({ ...myConfig, connectionLimit: 10, connectTimeout: 5_000 });
}

async function redisClient(config: ServerConfig, clientSideCache = false) {
  if (config.services.redisUrl === undefined) throw new Error('Redis is not available');
  const client = createClient({
    url: config.services.redisUrl,
    disableOfflineQueue: true,
    // RESP3 client tracking, whose invalidations the store's clientSideCache follows.
    ...(clientSideCache ? { RESP: 3 as const, emitInvalidate: true } : {}),
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

function sqliteDatabase(config: ServerConfig, contender: string): Database.Database {
  return new (sqlite())(join(config.workDir, `${contender}.db`));
}

/** Tessera's store of the given kind, counted unless `counters` is undefined. */
export async function tesseraStore(
  kind: Exclude<StoreKind, 'none'>,
  config: ServerConfig,
  counters: Counters | undefined,
  clientSideCache = false,
): Promise<BuiltStore<SessionStore>> {
  let built: BuiltStore<SessionStore>;
  switch (kind) {
    case 'memory': {
      const { MemoryStore } = await loadSource('stores/memory.js');
      const store = new MemoryStore() as SessionStore;
      built = { store, close: async () => store.close?.() };
      break;
    }
    case 'sqlite': {
      const { SqliteStore } = await loadSource('stores/sqlite.js');
      const db = sqliteDatabase(config, config.contender);
      countSqlite(db, counters);
      const store = new SqliteStore({ db }) as SessionStore;
      built = {
        store,
        close: closeStoreThenClient(store, () => db.close()),
      };
      break;
    }
    case 'postgres': {
      const { PostgresStore, createPostgresTable } = await loadSource('stores/postgres.js');
      const pool = postgresPool(config);
      const table = tableName(config, 'tessera');
      await createPostgresTable(pool, { table });
      countPostgres(counters);
      const store = new PostgresStore({ pool, table }) as SessionStore;
      built = {
        store,
        close: closeStoreThenClient(store, () => pool.end()),
      };
      break;
    }
    case 'mysql': {
      const { MysqlStore, createMysqlTable } = await loadSource('stores/mysql.js');
      const pool = mysqlPool(config);
      const table = tableName(config, 'tessera');
      await createMysqlTable(pool, { table });
      countMysql(counters);
      const store = new MysqlStore({ pool, table }) as SessionStore;
      built = {
        store,
        close: closeStoreThenClient(store, () => pool.end()),
      };
      break;
    }
    case 'redis': {
      const { RedisStore } = await loadSource('stores/redis.js');
      const client = await redisClient(config, clientSideCache);
      countRedis(client, counters);
      const store = new RedisStore({
        client,
        prefix: `${config.namespace}:tessera:`,
        clientSideCache,
      }) as SessionStore;
      built = {
        store,
        close: closeStoreThenClient(store, () => client.destroy()),
      };
      break;
    }
    case 'memcached': {
      const memcached = config.services.memcached;
      if (memcached === undefined) throw new Error('Memcached is not available');
      const { MemcachedStore } = await loadSource('stores/memcached.js');
      const memjs = require('memjs') as {
        Client: { create(servers: string, options?: object): { close(): void }; prototype: object };
      };
      if (counters !== undefined)
        countPrototype(memjs.Client.prototype, { perform: 'request' }, counters);
      const client = memjs.Client.create(`${memcached.host}:${memcached.port}`, {
        retries: 0,
        timeout: 2,
      });
      const store = new MemcachedStore({
        client,
        prefix: `${config.namespace}:tessera:`,
      }) as SessionStore;
      built = {
        store,
        close: closeStoreThenClient(store, () => client.close()),
      };
      break;
    }
  }
  if (counters !== undefined) countMethods(built.store, TESSERA_METHODS, counters);
  return built;
}

/** The express-session store a peer contender uses, counted unless `counters` is undefined. */
export async function expressSessionStore(
  contender: string,
  config: ServerConfig,
  counters: Counters | undefined,
): Promise<BuiltStore<object>> {
  const session = ExpressSession;
  let built: BuiltStore<object>;
  switch (contender) {
    case 'express-session-memory': {
      built = { store: new session.MemoryStore(), close: async () => undefined };
      break;
    }
    case 'better-sqlite3-session-store': {
      const factory = require('better-sqlite3-session-store') as (
        s: unknown,
      ) => new (options: object) => object;
      const SqliteStore = factory(session);
      const db = sqliteDatabase(config, contender);
      db.pragma('journal_mode = WAL');
      countSqlite(db, counters);
      // Its prune interval is 15 minutes and not unref'd; the process exits at shutdown anyway.
      built = {
        store: new SqliteStore({ client: db }),
        close: async () => {
          db.close();
        },
      };
      break;
    }
    case 'connect-pg-simple': {
      const factory = require('connect-pg-simple') as (
        s: unknown,
      ) => new (options: object) => { close(): void };
      const PgStore = factory(session);
      const pool = postgresPool(config);
      const table = tableName(config, 'cps');
      // connect-pg-simple's own CREATE TABLE names its primary key "session_pkey" whatever the
      // table is called, so a table left by an interrupted run would make it fail. The bench
      // makes the same table with constraint and index names of its own.
      await pool.query(
        `CREATE TABLE IF NOT EXISTS "${table}" (sid varchar NOT NULL, sess json NOT NULL, ` +
          `expire timestamp(6) NOT NULL, CONSTRAINT "${table}_pkey" PRIMARY KEY (sid))`,
      );
      await pool.query(`CREATE INDEX IF NOT EXISTS "${table}_expire" ON "${table}" (expire)`);
      const store = new PgStore({ pool, tableName: table, createTableIfMissing: false });
      countPostgres(counters);
      built = {
        store,
        close: async () => {
          store.close();
          await pool.end();
        },
      };
      break;
    }
    case 'express-mysql-session': {
      const factory = require('express-mysql-session') as (
        s: unknown,
      ) => new (
        options: object,
        connection: unknown,
      ) => { onReady(): Promise<void>; close(): Promise<void> };
      const MySQLStore = factory(session);
      const pool = mysqlPool(config);
      const store = new MySQLStore(
        {
          createDatabaseTable: true,
          endConnectionOnClose: false,
          schema: { tableName: tableName(config, 'ems') },
        },
        pool,
      );
      await store.onReady();
      countMysql(counters);
      built = {
        store,
        close: closeStoreThenClient(store, () => pool.end()),
      };
      break;
    }
    case 'connect-redis': {
      const { RedisStore } = (await import('connect-redis')) as unknown as {
        RedisStore: new (options: { client: unknown; prefix: string }) => object;
      };
      const client = await redisClient(config);
      countRedis(client, counters);
      built = {
        store: new RedisStore({ client, prefix: `${config.namespace}:connect-redis:` }),
        close: async () => client.destroy(),
      };
      break;
    }
    default:
      throw new Error(`no express-session store for ${contender}`);
  }
  if (counters !== undefined) countMethods(built.store, CONNECT_METHODS, counters);
  return built;
}

/** @fastify/session's default store, counted unless `counters` is undefined. */
export async function fastifySessionStore(
  counters: Counters | undefined,
): Promise<BuiltStore<object>> {
  const { MemoryStore } = require('@fastify/session') as { MemoryStore: new () => object };
  const store = new MemoryStore();
  if (counters !== undefined) countMethods(store, CONNECT_METHODS, counters);
  return { store, close: async () => undefined };
}

/** The stores a contender's application is given (see `AppInput`), and how to close them. */
export interface ContenderStores {
  tesseraStore?: SessionStore;
  peerStore?: object;
  close(): Promise<void>;
}

/**
 * Builds the store a contender's application runs on, as its server does; nothing for the bare,
 * calibration and floor rows (the floor keeps its sessions inline). Counted unless `counters` is
 * undefined: the instruction counts leave the counting wrappers out.
 */
export async function storesFor(
  contender: Contender,
  config: ServerConfig,
  counters: Counters | undefined,
): Promise<ContenderStores> {
  if (contender.library === 'tessera' && contender.store !== 'none') {
    const cached = contender.clientSideCache === true;
    const built = await tesseraStore(contender.store, config, counters, cached);
    return { tesseraStore: built.store, close: () => built.close() };
  }
  if (contender.library === 'express-session') {
    const built = await expressSessionStore(contender.id, config, counters);
    return { peerStore: built.store, close: () => built.close() };
  }
  if (contender.library === 'fastify-session') {
    const built = await fastifySessionStore(counters);
    return { peerStore: built.store, close: () => built.close() };
  }
  return { close: async () => undefined };
}
