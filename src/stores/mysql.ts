/**
 * The MySQL and MariaDB store, for `mysql2`.
 *
 * @packageDocumentation
 */
import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserRecord,
} from '../store.js';
import { SessionError } from '../errors.js';
import { MAX_TIMER_DELAY, numberOption } from '../options.js';
import { Pruner, resolvePruning, type PruningOptions } from '../pruning.js';
import { DEFAULT_TABLE, clientOption, optionsObject, sqlTable, type TableRules } from './shared.js';
import { onOwnConnections } from './mysql/own-connections.js';
import { pruneBatch, pruneCursor, pruneStatements, type PruneStatements } from './mysql/prune.js';

/** MySQL's error number for a deadlock whose victim was this statement. */
const ER_LOCK_DEADLOCK = 1213;
/** How many times a statement chosen as a deadlock victim is run. */
const DEADLOCK_RETRIES = 5;
/** The default `statementTimeout`, as the manager's default `storeTimeout`. */
const DEFAULT_STATEMENT_TIMEOUT = 5_000;

/**
 * What the store needs from a MySQL client: `execute(sql, values)` (a prepared statement) and
 * `query(sql)`, both answering `[result, fields]` as `mysql2/promise` does. A `mysql2/promise`
 * `Pool` fits, and so do a `Connection` and a checked-out `PoolConnection`; a Pool is the usual
 * choice, since the store runs concurrent statements.
 */
export interface MysqlQueryable {
  execute(sql: string, values?: any[]): Promise<[unknown, unknown]>;
  query(sql: string): Promise<[unknown, unknown]>;
}

/** A connection checked out of a {@link MysqlPool}: a `mysql2/promise` `PoolConnection`. */
export interface MysqlPoolConnection extends MysqlQueryable {
  /** Gives the connection back to its pool. */
  release(): void;
  /** Closes the connection and takes it out of its pool. */
  destroy(): void;
}

/**
 * A pool the store checks connections out of, one per statement: a `mysql2/promise` `Pool`. The
 * store recognises it by its `getConnection` method; see {@link MysqlStoreOptions.statementTimeout}.
 */
export interface MysqlPool extends MysqlQueryable {
  /** Checks a connection out of the pool, opening one if none is free and the limit allows. */
  getConnection(): Promise<MysqlPoolConnection>;
}

/** Options of {@link createMysqlTable}. */
export interface MysqlTableOptions {
  /**
   * The table, optionally qualified by its database (`database.table`). Each part is letters,
   * digits and underscores, not starting with a digit, at most 64 characters. Names are quoted in
   * SQL; whether their case matters depends on the server's `lower_case_table_names`.
   * @defaultValue `'tessera_sessions'`
   */
  table?: string;
}

/** Options of {@link MysqlStore}. */
export interface MysqlStoreOptions extends MysqlTableOptions, PruningOptions {
  /**
   * The client the application created, usually a `mysql2/promise` Pool. The store never ends
   * it. Keep mysql2's defaults for the character set (`utf8mb4`) and for row decoding (no custom
   * `typeCast`, no `rowsAsArray`), and set `connectTimeout` so that no call waits long for a
   * server that is down. A pool (anything with `getConnection`) gets each statement on a
   * connection of its own, bounded by {@link MysqlStoreOptions.statementTimeout}; any other
   * client runs the statements itself, with no timeout from the store.
   */
  pool: MysqlPool | MysqlQueryable;
  /**
   * The longest one statement may take, in milliseconds, waiting for a free connection included,
   * when `pool` is a pool (has `getConnection`). A statement that takes longer rejects with
   * `SessionError` code `STORE_UNAVAILABLE`, and its connection is destroyed instead of given
   * back: mysql2 never frees a connection whose statement the network silently lost, so without
   * this such connections fill the pool. A statement still waiting for a connection when the time
   * is up is never sent. Above 0 and at most 2³¹ − 1. Ignored for a client without
   * `getConnection`.
   * @defaultValue 5_000 (the manager's default `storeTimeout`)
   */
  statementTimeout?: number;
}

interface SessionRow {
  data: unknown;
  expires_at: unknown;
  version: unknown;
  user_id: unknown;
}

interface UserRow extends SessionRow {
  key: unknown;
}

interface WriteResult {
  affectedRows?: unknown;
  insertId?: unknown;
}

/** MySQL's limit for a database or table name. */
const TABLE_RULES: TableRules = { qualifier: 'database', maxLength: 64, quote: '`' };
/** The widths of the binary columns, in bytes. */
const MAX_KEY_BYTES = 64;
const MAX_USER_ID_BYTES = 1024;

function checkPool(pool: unknown, owner: string): MysqlQueryable {
  return clientOption(
    owner,
    'pool',
    pool,
    ['execute', 'query'],
    'a mysql2/promise Pool (execute and query)',
  );
}

function isPool(client: MysqlQueryable): client is MysqlPool {
  return typeof (client as Partial<MysqlPool>).getConnection === 'function';
}

function createTableSql(table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${table} (
  \`key\` VARBINARY(${MAX_KEY_BYTES}) NOT NULL,
  data LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  expires_at BIGINT NOT NULL,
  version INT UNSIGNED NOT NULL,
  user_id VARBINARY(${MAX_USER_ID_BYTES}) NULL,
  PRIMARY KEY (\`key\`),
  KEY expires_at_idx (expires_at),
  KEY user_id_idx (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`;
}

/**
 * The `CREATE TABLE IF NOT EXISTS` statement of the session table, indexes included, as text: for
 * migration tools that own the schema. One statement, so `pool.query(mysqlSchema())` runs it.
 *
 * @param table - the table name, validated as {@link MysqlTableOptions.table}; by default
 *   `'tessera_sessions'`
 *
 * @example
 * ```ts
 * writeFileSync('migrations/001_sessions.sql', mysqlSchema('sessions') + ';\n');
 * ```
 */
export function mysqlSchema(table: string = DEFAULT_TABLE): string {
  return createTableSql(sqlTable('mysqlSchema', TABLE_RULES, table).sql);
}

/**
 * Creates the session table and its indexes if the table does not exist yet (`CREATE TABLE IF
 * NOT EXISTS`). Idempotent, and safe when several processes call it at once. An existing table is
 * left exactly as it is, even if its columns differ. The database of a qualified name must exist.
 *
 * @param pool - the application's client, usually a `mysql2/promise` Pool
 * @param options - the table name
 *
 * @example
 * ```ts
 * await createMysqlTable(pool, { table: 'app.sessions' });
 * ```
 */
export async function createMysqlTable(
  pool: MysqlQueryable,
  options: MysqlTableOptions = {},
): Promise<void> {
  const client = checkPool(pool, 'createMysqlTable');
  const table = sqlTable('createMysqlTable', TABLE_RULES, options.table);
  await client.query(createTableSql(table.sql));
}

function toText(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

function toRecord(row: SessionRow): StoredRecord {
  return {
    data: toText(row.data),
    expiresAt: Number(row.expires_at),
    userId: row.user_id === null || row.user_id === undefined ? null : toText(row.user_id),
    version: Number(row.version),
  };
}

/** Binary columns get bytes, so that no connection character set can alter them on the way. */
function bytes(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

function userIdBytes(userId: string | null): Buffer | null {
  if (userId === null) return null;
  const encoded = bytes(userId);
  // Refused here rather than by the server: outside strict SQL mode MySQL would silently cut the
  // value, and two users sharing a prefix would then share an index entry.
  if (encoded.length > MAX_USER_ID_BYTES) {
    throw new SessionError(
      'INVALID_DATA',
      `MysqlStore: a user ID may be at most ${MAX_USER_ID_BYTES} bytes of UTF-8`,
    );
  }
  return encoded;
}

/**
 * Keeps sessions in a MySQL (5.7 or later) or MariaDB (10.2 or later) table, through a
 * `mysql2/promise` Pool the application created and owns. Every operation is a single statement
 * (one round trip); expiry is compared against the store's clock, and expired rows are deleted in
 * batches on a timer that never holds the process open. With a Pool, each statement runs on a
 * connection checked out for it and is bounded by `statementTimeout` (5 s by default); a
 * connection whose statement timed out is destroyed, never given back to the pool.
 *
 * Create the table once with {@link MysqlStore.createTable} or {@link createMysqlTable} (or from
 * {@link mysqlSchema}, in a migration).
 *
 * `create`, `update` and `touch` learn whether they found a live row from `LAST_INSERT_ID(version)`
 * in the statement, which works with or without mysql2's `FOUND_ROWS` flag. As a side effect,
 * `SELECT LAST_INSERT_ID()` on the pooled connection answers that version afterwards.
 *
 * @example
 * ```ts
 * import mysql from 'mysql2/promise';
 * import { MysqlStore } from 'tessera-session/stores/mysql';
 * const pool = mysql.createPool({ uri: process.env.DATABASE_URL, connectTimeout: 2_000 });
 * const store = new MysqlStore({ pool });
 * await store.createTable();
 * ```
 */
export class MysqlStore implements SessionStore {
  readonly name = 'mysql';
  readonly #pool: MysqlQueryable;
  readonly #table: string;
  readonly #tableName: string;
  readonly #now: () => number;
  readonly #sql: ReturnType<typeof statements>;
  readonly #prune: PruneStatements;
  readonly #pruner: Pruner;

  constructor(options: MysqlStoreOptions) {
    optionsObject('MysqlStore', options, 'a pool');
    const pool = checkPool(options.pool, 'MysqlStore');
    const statementTimeout = numberOption(
      'MysqlStore',
      'statementTimeout',
      options.statementTimeout,
      DEFAULT_STATEMENT_TIMEOUT,
      { exclusiveMin: true, max: MAX_TIMER_DELAY },
    );
    this.#pool = isPool(pool) ? onOwnConnections(pool, statementTimeout) : pool;
    const table = sqlTable('MysqlStore', TABLE_RULES, options.table);
    this.#tableName = table.plain;
    this.#table = table.sql;
    const pruning = resolvePruning('MysqlStore', options);
    this.#now = pruning.now;
    this.#sql = statements(this.#table);
    this.#prune = pruneStatements(this.#table, pruning.batchSize);
    const client = {
      rows: (sql: string, values: unknown[]) =>
        this.#rows<{ key: unknown; expires_at: unknown }>(sql, values),
      write: (sql: string, values: unknown[]) => this.#write(sql, values),
    };
    const cursor = pruneCursor();
    this.#pruner = new Pruner(pruning, (now, limit) =>
      pruneBatch(client, this.#prune, cursor, now, limit),
    );
  }

  /** The table name, as configured (unquoted). */
  get table(): string {
    return this.#tableName;
  }

  /**
   * Runs the documented `CREATE TABLE IF NOT EXISTS` for this store's table: see
   * {@link createMysqlTable}.
   */
  async createTable(): Promise<void> {
    await this.#pool.query(createTableSql(this.#table));
  }

  async #rows<Row>(sql: string, values: unknown[]): Promise<Row[]> {
    const [rows] = await this.#pool.execute(sql, values);
    return rows as Row[];
  }

  async #write(
    sql: string,
    values: unknown[],
  ): Promise<{ affectedRows: number; insertId: number }> {
    for (let attempt = 1; ; attempt++) {
      try {
        const [result] = await this.#pool.execute(sql, values);
        const { affectedRows, insertId } = result as WriteResult;
        return { affectedRows: Number(affectedRows ?? 0), insertId: Number(insertId ?? 0) };
      } catch (error) {
        // InnoDB may pick one of two single-statement writes on the same row (a delete and an
        // update touching indexed columns) as a deadlock victim. The statement was rolled back
        // whole, so running it again is safe and answers what it would have answered.
        if (
          (error as { errno?: unknown }).errno !== ER_LOCK_DEADLOCK ||
          attempt >= DEADLOCK_RETRIES
        )
          throw error;
      }
    }
  }

  async get(key: string): Promise<StoredRecord | null> {
    const rows = await this.#rows<SessionRow>(this.#sql.get, [bytes(key), this.#now()]);
    const row = rows[0];
    return row === undefined ? null : toRecord(row);
  }

  async create(key: string, record: SessionRecord): Promise<boolean> {
    const keyBytes = bytes(key);
    if (keyBytes.length > MAX_KEY_BYTES) {
      throw new SessionError(
        'INVALID_DATA',
        `MysqlStore: a key may be at most ${MAX_KEY_BYTES} bytes`,
      );
    }
    const now = this.#now();
    const { insertId } = await this.#write(this.#sql.create, [
      keyBytes,
      record.data,
      record.expiresAt,
      userIdBytes(record.userId),
      now,
      now,
      now,
      now,
    ]);
    // The statement reports a live row it left alone through LAST_INSERT_ID(version), which is
    // never 0; an insert or the replacement of an expired row reports nothing.
    return insertId === 0;
  }

  async update(key: string, record: SessionRecord, expectedVersion: number): Promise<UpdateResult> {
    const { affectedRows, insertId } = await this.#write(this.#sql.update, [
      expectedVersion,
      record.data,
      expectedVersion,
      userIdBytes(record.userId),
      expectedVersion,
      record.expiresAt,
      expectedVersion,
      bytes(key),
      this.#now(),
    ]);
    // A live row at another version reports that version through LAST_INSERT_ID; a written row
    // always changes (its version moves), so it counts as affected with or without FOUND_ROWS.
    if (insertId !== 0) return { status: 'conflict' };
    if (affectedRows === 0) return { status: 'missing' };
    return { status: 'ok', version: expectedVersion + 1 };
  }

  async touch(key: string, expiresAt: number): Promise<boolean> {
    const { insertId } = await this.#write(this.#sql.touch, [expiresAt, bytes(key), this.#now()]);
    // affectedRows would be 0 for an unchanged expiry when the client lacks FOUND_ROWS; the
    // version reported through LAST_INSERT_ID says "found" either way.
    return insertId !== 0;
  }

  async delete(key: string): Promise<void> {
    await this.#write(this.#sql.delete, [bytes(key)]);
  }

  async listByUser(userId: string): Promise<UserRecord[]> {
    const rows = await this.#rows<UserRow>(this.#sql.listByUser, [bytes(userId), this.#now()]);
    return rows.map((row) => ({ key: toText(row.key), ...toRecord(row) }));
  }

  async deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    const { affectedRows } =
      exceptKey === undefined
        ? await this.#write(this.#sql.deleteByUser, [bytes(userId), this.#now()])
        : await this.#write(this.#sql.deleteByUserExcept, [
            bytes(userId),
            this.#now(),
            bytes(exceptKey),
          ]);
    return affectedRows;
  }

  /**
   * Deletes expired rows and answers how many: their keys are read from the expiry index, oldest
   * first, and deleted by key, `pruneBatchSize` (at most 10,000) per statement, one statement at
   * a time. A session renewed in between is not deleted. Calls made while a prune runs share its
   * result.
   */
  prune(): Promise<number> {
    return this.#pruner.prune();
  }

  /**
   * Stops the prune timer and waits for a prune in progress, so that ending the pool afterwards
   * is safe. The pool is the application's: the store does not end it.
   */
  close(): Promise<void> {
    return this.#pruner.close();
  }
}

/**
 * The statements of one table. Inside SET, MySQL evaluates assignments left to right and later
 * ones see earlier results, so every IF reads a column only before that column is assigned.
 */
function statements(table: string) {
  return {
    get: `SELECT data, expires_at, version, user_id FROM ${table} WHERE \`key\` = ? AND expires_at > ?`,
    create: `INSERT INTO ${table} (\`key\`, data, expires_at, user_id, version) VALUES (?, ?, ?, ?, 1)
ON DUPLICATE KEY UPDATE
  data = IF(expires_at <= ?, VALUES(data), data),
  user_id = IF(expires_at <= ?, VALUES(user_id), user_id),
  version = IF(expires_at <= ?, 1, LAST_INSERT_ID(version)),
  expires_at = IF(expires_at <= ?, VALUES(expires_at), expires_at)`,
    update: `UPDATE ${table} SET
  data = IF(version = ?, ?, data),
  user_id = IF(version = ?, ?, user_id),
  expires_at = IF(version = ?, ?, expires_at),
  version = IF(version = ?, version + 1, LAST_INSERT_ID(version))
WHERE \`key\` = ? AND expires_at > ?`,
    touch: `UPDATE ${table} SET expires_at = ?, version = LAST_INSERT_ID(version) WHERE \`key\` = ? AND expires_at > ?`,
    delete: `DELETE FROM ${table} WHERE \`key\` = ?`,
    listByUser: `SELECT \`key\`, data, expires_at, version, user_id FROM ${table} WHERE user_id = ? AND expires_at > ?`,
    deleteByUser: `DELETE FROM ${table} WHERE user_id = ? AND expires_at > ?`,
    deleteByUserExcept: `DELETE FROM ${table} WHERE user_id = ? AND expires_at > ? AND \`key\` <> ?`,
  };
}
