/**
 * What the CLI asks a store's server directly, beside the store's own operations: the SQL
 * table's shape, cheap counts, the server's version and clock; Redis's `INFO` and `TIME`;
 * Memcached's `stats`.
 *
 * @packageDocumentation
 */
import type { StoreConnection } from '../store-url.js';
import { memcachedStats } from '../store-url.js';
import { DEFAULT_TABLE } from '../stores/shared.js';

/** A SQL store's connection. */
export type SqlConnection = Extract<StoreConnection, { kind: 'sqlite' | 'postgres' | 'mysql' }>;

/** Whether a store URL's kind names a SQL store. */
export function isSqlKind(kind: StoreConnection['kind']): kind is SqlConnection['kind'] {
  return kind === 'sqlite' || kind === 'postgres' || kind === 'mysql';
}

/** Whether the connection is to a SQL store. */
export function isSql(connection: StoreConnection): connection is SqlConnection {
  return isSqlKind(connection.kind);
}

/** The columns every SQL store's table has. */
export const COLUMNS = ['key', 'data', 'expires_at', 'version', 'user_id'] as const;

/** What the catalog says of the session table. */
export interface TableShape {
  /** Its columns, by name. */
  columns: Set<string>;
  /** The first column of each of its indexes: an index serves a lookup on that column. */
  indexed: Set<string>;
}

/** Live sessions, the users they belong to, and expired rows not yet pruned. */
export interface Counts {
  sessions: number;
  users: number;
  expired: number;
}

type Row = Record<string, unknown>;

/** Reads a SQL store's catalog, counts and clock, on the application's table. */
export class SqlInspector {
  /** The table, as the URL named it (or the stores' default). */
  readonly table: string;
  readonly #connection: SqlConnection;
  /** The table quoted for SQL: `"app"."sessions"`, or with backquotes on MySQL. */
  readonly #quoted: string;

  constructor(connection: SqlConnection) {
    this.#connection = connection;
    this.table = connection.spec.table ?? DEFAULT_TABLE;
    // The URL parser let through letters, digits, underscores and one dot: nothing to escape.
    const quote = connection.kind === 'mysql' ? '`' : '"';
    this.#quoted = this.table
      .split('.')
      .map((part) => `${quote}${part}${quote}`)
      .join('.');
  }

  /** Runs `sql`, written with `?` placeholders, and answers its rows. */
  async #rows(sql: string, values: unknown[] = []): Promise<Row[]> {
    const connection = this.#connection;
    switch (connection.kind) {
      case 'sqlite':
        return connection.db.prepare(sql).all(...values) as Row[];
      case 'postgres': {
        let n = 0;
        const text = sql.replace(/\?/g, () => `$${++n}`);
        return (await connection.pool.query(text, values)).rows as Row[];
      }
      case 'mysql': {
        const [rows] = await connection.pool.execute(sql, values as (string | number | null)[]);
        return rows as Row[];
      }
    }
  }

  async #number(sql: string, values: unknown[]): Promise<number> {
    const [row] = await this.#rows(sql, values);
    return Number(Object.values(row ?? {})[0] ?? 0);
  }

  /** The server's version: `PostgreSQL 16.4`, `MariaDB 11.4.2`, `SQLite 3.46.1`. */
  async version(): Promise<string> {
    switch (this.#connection.kind) {
      case 'sqlite':
        return `SQLite ${String((await this.#rows('SELECT sqlite_version() AS v'))[0]?.v)}`;
      case 'postgres':
        return `PostgreSQL ${String((await this.#rows('SHOW server_version'))[0]?.server_version)}`;
      case 'mysql': {
        const version = String((await this.#rows('SELECT VERSION() AS v'))[0]?.v);
        return /mariadb/i.test(version)
          ? `MariaDB ${version.replace(/-MariaDB.*$/i, '')}`
          : `MySQL ${version}`;
      }
    }
  }

  /** The table's columns and indexed columns, or `null` when there is no such table. */
  async shape(): Promise<TableShape | null> {
    const [columns, indexed] = await this.#catalog();
    if (columns.length === 0) return null;
    const names = (rows: Row[]) => new Set(rows.map((row) => String(row.col).toLowerCase()));
    return { columns: names(columns), indexed: names(indexed) };
  }

  #catalog(): Promise<[Row[], Row[]]> {
    switch (this.#connection.kind) {
      case 'sqlite':
        return Promise.all([
          this.#rows('SELECT name AS col FROM pragma_table_info(?)', [this.table]),
          this.#rows(
            `SELECT ii.name AS col FROM pragma_index_list(?) AS il, pragma_index_info(il.name) AS ii
             WHERE ii.seqno = 0`,
            [this.table],
          ),
        ]);
      case 'postgres':
        return Promise.all([
          this.#rows(
            `SELECT attname AS col FROM pg_attribute
             WHERE attrelid = to_regclass(?) AND attnum > 0 AND NOT attisdropped`,
            [this.#quoted],
          ),
          this.#rows(
            `SELECT a.attname AS col FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = to_regclass(?)`,
            [this.#quoted],
          ),
        ]);
      case 'mysql': {
        const parts = this.table.split('.');
        const where = [parts.length === 2 ? parts[0]! : null, parts[parts.length - 1]!];
        return Promise.all([
          this.#rows(
            `SELECT column_name AS col FROM information_schema.columns
             WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?`,
            where,
          ),
          this.#rows(
            `SELECT column_name AS col FROM information_schema.statistics
             WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND seq_in_index = 1`,
            where,
          ),
        ]);
      }
    }
  }

  /**
   * Counts at `now`: live rows and expired rows over the expiry index, and the distinct users of
   * live rows.
   */
  async counts(now: number): Promise<Counts> {
    const t = this.#quoted;
    return {
      sessions: await this.#number(`SELECT COUNT(*) FROM ${t} WHERE expires_at > ?`, [now]),
      users: await this.#number(
        `SELECT COUNT(DISTINCT user_id) FROM ${t} WHERE expires_at > ? AND user_id IS NOT NULL`,
        [now],
      ),
      expired: await this.expired(now),
    };
  }

  /** The rows expired at `now` (not yet pruned), counted over the expiry index. */
  expired(now: number): Promise<number> {
    return this.#number(`SELECT COUNT(*) FROM ${this.#quoted} WHERE expires_at <= ?`, [now]);
  }

  /** The database server's clock, in epoch milliseconds; `null` for SQLite, which has none of its own. */
  async clock(): Promise<number | null> {
    switch (this.#connection.kind) {
      case 'sqlite':
        return null;
      case 'postgres':
        return this.#number('SELECT extract(epoch from clock_timestamp()) * 1000 AS now', []);
      case 'mysql':
        return this.#number('SELECT UNIX_TIMESTAMP(CURRENT_TIMESTAMP(3)) * 1000 AS now', []);
    }
  }
}

/** The fields of a Redis `INFO` reply, by name (`maxmemory_policy`, `redis_version`, ...). */
export function parseInfo(reply: unknown): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of String(reply).split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** A server's clock against this machine's, measured around one request. */
export interface ClockReading {
  /** How far the server's clock is ahead of this machine's (behind when negative), in ms. */
  offset: number;
  /** Half the request's round trip: the offset is known to within this, in ms. */
  uncertainty: number;
}

/** Reads a server's clock (epoch ms) through `read` and compares it with this machine's. */
export async function readClock(read: () => Promise<number>): Promise<ClockReading> {
  const before = Date.now();
  const server = await read();
  const after = Date.now();
  return { offset: server - (before + after) / 2, uncertainty: (after - before) / 2 };
}

/** A Redis connection, single server or cluster. */
export type RedisConnection = Extract<StoreConnection, { kind: 'redis' | 'redis-cluster' }>;

/** The keys on every server of a Redis connection, all databases and prefixes (`INFO keyspace`). */
export async function redisKeys(connection: RedisConnection): Promise<number> {
  let total = 0;
  for (const node of await connection.nodes()) {
    for (const [name, value] of parseInfo(await node.command(['INFO', 'keyspace']))) {
      if (/^db[0-9]+$/.test(name)) total += Number(/(?:^|,)keys=([0-9]+)/.exec(value)?.[1] ?? 0);
    }
  }
  return total;
}

/** The items on every server of a Memcached connection (`stats` curr_items). */
export async function memcachedItems(
  connection: Extract<StoreConnection, { kind: 'memcached' }>,
): Promise<number> {
  let total = 0;
  for (const stats of (await memcachedStats(connection.client)).values()) {
    total += Number(stats.curr_items ?? 0);
  }
  return total;
}
