/**
 * The servers the stores talk to: a private redis-server (so its command counts are the bench's
 * alone), a private memcached when the binary exists, and the machine's PostgreSQL and MariaDB,
 * in which the bench only touches tables named after its own run. Everything the bench creates
 * is removed at the end.
 *
 * @packageDocumentation
 */
import { createClient } from 'redis';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { RedisServerProcess, redisBinariesAvailable } from '../test/support/redis-server.js';
import { MemcachedServer, memcachedInstalled } from '../test/support/memcached-server.js';
import type { ServiceEndpoints } from './protocol.js';
import type { StoreKind } from './contenders.js';

/** The services found, why the missing ones are missing, and how to count Redis commands. */
export interface Services {
  endpoints: ServiceEndpoints;
  /** Why a store's service is unavailable, by store. */
  unavailable: Partial<Record<StoreKind, string>>;
  /** How Redis was provided, for the report. */
  redisNote: string;
  /** Redis `INFO commandstats` calls by command, or `null` without Redis. */
  redisCommandStats(): Promise<Record<string, number> | null>;
  /** Drops the bench's tables and keys and stops the private servers. */
  close(namespace: string): Promise<void>;
}

type Log = (line: string) => void;

function fromUrl(url: string, fallbackPort: number) {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: parsed.port === '' ? fallbackPort : Number(parsed.port),
    user: decodeURIComponent(parsed.username),
    ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
    database: parsed.pathname.replace(/^\//, '') || 'test',
  };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Parses `INFO commandstats` into calls by command (`cmdstat_get:calls=3,...` gives get: 3). */
export function parseCommandStats(info: string): Record<string, number> {
  const calls: Record<string, number> = {};
  for (const line of info.split(/\r?\n/)) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (match !== null) calls[match[1]!] = Number(match[2]);
  }
  return calls;
}

/**
 * Deletes the keys under `<namespace>:` and no other: SCAN and UNLINK, never FLUSHALL, since the
 * server may be the machine's shared one.
 */
export async function deleteKeys(
  client: ReturnType<typeof createClient>,
  namespace: string,
): Promise<void> {
  for await (const keys of client.scanIterator({ MATCH: `${namespace}:*`, COUNT: 1000 })) {
    if (keys.length > 0) await client.unlink(keys);
  }
}

/**
 * Finds or starts the services the contenders need. `BENCH_POSTGRES_URL`, `BENCH_MYSQL_URL` and
 * `BENCH_REDIS_URL` override the defaults (PostgreSQL `postgres@127.0.0.1:5432/test`, MariaDB
 * `root@127.0.0.1:3306/test`, a private redis-server, falling back to `127.0.0.1:6379`).
 */
export async function startServices(needed: ReadonlySet<StoreKind>, log: Log): Promise<Services> {
  const endpoints: ServiceEndpoints = {};
  const unavailable: Partial<Record<StoreKind, string>> = {};
  let redisServer: RedisServerProcess | undefined;
  let memcachedServer: MemcachedServer | undefined;
  let redisNote = '';

  if (needed.has('postgres')) {
    const config = fromUrl(
      process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
      5432,
    );
    const client = new pg.Client({ ...config, connectionTimeoutMillis: 3_000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      endpoints.postgres = config;
    } catch (error) {
      unavailable.postgres = `PostgreSQL at ${config.host}:${config.port} is not reachable: ${message(error)}`;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  if (needed.has('mysql')) {
    const config = fromUrl(process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test', 3306);
    try {
      const connection = await mysql.createConnection({ ...config, connectTimeout: 3_000 });
      await connection.query('SELECT 1');
      await connection.end();
      endpoints.mysql = config;
    } catch (error) {
      unavailable.mysql = `MySQL at ${config.host}:${config.port} is not reachable: ${message(error)}`;
    }
  }

  if (needed.has('redis')) {
    if (process.env.BENCH_REDIS_URL !== undefined) {
      endpoints.redisUrl = process.env.BENCH_REDIS_URL;
      redisNote = `the Redis at ${endpoints.redisUrl} (BENCH_REDIS_URL); its command counts include any other traffic`;
    } else if ((await redisBinariesAvailable()) === true) {
      try {
        redisServer = await RedisServerProcess.start();
        endpoints.redisUrl = redisServer.url;
        redisNote =
          'a private redis-server started by the harness on a free port (no persistence), so its command counts are exact';
      } catch (error) {
        log(`could not start a private redis-server (${message(error)}); using 127.0.0.1:6379`);
      }
    }
    if (endpoints.redisUrl === undefined) {
      endpoints.redisUrl = 'redis://127.0.0.1:6379';
      redisNote =
        'the shared Redis at 127.0.0.1:6379; its command counts include other traffic during the runs';
    }
    const probe = createClient({
      url: endpoints.redisUrl,
      disableOfflineQueue: true,
      socket: { reconnectStrategy: false },
    });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
    } catch (error) {
      unavailable.redis = `Redis at ${endpoints.redisUrl} is not reachable: ${message(error)}`;
      delete endpoints.redisUrl;
    } finally {
      if (probe.isOpen) probe.destroy();
    }
  }

  if (needed.has('memcached')) {
    const installed = memcachedInstalled();
    if (installed !== true) unavailable.memcached = installed;
    else {
      try {
        memcachedServer = await MemcachedServer.start();
        endpoints.memcached = { host: '127.0.0.1', port: memcachedServer.port };
      } catch (error) {
        unavailable.memcached = `a private memcached did not start: ${message(error)}`;
      }
    }
  }

  let statsClient: ReturnType<typeof createClient> | undefined;
  const redisCommandStats = async (): Promise<Record<string, number> | null> => {
    if (endpoints.redisUrl === undefined) return null;
    if (statsClient === undefined) {
      statsClient = createClient({ url: endpoints.redisUrl });
      statsClient.on('error', () => undefined);
      await statsClient.connect();
    }
    return parseCommandStats(await statsClient.info('commandstats'));
  };

  const close = async (namespace: string): Promise<void> => {
    const tables = ['tessera', 'cps', 'ems'].map((suffix) => `${namespace}_${suffix}`);
    if (endpoints.postgres !== undefined) {
      const client = new pg.Client({ ...endpoints.postgres, connectionTimeoutMillis: 3_000 });
      try {
        await client.connect();
        for (const table of tables) await client.query(`DROP TABLE IF EXISTS "${table}"`);
      } catch (error) {
        log(`could not drop the bench's PostgreSQL tables: ${message(error)}`);
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    if (endpoints.mysql !== undefined) {
      try {
        const connection = await mysql.createConnection({
          ...endpoints.mysql,
          connectTimeout: 3_000,
        });
        for (const table of tables) await connection.query(`DROP TABLE IF EXISTS \`${table}\``);
        await connection.end();
      } catch (error) {
        log(`could not drop the bench's MySQL tables: ${message(error)}`);
      }
    }
    if (endpoints.redisUrl !== undefined) {
      try {
        statsClient ??= createClient({ url: endpoints.redisUrl });
        statsClient.on('error', () => undefined);
        if (!statsClient.isOpen) await statsClient.connect();
        await deleteKeys(statsClient, namespace);
      } catch (error) {
        log(`could not delete the bench's Redis keys: ${message(error)}`);
      }
    }
    if (statsClient?.isOpen === true) statsClient.destroy();
    await redisServer?.stop();
    await memcachedServer?.stop();
  };

  return { endpoints, unavailable, redisNote, redisCommandStats, close };
}
