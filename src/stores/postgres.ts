/**
 * The PostgreSQL store, for node-postgres (`pg`).
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserRecord,
} from '../store.js';
import { SessionError } from '../errors.js';
import { booleanOption } from '../options.js';
import { Pruner, resolvePruning, type PruningOptions } from '../pruning.js';
import {
  DEFAULT_TABLE,
  clientOption,
  optionsObject,
  sqlTable,
  type SqlTable,
  type TableRules,
} from './shared.js';

/**
 * What the store needs from a PostgreSQL client: a `query(text, values)` that answers rows and a
 * row count, and, with {@link PostgresStoreOptions.preparedStatements} (the default), also
 * node-postgres's `query({ name, text, values })`. A `pg.Pool` fits, and so do `pg.Client` and a
 * checked-out `pg.PoolClient`; a Pool is the usual choice, since the store runs concurrent queries.
 */
export interface PostgresQueryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

/**
 * A named statement, as node-postgres takes it: the server parses and plans `text` once per
 * connection under `name`, and later calls send only the values.
 */
interface NamedQuery {
  name: string;
  text: string;
  values: unknown[];
}

/** What the store calls when it prepares its statements: a `pg.Pool`, `pg.Client` or `pg.PoolClient`. */
type PreparingQueryable = {
  query(query: NamedQuery): Promise<{ rows: unknown[]; rowCount: number | null }>;
};

/** Options of {@link createPostgresTable}. */
export interface PostgresTableOptions {
  /**
   * The table, optionally schema-qualified (`schema.table`). Each part is letters, digits and
   * underscores, not starting with a digit; the table part at most 48 characters (room for the
   * index names), the schema part at most 63. Names are quoted in SQL, so their case is kept.
   * @defaultValue `'tessera_sessions'`
   */
  table?: string;
}

/** Options of {@link PostgresStore}. */
export interface PostgresStoreOptions extends PostgresTableOptions, PruningOptions {
  /**
   * The client the application created, usually a `pg.Pool`. The store never ends it. Configure
   * `connectionTimeoutMillis` and `query_timeout` (or `statement_timeout`) on it so that no call
   * waits forever, and listen for its `'error'` event.
   */
  pool: PostgresQueryable;
  /**
   * Whether the store's statements run as named prepared statements (node-postgres's
   * `query({ name, text, values })`): each connection parses and plans a statement once, and
   * later calls send only its values, which costs the server and the client less per request.
   * Turn it off for a client that takes only `query(text, values)`, or behind a pooler in
   * transaction mode that does not keep prepared statements across transactions (PgBouncer
   * before 1.21).
   * @defaultValue true
   */
  preparedStatements?: boolean;
}

interface SessionRow {
  data: string;
  expires_at: string | number | bigint;
  version: number;
  user_id: string | null;
}

interface UserRow extends SessionRow {
  key: string;
}

const OWNER = 'PostgresStore';
/** The table part leaves room, within PostgreSQL's 63 characters, for the index names. */
const TABLE_RULES: TableRules = {
  qualifier: 'schema',
  maxLength: 48,
  maxQualifierLength: 63,
  quote: '"',
};

function checkPool(pool: unknown): PostgresQueryable {
  return clientOption(
    OWNER,
    'pool',
    pool,
    ['query'],
    'a pg.Pool (anything with query(text, values))',
  );
}

function schemaScript(table: SqlTable): string {
  const statements = [
    `CREATE TABLE IF NOT EXISTS ${table.sql} (
  key TEXT COLLATE "C" PRIMARY KEY,
  data TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  version INTEGER NOT NULL,
  user_id TEXT COLLATE "C"
)`,
    `CREATE INDEX IF NOT EXISTS "${table.name}_expires_at_idx" ON ${table.sql} (expires_at)`,
    `CREATE INDEX IF NOT EXISTS "${table.name}_user_id_idx" ON ${table.sql} (user_id) WHERE user_id IS NOT NULL`,
  ];
  return statements.map((statement) => `${statement};\n`).join('');
}

/**
 * The SQL that creates the session table and its indexes (`CREATE ... IF NOT EXISTS`), as
 * semicolon-terminated statements, for migration tools that own the schema.
 *
 * @param table - the table, as in {@link PostgresTableOptions.table}; `'tessera_sessions'` when
 *   omitted
 *
 * @example
 * ```ts
 * writeFileSync('migrations/001_sessions.sql', postgresSchema('app.sessions'));
 * ```
 */
export function postgresSchema(table: string = DEFAULT_TABLE): string {
  return schemaScript(sqlTable(OWNER, TABLE_RULES, table));
}

/** The statement that creates the table and its indexes, safe to run at once from many processes. */
function createTableSql(table: SqlTable): string {
  // A DO block is one statement and one transaction: the advisory lock makes concurrent callers
  // take turns, so CREATE ... IF NOT EXISTS never races into a duplicate-key error.
  return `DO $tessera$
BEGIN
PERFORM pg_advisory_xact_lock(hashtext('tessera-session'), hashtext('${table.plain}'));
${schemaScript(table)}END
$tessera$`;
}

/**
 * Creates the session table and its indexes if they do not exist yet (`CREATE TABLE IF NOT
 * EXISTS`). Idempotent, and safe when several processes call it at once: they take turns on a
 * transaction-scoped advisory lock. The schema of a qualified name must already exist.
 *
 * @param pool - the application's client, usually a `pg.Pool`
 * @param options - the table name
 *
 * @example
 * ```ts
 * await createPostgresTable(pool, { table: 'app.sessions' });
 * ```
 */
export async function createPostgresTable(
  pool: PostgresQueryable,
  options: PostgresTableOptions = {},
): Promise<void> {
  const table = sqlTable(OWNER, TABLE_RULES, options.table);
  await checkPool(pool).query(createTableSql(table));
}

/** Rounds an instant down to whole milliseconds, the resolution of the `expires_at` column. */
function millis(instant: number): number {
  return Math.floor(instant);
}

/** PostgreSQL's errors about a value the caller gave (a user ID or key), by SQLSTATE. */
const REFUSED_VALUES = new Map([
  // invalid byte sequence for encoding "UTF8": 0x00
  ['22021', 'PostgreSQL text cannot hold the character U+0000 (in a user ID or key)'],
  // an index entry over the B-tree limit, such as a user ID of several kilobytes
  ['54000', 'a user ID or key is too large for its index'],
]);

/**
 * A clear `INVALID_DATA` for a value PostgreSQL refused, rather than the driver's error, which
 * the manager would report as an outage; `null` for any other error.
 */
function refusedValue(error: unknown): SessionError | null {
  const why = REFUSED_VALUES.get(String((error as { code?: unknown } | null)?.code));
  return why === undefined
    ? null
    : new SessionError('INVALID_DATA', `PostgresStore: ${why}`, { cause: error });
}

function toStored(row: SessionRow): StoredRecord {
  return {
    data: row.data,
    expiresAt: Number(row.expires_at),
    userId: row.user_id,
    version: Number(row.version),
  };
}

/** Every statement the store runs, for one table; a prune deletes at most `batchSize` rows. */
function statementsFor(t: string, batchSize: number) {
  return {
    get: `SELECT data, expires_at, version, user_id FROM ${t} WHERE key = $1 AND expires_at > $2`,
    create: `INSERT INTO ${t} AS s (key, data, expires_at, version, user_id) VALUES ($1, $2, $3, 1, $4)
      ON CONFLICT (key) DO UPDATE
      SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at, version = 1, user_id = EXCLUDED.user_id
      WHERE s.expires_at <= $5`,
    // The locking read returns the newest committed row (after waiting for a concurrent writer),
    // so a record deleted or bumped meanwhile reads as missing or conflict, never a stale answer;
    // joining it makes the update run after the lock is held.
    update: `WITH cur AS (
        SELECT key, version FROM ${t} WHERE key = $1 AND expires_at > $6 FOR UPDATE
      ), upd AS (
        UPDATE ${t} AS s SET data = $2, expires_at = $3, user_id = $4, version = s.version + 1
        FROM cur WHERE s.key = cur.key AND cur.version = $5
        RETURNING s.version
      )
      SELECT (SELECT version FROM upd) AS new_version, (SELECT version FROM cur) AS current_version`,
    touch: `UPDATE ${t} SET expires_at = $2 WHERE key = $1 AND expires_at > $3`,
    delete: `DELETE FROM ${t} WHERE key = $1`,
    list: `SELECT key, data, expires_at, version, user_id FROM ${t} WHERE user_id = $1 AND expires_at > $2`,
    deleteByUser: `WITH gone AS (
        DELETE FROM ${t} WHERE user_id = $1 AND key <> COALESCE($2::text, '') RETURNING expires_at
      )
      SELECT count(*)::int AS removed FROM gone WHERE expires_at > $3`,
    // The picked rows are locked until the delete, so a touch cannot revive one in between;
    // SKIP LOCKED lets concurrent pruners split the work instead of queueing on each other, and
    // the ARRAY keeps the delete on the primary key whatever the backlog. ORDER BY and a constant
    // LIMIT keep the expiry index the cheapest plan, generic or custom: with LIMIT $2 and no
    // order, many expired rows made it a sequential scan.
    prune: `DELETE FROM ${t} WHERE key = ANY (ARRAY(
        SELECT key FROM ${t} WHERE expires_at <= $1
        ORDER BY expires_at LIMIT ${batchSize} FOR UPDATE SKIP LOCKED
      ))`,
  } as const;
}

type Statement = keyof ReturnType<typeof statementsFor>;

/**
 * A server-side name for each statement: its kind and a digest of its text, so stores on other
 * tables that share a pool never reuse a name for different SQL (node-postgres refuses that),
 * within PostgreSQL's 63-character limit.
 */
function statementNames(sql: Record<Statement, string>): Record<Statement, string> {
  const names = {} as Record<Statement, string>;
  for (const statement of Object.keys(sql) as Statement[]) {
    const digest = createHash('sha256').update(sql[statement]).digest('hex').slice(0, 24);
    names[statement] = `tessera_${statement}_${digest}`;
  }
  return names;
}

/**
 * Keeps sessions in a PostgreSQL table through node-postgres. The application creates the pool
 * (pooling, TLS, credentials and timeouts are its choice) and passes it in; the store never ends
 * it. Every operation is one statement, so one round trip; updates are compare-and-set and stay
 * correct under concurrent requests at the default READ COMMITTED isolation.
 *
 * Expiry is an epoch-millisecond column compared against the store's clock; expired rows are
 * never returned and are deleted by {@link PostgresStore.prune}, which also runs on a timer.
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * import { SessionManager } from 'tessera-session';
 * import { PostgresStore } from 'tessera-session/stores/postgres';
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 2_000, query_timeout: 5_000, idleTimeoutMillis: 1_000 });
 * pool.on('error', (err) => logger.warn({ err }, 'idle PostgreSQL client failed'));
 * const store = new PostgresStore({ pool });
 * await store.createTable();
 * const manager = new SessionManager({ store, secrets: [process.env.SESSION_SECRET!] });
 * ```
 */
export class PostgresStore implements SessionStore {
  readonly name = 'postgresql';
  readonly #pool: PostgresQueryable;
  readonly #table: SqlTable;
  readonly #now: () => number;
  readonly #sql: ReturnType<typeof statementsFor>;
  /** Each statement's name on the server, when prepared; empty otherwise. */
  readonly #names: Partial<Record<Statement, string>>;
  readonly #pruner: Pruner;

  /** Validates every option; a bad one throws `SessionError` with code `INVALID_OPTION`. */
  constructor(options: PostgresStoreOptions) {
    optionsObject(OWNER, options, 'a pool');
    this.#pool = checkPool(options.pool);
    this.#table = sqlTable(OWNER, TABLE_RULES, options.table);
    const prepared = booleanOption(OWNER, 'preparedStatements', options.preparedStatements, true);
    const pruning = resolvePruning(OWNER, options);
    this.#now = pruning.now;
    this.#sql = statementsFor(this.#table.sql, pruning.batchSize);
    this.#names = prepared ? statementNames(this.#sql) : {};
    this.#pruner = new Pruner(pruning, async (now) => {
      const { rowCount } = await this.#run('prune', [millis(now)]);
      return rowCount ?? 0;
    });
  }

  /** Runs one of the store's statements, by name when prepared. */
  #run(statement: Statement, values: unknown[]) {
    const text = this.#sql[statement];
    const name = this.#names[statement];
    const result =
      name === undefined
        ? this.#pool.query(text, values)
        : (this.#pool as unknown as PreparingQueryable).query({ name, text, values });
    return result.catch((error: unknown) => {
      throw refusedValue(error) ?? error;
    });
  }

  /** The quoted, possibly schema-qualified table name the store uses. */
  get table(): string {
    return this.#table.sql;
  }

  /**
   * Creates the table and its indexes if missing; see {@link createPostgresTable}. Call it at
   * start-up, or create the table with a migration tool instead.
   */
  async createTable(): Promise<void> {
    await this.#pool.query(createTableSql(this.#table));
  }

  /** One `SELECT` by primary key, live rows only. */
  async get(key: string): Promise<StoredRecord | null> {
    const { rows } = await this.#run('get', [key, millis(this.#now())]);
    const row = rows[0] as SessionRow | undefined;
    return row === undefined ? null : toStored(row);
  }

  /**
   * One `INSERT ... ON CONFLICT DO UPDATE` that replaces only an expired row; answers whether a
   * row was written.
   */
  async create(key: string, record: SessionRecord): Promise<boolean> {
    const { rowCount } = await this.#run('create', [
      key,
      record.data,
      millis(record.expiresAt),
      record.userId,
      millis(this.#now()),
    ]);
    return rowCount === 1;
  }

  /**
   * One statement: a locking read of the live row and a compare-and-set `UPDATE` joined to it,
   * which together tell `ok`, `conflict` and `missing` apart.
   */
  async update(key: string, record: SessionRecord, expectedVersion: number): Promise<UpdateResult> {
    const { rows } = await this.#run('update', [
      key,
      record.data,
      millis(record.expiresAt),
      record.userId,
      expectedVersion,
      millis(this.#now()),
    ]);
    const row = rows[0] as
      { new_version: number | null; current_version: number | null } | undefined;
    if (row?.new_version != null) return { status: 'ok', version: row.new_version };
    if (row?.current_version != null) return { status: 'conflict' };
    return { status: 'missing' };
  }

  /** One `UPDATE` of `expires_at` on the live row. */
  async touch(key: string, expiresAt: number): Promise<boolean> {
    const { rowCount } = await this.#run('touch', [key, millis(expiresAt), millis(this.#now())]);
    return rowCount === 1;
  }

  /** One `DELETE` by primary key. */
  async delete(key: string): Promise<void> {
    await this.#run('delete', [key]);
  }

  /** One `SELECT` on the `user_id` index, live rows only. */
  async listByUser(userId: string): Promise<UserRecord[]> {
    const { rows } = await this.#run('list', [userId, millis(this.#now())]);
    return (rows as UserRow[]).map((row) => ({ key: row.key, ...toStored(row) }));
  }

  /**
   * One `DELETE` of the user's rows (expired ones too) but `exceptKey`; answers how many of the
   * deleted rows were live.
   */
  async deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    const { rows } = await this.#run('deleteByUser', [
      userId,
      exceptKey ?? null,
      millis(this.#now()),
    ]);
    return Number((rows[0] as { removed: number } | undefined)?.removed ?? 0);
  }

  /**
   * Deletes expired rows in batches of `pruneBatchSize` and answers how many. The timer calls it;
   * call it yourself (from a job) when the timer is disabled.
   */
  prune(): Promise<number> {
    return this.#pruner.prune();
  }

  /** Stops the prune timer and waits for a prune in progress. The pool is left open. */
  close(): Promise<void> {
    return this.#pruner.close();
  }
}
