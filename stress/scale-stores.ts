/**
 * The stores of the scale run: each opened through its public API on a table or server of the
 * run's own, with a bulk loader for the set-up (the SQL client's multi-row inserts, or many
 * store calls in flight), the query plans of the statements the store sent, and its size on
 * the server. Redis and Memcached are private servers on free loopback ports.
 */
import type { Pool as MysqlPool } from 'mysql2/promise';
import { hasUserIndex, type SessionStore, type UserIndex } from '../src/store.js';
import { MemcachedServer } from '../test/support/memcached-server.js';
import { RedisServerProcess, redisCli } from '../test/support/redis-server.js';
import { PrivateMariadb, bufferPoolFor } from './scale-mariadb.js';
import { inParallel, scaleKey, scaleRecord } from './scale-measure.js';
import { openSqlite } from './scale-sqlite.js';
import { MARIADB, POSTGRES } from './stores.js';

/** The stores the scale run knows. */
export type ScaleKind = 'memory' | 'sqlite' | 'postgres' | 'mysql' | 'redis' | 'memcached';

export const SCALE_KINDS: readonly ScaleKind[] = [
  'memory',
  'sqlite',
  'postgres',
  'mysql',
  'redis',
  'memcached',
];

/** One statement the store sent, and the plan its server chose for it. */
export interface Plan {
  sql: string;
  /** The plan, one line per step; for PostgreSQL the custom and the generic plan. */
  plan: string[];
  /** Whether every table access in the plan goes through an index. */
  indexed: boolean;
}

/** The prune statements of a store whose statements run on the event loop. */
export interface PruneSteps {
  count: number;
  /** Wall time per statement, in milliseconds: how long the event loop was held. */
  wallMs: { p50: number; p99: number; max: number };
  /**
   * The same without the time the thread sat ready while the machine ran other processes
   * (Linux's `/proc/thread-self/schedstat`): the statement's own work and its waits for the
   * disk. On a busy machine this is the hold the store causes; elsewhere it equals the wall time.
   */
  ownMs: { p50: number; p99: number; max: number };
}

/** An open store of the scale run. */
export interface ScaleStore {
  kind: ScaleKind;
  store: SessionStore & UserIndex;
  /** Stores sessions `from` … `to` − 1 (expired ones when `expired`) in bulk. */
  load(from: number, to: number, base: number, expired?: boolean): Promise<void>;
  /** Refreshes the planner's statistics (`ANALYZE`), where the server keeps them. */
  analyze(): Promise<void>;
  /** The plans of every statement the store has sent so far. */
  plans(): Promise<Plan[]>;
  /**
   * The prune statements since the last call, for a store whose statements run on the event
   * loop (SQLite); `undefined` elsewhere.
   */
  pruneSteps(): PruneSteps | undefined;
  /** What the sessions take on the server (table and indexes, or memory), in bytes. */
  size(): Promise<number | undefined>;
  /** Closes the store and its client, drops the table or stops the private server. */
  close(): Promise<void>;
}

/** The largest number of sessions one run may hold (the memory store's bound is set from it). */
export interface OpenOptions {
  capacity: number;
  /** The table name or key prefix. */
  name: string;
  /** Apply SQLITE_TUNING (stress/scale-sqlite.ts) to the SQLite file. */
  sqliteTuned: boolean;
  /** Use the shared MariaDB server as it is, rather than a private one with a sized buffer pool. */
  mysqlShared: boolean;
}

/** Runs `op` and closes `client`, whatever happens. */
async function using<C extends { end(): Promise<unknown> }, T>(
  client: C,
  op: (client: C) => Promise<T>,
): Promise<T> {
  try {
    return await op(client);
  } finally {
    await client.end();
  }
}

/** A client that runs one statement with values: a `pg` or a `mysql2/promise` pool. */
interface Querying {
  query(sql: string, values: unknown[]): Promise<unknown>;
}

/** Stores sessions `from` … `to` − 1 (expired ones when `expired`) in `table` (quoted). */
type SqlLoader = (
  pool: Querying,
  table: string,
  from: number,
  to: number,
  base: number,
  expired?: boolean,
) => Promise<void>;

/** Loads a PostgreSQL table, 5,000 sessions to a statement, four statements at once. */
export const loadPostgres: SqlLoader = async (pool, table, from, to, base, expired = false) => {
  const step = 5_000;
  await inParallel(Math.ceil((to - from) / step), 4, async (b) => {
    const cols: [string[], string[], number[], (string | null)[]] = [[], [], [], []];
    for (let i = from + b * step; i < Math.min(to, from + (b + 1) * step); i++) {
      const record = scaleRecord(i, base, expired);
      cols[0].push(scaleKey(i, expired));
      cols[1].push(record.data);
      cols[2].push(record.expiresAt);
      cols[3].push(record.userId);
    }
    await pool.query(
      `INSERT INTO ${table} (key, data, expires_at, version, user_id)
       SELECT k, d, e, 1, u FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) AS x(k, d, e, u)`,
      cols,
    );
  });
};

/** Loads a MariaDB table, 2,000 sessions to a statement, two statements at once. */
export const loadMysql: SqlLoader = async (pool, table, from, to, base, expired = false) => {
  const step = 2_000;
  await inParallel(Math.ceil((to - from) / step), 2, async (b) => {
    const rows: unknown[][] = [];
    for (let i = from + b * step; i < Math.min(to, from + (b + 1) * step); i++) {
      const record = scaleRecord(i, base, expired);
      rows.push([scaleKey(i, expired), record.data, record.expiresAt, 1, record.userId]);
    }
    await pool.query(
      `INSERT INTO ${table} (\`key\`, data, expires_at, version, user_id) VALUES ?`,
      [rows],
    );
  });
};

/**
 * A mysql2 pool on a private MariaDB server with the buffer pool docs/stores/mysql.md recommends
 * for `capacity` sessions (its `test` database created), or on the shared server (`shared`).
 * Stop `server`, if any, after ending the pool.
 */
export async function openMariadbPool(
  capacity: number,
  shared: boolean,
): Promise<{ pool: MysqlPool; server: PrivateMariadb | undefined }> {
  const mysql = await import('mysql2/promise');
  const server = shared ? undefined : await PrivateMariadb.start(bufferPoolFor(capacity));
  const endpoint = { ...MARIADB, port: server?.port ?? MARIADB.port };
  if (server !== undefined) {
    const { database, ...serverOnly } = endpoint;
    const setup = await mysql.createConnection(serverOnly);
    await setup.query(`CREATE DATABASE IF NOT EXISTS \`${database}\``);
    await setup.end();
  }
  const pool = mysql.createPool({ ...endpoint, connectionLimit: 10, connectTimeout: 5_000 });
  return { pool, server };
}

async function openPostgres(name: string): Promise<ScaleStore> {
  const { default: pg } = await import('pg');
  const { PostgresStore } = await import('../src/stores/postgres.js');
  const pool = new pg.Pool({ ...POSTGRES, max: 10, connectionTimeoutMillis: 5_000 });
  pool.on('error', () => undefined);
  const sent = new Map<string, unknown[]>();
  const recording = {
    query(arg: string | { text: string; values: unknown[] }, values?: unknown[]) {
      if (typeof arg === 'string') sent.set(arg, values ?? []);
      else sent.set(arg.text, arg.values);
      return pool.query(arg as string, values);
    },
  };
  const store = new PostgresStore({ pool: recording, table: name, pruneInterval: 0 });
  await store.createTable();
  sent.clear();
  const table = `"${name}"`;
  return {
    kind: 'postgres',
    store,
    load: (from, to, base, expired = false) => loadPostgres(pool, table, from, to, base, expired),
    async analyze() {
      await pool.query(`ANALYZE ${table}`);
    },
    async plans() {
      return using(new pg.Client(POSTGRES), async (client) => {
        await client.connect();
        const plans: Plan[] = [];
        for (const [sql, values] of sent) {
          if (sql.startsWith('DO ')) continue;
          await client.query(`PREPARE tessera_scale_plan AS ${sql}`);
          const args = values
            .map((v) => (v === null ? 'NULL' : client.escapeLiteral(String(v))))
            .join(', ');
          const plan: string[] = [];
          for (const mode of ['force_custom_plan', 'force_generic_plan']) {
            await client.query(`SET plan_cache_mode = ${mode}`);
            const { rows } = await client.query<{ 'QUERY PLAN': string }>(
              `EXPLAIN (COSTS OFF) EXECUTE tessera_scale_plan(${args})`,
            );
            plan.push(`-- ${mode}`, ...rows.map((row) => row['QUERY PLAN']));
          }
          await client.query('DEALLOCATE tessera_scale_plan');
          plans.push({ sql, plan, indexed: !plan.some((line) => /Seq Scan/.test(line)) });
        }
        return plans;
      });
    },
    pruneSteps: () => undefined,
    async size() {
      const { rows } = await pool.query<{ n: string }>(
        `SELECT pg_total_relation_size('${table}') AS n`,
      );
      return Number(rows[0]!.n);
    },
    async close() {
      await store.close();
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
    },
  };
}

/**
 * MariaDB: a private server with the buffer pool docs/stores/mysql.md recommends for `capacity`
 * sessions, or the shared one as it is configured (`shared`).
 */
async function openMysql(name: string, capacity: number, shared: boolean): Promise<ScaleStore> {
  const { MysqlStore } = await import('../src/stores/mysql.js');
  const { pool, server } = await openMariadbPool(capacity, shared);
  const sent = new Map<string, unknown[]>();
  const recording = {
    execute(sql: string, values?: unknown[]) {
      sent.set(sql, values ?? []);
      return pool.execute(sql, values as never);
    },
    query: (sql: string) => pool.query(sql),
  };
  const store = new MysqlStore({ pool: recording, table: name, pruneInterval: 0 });
  await store.createTable();
  const table = `\`${name}\``;
  return {
    kind: 'mysql',
    store,
    load: (from, to, base, expired = false) => loadMysql(pool, table, from, to, base, expired),
    async analyze() {
      await pool.query(`ANALYZE TABLE ${table}`);
    },
    async plans() {
      const plans: Plan[] = [];
      for (const [sql, values] of sent) {
        const [rows] = await pool.query(`EXPLAIN ${sql}`, values);
        const steps = (rows as Record<string, unknown>[]).map((row) =>
          `${String(row.select_type)} ${String(row.table)}: type=${String(row.type)} key=${String(row.key)} rows=${String(row.rows)} ${String(row.Extra ?? '')}`.trim(),
        );
        plans.push({
          sql,
          plan: steps,
          // EXPLAIN of an INSERT shows "ALL" for the row it adds; it reads nothing.
          indexed: (rows as Record<string, unknown>[]).every(
            (row) =>
              row.table === null ||
              row.select_type === 'INSERT' ||
              (row.type !== 'ALL' && row.key !== null),
          ),
        });
      }
      return plans;
    },
    pruneSteps: () => undefined,
    async size() {
      const [rows] = await pool.query(
        `SELECT data_length + index_length AS n FROM information_schema.tables
         WHERE table_schema = DATABASE() AND table_name = ?`,
        [name],
      );
      return Number((rows as { n: unknown }[])[0]?.n ?? 0);
    },
    async close() {
      await store.close();
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
      await server?.stop();
    },
  };
}

async function openRedis(name: string): Promise<ScaleStore> {
  const { createClient } = await import('redis');
  const { RedisStore } = await import('../src/stores/redis.js');
  const server = await RedisServerProcess.start();
  const client = createClient({ socket: { host: '127.0.0.1', port: server.port } });
  client.on('error', () => undefined);
  await client.connect();
  const store = new RedisStore({ client, prefix: `${name}:` });
  const usedMemory = async () =>
    Number(/used_memory:(\d+)/.exec(await redisCli(server.port, ['INFO', 'memory']))![1]);
  const empty = await usedMemory();
  return {
    kind: 'redis',
    store,
    load: (from, to, base) =>
      inParallel(to - from, 256, (n) =>
        store.create(scaleKey(from + n), scaleRecord(from + n, base)),
      ),
    analyze: async () => undefined,
    plans: async () => [],
    pruneSteps: () => undefined,
    size: async () => (await usedMemory()) - empty,
    async close() {
      await client.close();
      await server.stop();
    },
  };
}

async function openMemcached(name: string, capacity: number): Promise<ScaleStore> {
  const { default: memjs } = await import('memjs');
  const { MemcachedStore } = await import('../src/stores/memcached.js');
  // About 1 KiB per session and its share of a user index, with room to spare.
  const megabytes = Math.max(64, Math.ceil((capacity * 1_024) / 1_048_576) * 2);
  const server = await MemcachedServer.start(['-m', String(megabytes)]);
  const client = memjs.Client.create(`127.0.0.1:${server.port}`, {
    timeout: 5,
    logger: { log: () => undefined },
  });
  const store = new MemcachedStore({ client, prefix: `${name}:`, userIndex: 'best-effort' });
  if (!hasUserIndex(store)) throw new Error('MemcachedStore: no user index');
  return {
    kind: 'memcached',
    store,
    load: (from, to, base) =>
      inParallel(to - from, 128, (n) =>
        store.create(scaleKey(from + n), scaleRecord(from + n, base)),
      ),
    analyze: async () => undefined,
    plans: async () => [],
    pruneSteps: () => undefined,
    size: async () => undefined,
    async close() {
      client.close();
      await server.stop();
    },
  };
}

async function openMemory(capacity: number): Promise<ScaleStore> {
  const { MemoryStore } = await import('../src/stores/memory.js');
  const store = new MemoryStore({ maxSessions: capacity, sweepInterval: 0 });
  return {
    kind: 'memory',
    store,
    async load(from, to, base, expired = false) {
      for (let i = from; i < to; i++)
        store.create(scaleKey(i, expired), scaleRecord(i, base, expired));
    },
    analyze: async () => undefined,
    plans: async () => [],
    pruneSteps: () => undefined,
    size: async () => undefined,
    close: () => store.close(),
  };
}

/** Opens a store of `kind` on its own table, prefix or private server. */
export function openScaleStore(kind: ScaleKind, options: OpenOptions): Promise<ScaleStore> {
  switch (kind) {
    case 'memory':
      return openMemory(options.capacity);
    case 'sqlite':
      return openSqlite(options.name, options.sqliteTuned);
    case 'postgres':
      return openPostgres(options.name);
    case 'mysql':
      return openMysql(options.name, options.capacity, options.mysqlShared);
    case 'redis':
      return openRedis(options.name);
    case 'memcached':
      return openMemcached(options.name, options.capacity);
  }
}
