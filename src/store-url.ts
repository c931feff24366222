/**
 * Store URLs: one string that names a store and how to reach it, as the `tessera-session` CLI
 * and the demo take it (`SESSION_STORE`): `memory:`, `sqlite:PATH`, `postgres://...`,
 * `mysql://...`, `redis://...`, `redis-cluster://host:port,host:port,...` and
 * `memcached://host:port`, with `?table=` (SQL) or `?prefix=` (Redis, Memcached).
 *
 * {@link parseStoreUrl} reads a URL whole, opening nothing, so a bad one opens no connection;
 * {@link connectStore} opens the client it names and checks that the server answers;
 * {@link storeOn} builds the store on that client; {@link openStore} does all three and creates
 * the SQL table. Drivers are optional peer dependencies, so each is imported only when its URL is
 * opened.
 *
 * @packageDocumentation
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type Database from 'better-sqlite3';
import type { Client as MemjsClient } from 'memjs';
import type { Pool as MysqlPool } from 'mysql2/promise';
import type { Pool as PgPool } from 'pg';
import type { SessionStore } from './store.js';
import type { RedisStoreClient } from './stores/redis.js';

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

/** A store URL that cannot be used; the message says why. */
export class StoreUrlError extends Error {
  override name = 'StoreUrlError';
}

/**
 * A store whose server could not be reached, or did not answer within 5 seconds (a SQLite file
 * that cannot be opened counts too); the message says which and why.
 */
export class StoreUnreachableError extends StoreUrlError {
  override name = 'StoreUnreachableError';
}

const STARTUP_TIMEOUT_MS = 5_000;

/** `promise`, or {@link StoreUnreachableError} naming `what` when it fails or takes too long. */
async function within<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new StoreUnreachableError(`${what} did not answer within ${STARTUP_TIMEOUT_MS} ms`)),
      STARTUP_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } catch (error) {
    if (error instanceof StoreUrlError) throw error;
    throw new StoreUnreachableError(`${what} is unreachable: ${messageOf(error)}`);
  } finally {
    clearTimeout(timer);
  }
}

/** An error's message on one line; an AggregateError (several addresses tried) says each. */
function messageOf(error: unknown): string {
  if (error instanceof AggregateError && error.message === '' && error.errors.length > 0) {
    return error.errors.map(messageOf).join('; ');
  }
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s+/g, ' ').trim() || (error as Error)?.name || 'unknown error';
}

/** A URL with its password replaced by `***`, for messages. */
function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/** A SQL table name, optionally qualified by its schema or database: what every SQL store takes. */
const TABLE = /^(?:[A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,47}$/;
/** SQLite takes no schema part. */
const SQLITE_TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;
/** A key prefix that needs no quoting in any store or log line. */
const PREFIX = /^[A-Za-z0-9_.:-]{1,100}$/;
/** `host:port`, the host a name, an IPv4 address or a bracketed IPv6 address. */
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/;
/** Whether `text` holds a control character: never part of a store URL or a file path worth opening. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** What a `SESSION_STORE` URL names, before anything is opened. */
export type StoreSpec =
  | { kind: 'memory' }
  | { kind: 'sqlite'; path: string; table?: string }
  | { kind: 'postgres'; url: string; table?: string }
  | { kind: 'mysql'; url: string; table?: string }
  | { kind: 'redis'; url: string; prefix?: string }
  | { kind: 'redis-cluster'; hosts: string[]; prefix?: string }
  | { kind: 'memcached'; servers: string; prefix?: string };

const SCHEMES =
  'SESSION_STORE must start with memory:, sqlite:, postgres://, mysql://, redis://, redis-cluster:// or memcached://';

/**
 * The query of a store URL split into Tessera's own options (`table`, `prefix`) and the rest,
 * which stays as written for the driver. One pass over the query.
 */
function splitQuery(query: string): { own: Map<string, string>; rest: string[] } {
  const own = new Map<string, string>();
  const rest: string[] = [];
  for (const part of query.split('&')) {
    if (part === '') continue;
    // URLSearchParams decodes as browsers do (`+` is a space) and never throws on a stray `%`.
    const [name, value] = [...new URLSearchParams(part)][0] ?? ['', ''];
    if (name !== 'table' && name !== 'prefix') {
      rest.push(part);
      continue;
    }
    if (own.has(name)) throw new StoreUrlError(`${name}= is given twice`);
    own.set(name, value);
  }
  return { own, rest };
}

/** `host:port,host:port,...` as a list, each checked; empty entries are skipped. */
function hostList(text: string, scheme: string): string[] {
  const hosts = text.split(',').filter((host) => host !== '');
  if (hosts.length === 0) throw new StoreUrlError(`${scheme}: needs host:port,host:port,...`);
  for (const host of hosts) {
    const port = HOST_PORT.exec(host)?.[1];
    if (port === undefined || Number(port) < 1 || Number(port) > 65_535) {
      throw new StoreUrlError(`${scheme}: ${JSON.stringify(host)} is not host:port`);
    }
  }
  return hosts;
}

/**
 * Reads a `SESSION_STORE` URL without opening anything. SQL URLs take `?table=NAME` (letters,
 * digits and underscores, `schema.table` for PostgreSQL and MySQL), Redis and Memcached URLs
 * `?prefix=P` (1 to 100 of `[A-Za-z0-9_.:-]`); the query starts at the first `?`. PostgreSQL,
 * MySQL and Redis URLs keep their other parameters, as written, for their driver. Throws
 * {@link StoreUrlError}, and nothing else, for anything it cannot use.
 */
export function parseStoreUrl(original: string): StoreSpec {
  if (typeof original !== 'string') throw new StoreUrlError('SESSION_STORE must be a string');
  if (hasControl(original)) {
    throw new StoreUrlError('SESSION_STORE must not contain control characters');
  }
  const at = original.indexOf('?');
  const base = at === -1 ? original : original.slice(0, at);
  const { own, rest } = splitQuery(at === -1 ? '' : original.slice(at + 1));
  const table = own.get('table');
  const prefix = own.get('prefix');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(base)?.[1]?.toLowerCase();
  const after = base.slice((scheme?.length ?? 0) + 1);
  const kind =
    scheme === 'postgresql'
      ? 'postgres'
      : scheme === 'mariadb'
        ? 'mysql'
        : scheme === 'rediss'
          ? 'redis'
          : scheme;
  const sql = kind === 'sqlite' || kind === 'postgres' || kind === 'mysql';
  const keyed = kind === 'redis' || kind === 'redis-cluster' || kind === 'memcached';
  if (!sql && !keyed && kind !== 'memory') {
    throw new StoreUrlError(`${SCHEMES} (got ${JSON.stringify(redact(base))})`);
  }
  if (table !== undefined && !sql) throw new StoreUrlError(`${scheme}: takes no table= option`);
  if (prefix !== undefined && !keyed) throw new StoreUrlError(`${scheme}: takes no prefix= option`);
  if (table !== undefined && !(kind === 'sqlite' ? SQLITE_TABLE : TABLE).test(table)) {
    throw new StoreUrlError(
      `table= must be letters, digits and underscores${kind === 'sqlite' ? '' : ' (schema.table allowed)'}, not starting with a digit, at most 48 characters`,
    );
  }
  if (prefix !== undefined && !PREFIX.test(prefix)) {
    throw new StoreUrlError('prefix= must be 1 to 100 characters of A-Z a-z 0-9 _ . : -');
  }
  const driverUrl = base + (rest.length > 0 ? `?${rest.join('&')}` : '');
  // Only the drivers of URL schemes read parameters; elsewhere one would be silently ignored.
  if (rest.length > 0 && kind !== 'postgres' && kind !== 'mysql' && kind !== 'redis') {
    const known = sql ? ' but table=' : keyed ? ' but prefix=' : '';
    throw new StoreUrlError(`${scheme}: takes no option${known}`);
  }
  switch (kind) {
    case 'memory':
      if (after !== '' && after !== '//') throw new StoreUrlError('memory: takes nothing after it');
      return { kind };
    case 'sqlite': {
      const path = after.replace(/^\/\//, '');
      if (path === '')
        throw new StoreUrlError('sqlite: needs a file path, e.g. sqlite:data/sessions.db');
      return { kind, path, table };
    }
    case 'postgres':
    case 'mysql':
    case 'redis': {
      if (!after.startsWith('//')) throw new StoreUrlError(`${scheme}: must be ${scheme}://...`);
      if (!URL.canParse(driverUrl)) {
        throw new StoreUrlError(`${JSON.stringify(redact(driverUrl))} is not a valid URL`);
      }
      // mysql2 knows the mysql: scheme only.
      const url = kind === 'mysql' ? `mysql:${driverUrl.slice(scheme!.length + 1)}` : driverUrl;
      return kind === 'redis' ? { kind, url, prefix } : { kind, url, table };
    }
    case 'redis-cluster':
    case 'memcached': {
      if (!after.startsWith('//'))
        throw new StoreUrlError(`${scheme}: must be ${scheme}://host:port`);
      const hosts = hostList(after.slice(2).replace(/\/$/, ''), scheme!);
      return kind === 'memcached'
        ? { kind, servers: hosts.join(','), prefix }
        : { kind, hosts, prefix };
    }
  }
  throw new StoreUrlError(SCHEMES);
}

/** One Redis server, for commands no store sends (`INFO`, `TIME`): the CLI's checks use it. */
export interface RedisNode {
  /** `host:port`. */
  address: string;
  /** Sends one command and answers the server's reply. */
  command(args: string[]): Promise<unknown>;
}

interface Connected<Kind extends StoreSpec['kind']> {
  kind: Kind;
  spec: Extract<StoreSpec, { kind: Kind }>;
  /** The store and where it is, for messages; a password in the URL shows as `***`. */
  description: string;
  /** Closes the client. */
  close(): Promise<void>;
}

/**
 * The client a store URL names, open and answering, before any store is built on it: what
 * {@link storeOn} needs, and what the CLI inspects (catalogs, clocks, memory settings).
 */
export type StoreConnection =
  | Connected<'memory'>
  | (Connected<'sqlite'> & { db: Database.Database; file: string })
  | (Connected<'postgres'> & { pool: PgPool })
  | (Connected<'mysql'> & { pool: MysqlPool })
  | (Connected<'redis' | 'redis-cluster'> & {
      client: RedisStoreClient;
      /** Every server: the one of `redis://`, each master of a cluster. */
      nodes(): Promise<RedisNode[]>;
    })
  | (Connected<'memcached'> & { client: MemjsClient });

/** Options of {@link connectStore}. */
export interface ConnectOptions {
  /**
   * Create a SQLite file, and its directory, that does not exist yet. Without it a missing file
   * is refused ({@link StoreUnreachableError}), so that a mistyped path opens nothing.
   * @defaultValue true
   */
  createFile?: boolean;
}

/**
 * Socket options for a Redis client: a first connection that fails is not retried (the server is
 * down or the URL wrong: say so now), while a connection lost later is, with backoff.
 */
function redisSocket() {
  const state = { connected: false };
  const options = {
    connectTimeout: STARTUP_TIMEOUT_MS,
    socketTimeout: 10_000,
    reconnectStrategy: (retries: number, cause: Error) =>
      state.connected ? Math.min(50 * 2 ** retries, 2_000) : cause,
  };
  return { options, connected: () => void (state.connected = true) };
}

/**
 * Opens the client `spec` names and checks that the server answers (`SELECT 1`, `PING`, or
 * Memcached's `stats` on every server). Throws {@link StoreUnreachableError} when it does not,
 * having closed what it opened. Creates no table.
 */
export async function connectStore(
  spec: StoreSpec,
  options: ConnectOptions = {},
): Promise<StoreConnection> {
  switch (spec.kind) {
    case 'memory':
      return { kind: spec.kind, spec, description: 'memory', close: async () => undefined };
    case 'sqlite': {
      const { default: Sqlite } = await import('better-sqlite3');
      const inMemory = spec.path === ':memory:';
      const file = inMemory ? spec.path : resolve(spec.path);
      const description = `SQLite at ${file}`;
      const create = options.createFile ?? true;
      if (!inMemory && !create && !existsSync(file)) {
        throw new StoreUnreachableError(`${description} is unreachable: the file does not exist`);
      }
      let db: Database.Database | undefined;
      try {
        if (!inMemory && create) mkdirSync(dirname(file), { recursive: true });
        db = new Sqlite(file, { fileMustExist: !create });
        // Reading the schema is what fails on a file that is not a database.
        db.prepare('SELECT count(*) FROM sqlite_master').get();
      } catch (error) {
        db?.close();
        throw new StoreUnreachableError(`${description} is unreachable: ${messageOf(error)}`);
      }
      const opened = db;
      return {
        kind: spec.kind,
        spec,
        db,
        file,
        description,
        close: async () => void opened.close(),
      };
    }
    case 'postgres': {
      const { default: pg } = await import('pg');
      const pool = new pg.Pool({
        connectionString: spec.url,
        connectionTimeoutMillis: STARTUP_TIMEOUT_MS,
        max: 10,
      });
      pool.on('error', () => undefined);
      const description = `PostgreSQL at ${redact(spec.url)}`;
      const close = () => pool.end();
      await answering(description, () => pool.query('SELECT 1'), close);
      return { kind: spec.kind, spec, pool, description, close };
    }
    case 'mysql': {
      const mysql = await import('mysql2/promise');
      const pool = mysql.createPool({
        uri: spec.url,
        connectTimeout: STARTUP_TIMEOUT_MS,
        connectionLimit: 10,
      });
      const description = `MySQL at ${redact(spec.url)}`;
      const close = () => pool.end();
      await answering(description, () => pool.query('SELECT 1'), close);
      return { kind: spec.kind, spec, pool, description, close };
    }
    case 'redis': {
      const { createClient } = await import('redis');
      const socket = redisSocket();
      const client = createClient({
        url: spec.url,
        disableOfflineQueue: true,
        pingInterval: 5_000,
        socket: socket.options,
      });
      client.on('error', () => undefined);
      const description = `Redis at ${redact(spec.url)}`;
      const close = async () => client.destroy();
      await answering(description, () => client.connect(), close);
      socket.connected();
      const address = new URL(spec.url).host;
      const node: RedisNode = { address, command: (args) => client.sendCommand(args) };
      return { kind: spec.kind, spec, client, nodes: async () => [node], description, close };
    }
    case 'redis-cluster': {
      const { createCluster } = await import('redis');
      const socket = redisSocket();
      const cluster = createCluster({
        rootNodes: spec.hosts.map((host) => ({ url: `redis://${host}` })),
        defaults: { disableOfflineQueue: true, pingInterval: 5_000, socket: socket.options },
      });
      cluster.on('error', () => undefined);
      const description = `Redis Cluster at ${spec.hosts.join(',')}`;
      const close = async () => cluster.destroy();
      await answering(description, () => cluster.connect(), close);
      socket.connected();
      const nodes = () =>
        Promise.all(
          cluster.masters.map(async (master): Promise<RedisNode> => {
            const client = await cluster.nodeClient(master);
            return { address: master.address, command: (args) => client.sendCommand(args) };
          }),
        );
      return { kind: spec.kind, spec, client: cluster, nodes, description, close };
    }
    case 'memcached': {
      const { default: memjs } = await import('memjs');
      const client = memjs.Client.create(spec.servers, {
        timeout: 1,
        conntimeout: 2,
        retries: 1,
        logger: { log: () => undefined },
      });
      const description = `Memcached at ${spec.servers}`;
      const close = async () => client.close();
      await answering(description, () => memcachedStats(client), close);
      return { kind: spec.kind, spec, client, description, close };
    }
  }
}

/** Runs `check` within the start-up timeout; on failure closes the client and throws. */
async function answering(
  description: string,
  check: () => Promise<unknown>,
  close: () => Promise<unknown>,
): Promise<void> {
  try {
    await within(description, check());
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}

/** Memcached's `stats` of every server of `client`, by `host:port`; rejects if one fails. */
export function memcachedStats(client: MemjsClient): Promise<Map<string, Record<string, string>>> {
  const servers = (client as unknown as { servers: unknown[] }).servers.length;
  return new Promise((resolve, reject) => {
    const answers = new Map<string, Record<string, string>>();
    client.stats((error, server, stats) => {
      if (error !== null || stats === null) {
        reject(error ?? new Error(`no stats from ${server}`));
        return;
      }
      answers.set(server, stats);
      if (answers.size === servers) resolve(answers);
    });
  });
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
      const client = connection.client;
      return new MemcachedStore({ client, prefix: connection.spec.prefix });
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
