/**
 * A session store on SQLite, through better-sqlite3.
 *
 * @packageDocumentation
 */
import type Database from 'better-sqlite3';
import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserRecord,
} from '../store.js';
import { SessionError } from '../errors.js';
import type { MaybePromise } from '../maybe.js';
import { settle } from '../maybe.js';
import { booleanOption, invalidOption, numberOption } from '../options.js';
import { Pruner, resolvePruning, type PruningOptions } from '../pruning.js';
import { DEFAULT_TABLE, clientOption, optionsObject, sqlTable, type TableRules } from './shared.js';

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions extends PruningOptions {
  /**
   * An open better-sqlite3 `Database` the application created. The store never closes it:
   * the application owns the file, its location and its lifetime.
   */
  db: Database.Database;
  /**
   * The table sessions are kept in: a plain SQL identifier (letters, digits and `_`, not
   * starting with a digit, at most 63 characters). Its indexes are named after it.
   * @defaultValue `'tessera_sessions'`
   */
  table?: string;
  /**
   * Create the table and its indexes at construction (`CREATE ... IF NOT EXISTS`). Set
   * `false` when migrations own the schema; the table must then exist before construction.
   * @defaultValue true
   */
  createTable?: boolean;
  /**
   * Switch the database to write-ahead logging (`PRAGMA journal_mode = WAL`), which lets
   * readers and one writer work at once. WAL does not apply to `':memory:'` databases, which
   * keep their own journal mode.
   * @defaultValue true
   */
  wal?: boolean;
  /**
   * Hold the database's file locks for as long as the connection is open
   * (`PRAGMA locking_mode = EXCLUSIVE`), set before WAL is entered so that the WAL index lives in
   * the process's memory rather than in a shared-memory file. Each statement then skips the file
   * lock and unlock system calls that SQLite otherwise makes around it: a read through the store
   * costs about a third as much (`npx tsx bench/store-ops.ts --store sqlite --exclusive`). Only for a database
   * file that no other connection opens, in this process or another (a second server process, a
   * `sqlite3` shell, a migration tool): they get `SQLITE_BUSY` until this connection closes.
   * @defaultValue false
   */
  exclusive?: boolean;
  /**
   * How long a statement waits for another connection's lock before failing, in milliseconds
   * (`PRAGMA busy_timeout`): a whole number from 0 to 2³¹ − 1. A call that gives up rejects.
   * @defaultValue 5_000
   */
  busyTimeout?: number;
}

interface Row {
  data: string;
  expires_at: number;
  version: number;
  user_id: string | null;
}

/** A {@link Row} in `raw` mode: its columns in the order of the `SELECT`. */
type RawRow = [data: string, expiresAt: number, version: number, userId: string | null];

interface KeyedRow extends Row {
  key: string;
}

type Statement<Params extends unknown[], Result = unknown> = Database.Statement<Params, Result>;

interface Statements {
  /** Answers the row as an array (`raw` mode): a little cheaper than an object, on every read. */
  get: Statement<[key: string, now: number], RawRow>;
  create: Statement<
    [key: string, data: string, expiresAt: number, userId: string | null, now: number]
  >;
  update: Statement<
    [
      data: string,
      expiresAt: number,
      userId: string | null,
      key: string,
      expectedVersion: number,
      now: number,
    ]
  >;
  exists: Statement<[key: string, now: number], number>;
  touch: Statement<[expiresAt: number, key: string, now: number]>;
  delete: Statement<[key: string]>;
  listByUser: Statement<[userId: string, now: number], KeyedRow>;
  deleteByUser: Statement<[userId: string, exceptKey: string | null], number>;
  pruneBatch: Statement<[now: number, limit: number]>;
}

const OWNER = 'SqliteStore';
/** No qualifier: a SQLite "schema" is an attached database, which the application manages. */
const TABLE_RULES: TableRules = { maxLength: 63, quote: '"' };
/**
 * How long one prune batch may take, in milliseconds: better-sqlite3 runs it on the event loop,
 * so a request waits for the batch under way. Shorter batches cost more per row (see
 * docs/reliability.md, "Pruning").
 */
const PRUNE_BATCH_MS = 0.5;
/** `PRAGMA busy_timeout` takes a 32-bit signed integer. */
const MAX_BUSY_TIMEOUT = 2 ** 31 - 1;

/**
 * The statements that create the store's table and indexes, for an application whose
 * migrations own the schema (then construct the store with `createTable: false`).
 *
 * @param table - the table name; the same rules as {@link SqliteStoreOptions.table}
 * @example
 * ```ts
 * db.exec(sqliteSchema('tessera_sessions'));
 * ```
 */
export function sqliteSchema(table: string = DEFAULT_TABLE): string {
  const { sql, name } = sqlTable(OWNER, TABLE_RULES, table);
  return [
    `CREATE TABLE IF NOT EXISTS ${sql} (
  key TEXT NOT NULL PRIMARY KEY,
  data TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  version INTEGER NOT NULL,
  user_id TEXT NULL
);`,
    `CREATE INDEX IF NOT EXISTS "${name}_expires_at" ON ${sql} (expires_at);`,
    `CREATE INDEX IF NOT EXISTS "${name}_user_id" ON ${sql} (user_id) WHERE user_id IS NOT NULL;`,
  ].join('\n');
}

/**
 * Keeps sessions in a SQLite database through better-sqlite3: one file, shared by every
 * process on the machine that opens it, surviving restarts. Expiry is compared against the
 * store's clock; expired rows are never returned and are pruned in batches on a timer that
 * never holds the process open.
 *
 * better-sqlite3 is synchronous: `get`, `create` and `update` answer values at once, so a
 * request on this store never waits. Any SQLite error (a closed database, a lock held past the
 * busy timeout, a full disk) is answered as a rejected promise, by every method.
 *
 * @example
 * ```ts
 * import Database from 'better-sqlite3';
 * import { SessionManager } from 'tessera-session';
 * import { SqliteStore } from 'tessera-session/stores/sqlite';
 *
 * const db = new Database('sessions.db');
 * const store = new SqliteStore({ db });
 * const manager = new SessionManager({ store, secrets: [process.env.SESSION_SECRET!] });
 * ```
 */
export class SqliteStore implements SessionStore {
  readonly name = 'sqlite';
  /** The table sessions are kept in. */
  readonly table: string;
  readonly #statements: Statements;
  readonly #now: () => number;
  readonly #pruner: Pruner;

  /** Validates the options, prepares the schema and statements, and starts the prune timer. */
  constructor(options: SqliteStoreOptions) {
    optionsObject(OWNER, options, 'a db');
    const db = clientOption<Database.Database>(
      OWNER,
      'db',
      options.db,
      ['prepare', 'pragma', 'exec'],
      'a better-sqlite3 Database',
    );
    if (!db.open) invalidOption(OWNER, 'db is not open');
    if (db.readonly) invalidOption(OWNER, 'db is read-only; sessions need a writable database');
    const table = sqlTable(OWNER, TABLE_RULES, options.table);
    const busyTimeout = numberOption(OWNER, 'busyTimeout', options.busyTimeout, 5_000, {
      integer: true,
      max: MAX_BUSY_TIMEOUT,
    });
    const exclusive = booleanOption(OWNER, 'exclusive', options.exclusive, false);
    const wal = booleanOption(OWNER, 'wal', options.wal, true);
    const createTable = booleanOption(OWNER, 'createTable', options.createTable, true);
    const pruning = resolvePruning(OWNER, options);
    this.#now = pruning.now;
    this.table = table.plain;

    db.pragma(`busy_timeout = ${busyTimeout}`);
    if (exclusive) db.pragma('locking_mode = EXCLUSIVE');
    if (wal) db.pragma('journal_mode = WAL');
    if (createTable) db.exec(sqliteSchema(table.plain));
    try {
      this.#statements = prepareStatements(db, table.sql);
    } catch (cause) {
      throw new SessionError(
        'INVALID_OPTION',
        `${OWNER}: table "${table.plain}" is missing or lacks the expected columns (see sqliteSchema())`,
        { cause },
      );
    }

    const statements = this.#statements;
    this.#pruner = new Pruner(
      pruning,
      (now, limit) => statements.pruneBatch.run(now, limit).changes,
      { batchMs: PRUNE_BATCH_MS },
    );
  }

  get(key: string): MaybePromise<StoredRecord | null> {
    return settle(() => {
      const row = this.#statements.get.get(key, this.#now());
      return row === undefined
        ? null
        : { data: row[0], expiresAt: row[1], version: row[2], userId: row[3] };
    });
  }

  create(key: string, record: SessionRecord): MaybePromise<boolean> {
    return settle(() => {
      const { changes } = this.#statements.create.run(
        key,
        record.data,
        record.expiresAt,
        record.userId,
        this.#now(),
      );
      return changes > 0;
    });
  }

  update(key: string, record: SessionRecord, expectedVersion: number): MaybePromise<UpdateResult> {
    return settle(() => {
      const now = this.#now();
      const { changes } = this.#statements.update.run(
        record.data,
        record.expiresAt,
        record.userId,
        key,
        expectedVersion,
        now,
      );
      if (changes > 0) return { status: 'ok', version: expectedVersion + 1 };
      return this.#statements.exists.get(key, now) === undefined
        ? { status: 'missing' }
        : { status: 'conflict' };
    });
  }

  async touch(key: string, expiresAt: number): Promise<boolean> {
    return this.#statements.touch.run(expiresAt, key, this.#now()).changes > 0;
  }

  async delete(key: string): Promise<void> {
    this.#statements.delete.run(key);
  }

  async listByUser(userId: string): Promise<UserRecord[]> {
    return this.#statements.listByUser
      .all(userId, this.#now())
      .map((row) => ({ key: row.key, ...toRecord(row) }));
  }

  async deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    const now = this.#now();
    // Expired rows of the user go too, but only live sessions count as ended.
    const removedExpiries = this.#statements.deleteByUser.all(userId, exceptKey ?? null);
    return removedExpiries.filter((expiresAt) => expiresAt > now).length;
  }

  /**
   * Deletes expired rows in batches of `pruneBatchSize`, yielding to the event loop between
   * batches, and answers how many were deleted.
   */
  prune(): Promise<number> {
    return this.#pruner.prune();
  }

  /** Stops the prune timer. The database stays open: it belongs to the application. */
  close(): Promise<void> {
    return this.#pruner.close();
  }
}

function toRecord(row: Row): StoredRecord {
  return { data: row.data, expiresAt: row.expires_at, userId: row.user_id, version: row.version };
}

/** Prepares every statement on `t`, the quoted table name. */
function prepareStatements(db: Database.Database, t: string): Statements {
  const columns = 'data, expires_at, version, user_id';
  const statements: Statements = {
    get: db
      .prepare<[string, number], RawRow>(
        `SELECT ${columns} FROM ${t} WHERE key = ? AND expires_at > ?`,
      )
      .raw(true),
    // Replaces an expired row (the WHERE of DO UPDATE) but never a live one: then nothing changes.
    create: db.prepare(
      `INSERT INTO ${t} (key, data, expires_at, version, user_id) VALUES (?, ?, ?, 1, ?)
       ON CONFLICT(key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at,
         version = 1, user_id = excluded.user_id
       WHERE ${t}.expires_at <= ?`,
    ),
    update: db.prepare(
      `UPDATE ${t} SET data = ?, expires_at = ?, user_id = ?, version = version + 1
       WHERE key = ? AND version = ? AND expires_at > ?`,
    ),
    exists: db
      .prepare<[string, number], number>(`SELECT 1 FROM ${t} WHERE key = ? AND expires_at > ?`)
      .pluck(),
    touch: db.prepare(`UPDATE ${t} SET expires_at = ? WHERE key = ? AND expires_at > ?`),
    delete: db.prepare(`DELETE FROM ${t} WHERE key = ?`),
    listByUser: db.prepare(`SELECT key, ${columns} FROM ${t} WHERE user_id = ? AND expires_at > ?`),
    deleteByUser: db
      .prepare<[string, string | null], number>(
        `DELETE FROM ${t} WHERE user_id = ? AND key IS NOT ? RETURNING expires_at`,
      )
      .pluck(),
    // Oldest first: the ORDER BY keeps the expiry index the planner's choice with any statistics.
    // Rows are found by rowid, which spares a lookup in the key index for every row deleted.
    pruneBatch: db.prepare(
      `DELETE FROM ${t} WHERE rowid IN (
         SELECT rowid FROM ${t} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`,
    ),
  };
  // An application may have turned on BigInt integers for the whole database; the store's
  // numbers (epoch milliseconds, versions) fit a double, and the contract speaks numbers.
  for (const statement of Object.values(statements) as Statement<unknown[]>[])
    statement.safeIntegers(false);
  return statements;
}
