/**
 * Opening the client a store URL names and checking that its server answers, within a start-up
 * timeout; nothing is created on the server. See {@link connectStore}.
 *
 * @packageDocumentation
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type Database from 'better-sqlite3';
import type { Client as MemjsClient } from 'memjs';
import type { Pool as MysqlPool } from 'mysql2/promise';
import type { Pool as PgPool } from 'pg';
import type { RedisStoreClient } from '../stores/redis.js';
import { redact, StoreUnreachableError, StoreUrlError, type StoreSpec } from './parse.js';

const STARTUP_TIMEOUT_MS = 5_000;

/** `promise`, or {@link StoreUnreachableError} naming `what` when it fails or takes too long. */
export async function within<T>(what: string, promise: Promise<T>): Promise<T> {
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
