/**
 * Opens the store a `SESSION_STORE` URL names, with the client the demo creates for it:
 * `memory:`, `sqlite:PATH`, `postgres://...`, `mysql://...`, `redis://...`,
 * `redis-cluster://host:port,host:port,...` and `memcached://host:port`. The URL is read whole
 * ({@link parseStoreUrl}) before anything is opened, so a bad one opens no connection.
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
 * The query of a store URL split into the demo's own options (`table`, `prefix`) and the rest,
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

/**
 * Opens the store for `url` (see {@link parseStoreUrl}). Throws {@link StoreUrlError} for a URL
 * it cannot use or a server that does not answer.
 */
export async function openStore(original: string): Promise<OpenedStore> {
  const spec = parseStoreUrl(original);
  switch (spec.kind) {
    case 'memory': {
      const { MemoryStore } = await import('../../src/stores/memory.js');
      const store = new MemoryStore();
      return { store, description: 'memory', close: () => store.close() };
    }
    case 'sqlite': {
      const { default: Database } = await import('better-sqlite3');
      const { SqliteStore } = await import('../../src/stores/sqlite.js');
      const file = spec.path === ':memory:' ? spec.path : resolve(spec.path);
      if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
      const db = new Database(file);
      const store = new SqliteStore({ db, table: spec.table });
      return {
        store,
        description: `SQLite at ${file}`,
        close: closeStoreThenClient(store, () => db.close()),
      };
    }
    case 'postgres': {
      const { default: pg } = await import('pg');
      const { PostgresStore } = await import('../../src/stores/postgres.js');
      const pool = new pg.Pool({
        connectionString: spec.url,
        connectionTimeoutMillis: STARTUP_TIMEOUT_MS,
        max: 10,
      });
      pool.on('error', () => undefined);
      const store = new PostgresStore({ pool, table: spec.table });
      return probe(
        {
          store,
          description: `PostgreSQL at ${redact(spec.url)}`,
          close: closeStoreThenClient(store, () => pool.end()),
        },
        () => store.createTable(),
      );
    }
    case 'mysql': {
      const mysql = await import('mysql2/promise');
      const { MysqlStore } = await import('../../src/stores/mysql.js');
      const pool = mysql.createPool({
        uri: spec.url,
        connectTimeout: STARTUP_TIMEOUT_MS,
        connectionLimit: 10,
      });
      const store = new MysqlStore({ pool, table: spec.table });
      return probe(
        {
          store,
          description: `MySQL at ${redact(spec.url)}`,
          close: closeStoreThenClient(store, () => pool.end()),
        },
        () => store.createTable(),
      );
    }
    case 'redis': {
      const { createClient } = await import('redis');
      const { RedisStore } = await import('../../src/stores/redis.js');
      const client = createClient({
        url: spec.url,
        disableOfflineQueue: true,
        pingInterval: 5_000,
        socket: {
          connectTimeout: STARTUP_TIMEOUT_MS,
          socketTimeout: 10_000,
          reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2_000),
        },
      });
      client.on('error', () => undefined);
      const description = `Redis at ${redact(spec.url)}`;
      await within(description, client.connect()).catch(async (error: unknown) => {
        await client.destroy();
        throw error;
      });
      const store = new RedisStore({ client, prefix: spec.prefix });
      return probe({
        store,
        description,
        close: closeStoreThenClient(store, () => client.destroy()),
      });
    }
    case 'redis-cluster': {
      const { createCluster } = await import('redis');
      const { RedisStore } = await import('../../src/stores/redis.js');
      const cluster = createCluster({
        rootNodes: spec.hosts.map((host) => ({ url: `redis://${host}` })),
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
      const description = `Redis Cluster at ${spec.hosts.join(',')}`;
      await within(description, cluster.connect()).catch(async (error: unknown) => {
        await cluster.destroy();
        throw error;
      });
      const store = new RedisStore({ client: cluster, prefix: spec.prefix });
      return probe({
        store,
        description,
        close: closeStoreThenClient(store, () => cluster.destroy()),
      });
    }
    case 'memcached': {
      const { default: memjs } = await import('memjs');
      const { MemcachedStore } = await import('../../src/stores/memcached.js');
      const client = memjs.Client.create(spec.servers, {
        timeout: 1,
        conntimeout: 2,
        retries: 1,
        logger: { log: () => undefined },
      });
      const store = new MemcachedStore({ client: client as never, prefix: spec.prefix });
      return probe({
        store,
        description: `Memcached at ${spec.servers}`,
        close: closeStoreThenClient(store, () => client.close()),
      });
    }
  }
}
