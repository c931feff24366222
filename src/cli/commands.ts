/**
 * The CLI's commands: what each takes, its help, and what it does.
 *
 * @packageDocumentation
 */
import type { StoreConnection, StoreSpec } from '../store-url.js';
import { createTables } from '../store-url.js';
import { hasUserIndex } from '../store.js';
import { DEFAULT_TABLE } from '../stores/shared.js';
import type { SessionInfo } from '../users.js';
import type { Context } from './context.js';
import {
  managerFor,
  required,
  requireTable,
  withConnection,
  withSqlConnection,
  withStore,
} from './context.js';
import { doctor } from './doctor.js';
import { CliError } from './errors.js';
import { SqlInspector, isSql, isSqlKind, memcachedItems, redisKeys } from './inspect.js';
import { count, formatTime, isoTime, plural, table } from './output.js';

/** One option of a command, for `parseArgs` and for its help. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** What the value is called in the help: `ID`, `URL`; none for a boolean. */
  value?: string;
  help: string;
}

/** A command of the CLI. */
export interface Command {
  name: string;
  /** One line, for the list of commands. */
  summary: string;
  /** What follows the command's name in its usage line. */
  usage: string;
  /** Its help, after the usage line. */
  help: string;
  /** Its own options; every command also takes `--store`, `--json` and `--help`. */
  options: Record<string, OptionSpec>;
  run(context: Context): Promise<number>;
}

/** The store kinds' names in messages. */
const STORE_NAMES: Record<StoreSpec['kind'], string> = {
  memory: 'The memory store',
  sqlite: 'SQLite',
  postgres: 'PostgreSQL',
  mysql: 'MySQL',
  redis: 'Redis',
  'redis-cluster': 'Redis Cluster',
  memcached: 'Memcached',
};

const USER: OptionSpec = {
  type: 'string',
  value: 'ID',
  help: 'the user ID, as the application gave it to setUser or login (required)',
};

const KEYS_FILE: OptionSpec = {
  type: 'string',
  value: 'FILE',
  help: 'read the encryption keys from FILE (id:base64key entries, comma- or line-separated) instead of SESSION_ENCRYPTION_KEYS',
};

const ENCRYPTION_HELP = `If the application encrypts records (SessionManager's encryption option), give the CLI
the same keys, in SESSION_ENCRYPTION_KEYS (id:base64key,id:base64key) or a file named by
--encryption-keys-file: without them sealed records cannot be read.`;

const migrate: Command = {
  name: 'migrate',
  summary: 'create the SQL table and its indexes (safe to run again)',
  usage: '[--store URL] [--json]',
  help: `Creates the session table and its indexes if they are missing (CREATE ... IF NOT EXISTS),
so it is safe to run on every deploy, and from several machines at once. A SQLite file is
created if it does not exist. Redis and Memcached keep no schema: there is nothing to create.`,
  options: {},
  async run(context) {
    const { spec, out } = context;
    if (!isSqlKind(spec.kind)) {
      const note = `${STORE_NAMES[spec.kind]} keeps no schema: nothing to migrate.`;
      out.line(note);
      out.document({ kind: spec.kind, table: null, created: false, note });
      return 0;
    }
    return withSqlConnection(context, { createFile: true }, async (connection) => {
      const inspector = new SqlInspector(connection);
      const existed = (await inspector.shape()) !== null;
      await createTables(connection);
      const shape = await inspector.shape();
      const missing = ['expires_at', 'user_id'].filter((column) => !shape?.indexed.has(column));
      if (missing.length > 0) {
        throw new CliError(
          'FAILED',
          `table ${inspector.table} was already there without an index on ${missing.join(' and ')}: add it (see tessera-session schema)`,
        );
      }
      out.line(
        existed
          ? `Table ${inspector.table} and its indexes were already in place in ${connection.description}.`
          : `Created table ${inspector.table} and its indexes in ${connection.description}.`,
      );
      out.document({
        store: connection.description,
        kind: spec.kind,
        table: inspector.table,
        created: !existed,
      });
      return 0;
    });
  },
};

const schema: Command = {
  name: 'schema',
  summary: 'print the SQL that creates the table and its indexes, for a DBA',
  usage: '[--store URL] [--json]',
  help: `Prints the statements migrate runs (CREATE TABLE and CREATE INDEX, IF NOT EXISTS) for the
store and table the URL names, without connecting to it. For migration tools that own the schema.`,
  options: {},
  async run({ spec, out }) {
    const table = 'table' in spec ? spec.table : undefined;
    let ddl: string | null = null;
    if (spec.kind === 'sqlite')
      ddl = `${(await import('../stores/sqlite.js')).sqliteSchema(table)}\n`;
    if (spec.kind === 'postgres')
      ddl = (await import('../stores/postgres.js')).postgresSchema(table);
    if (spec.kind === 'mysql')
      ddl = `${(await import('../stores/mysql.js')).mysqlSchema(table)};\n`;
    if (ddl === null) {
      const note = `${STORE_NAMES[spec.kind]} keeps no schema: there is no SQL to run.`;
      out.note(note);
      out.document({ kind: spec.kind, table: null, ddl: null, note });
      return 0;
    }
    out.text(ddl);
    out.document({ kind: spec.kind, table: table ?? DEFAULT_TABLE, ddl });
    return 0;
  },
};

/** A session as `--json` shows it: times in ISO 8601, absent fields `null`. */
function sessionDocument(info: SessionInfo) {
  return {
    handle: info.handle,
    createdAt: isoTime(info.createdAt),
    lastSeenAt: isoTime(info.lastSeenAt),
    expiresAt: isoTime(info.expiresAt),
    authenticatedAt: isoTime(info.authenticatedAt),
    userAgent: info.userAgent ?? null,
    ip: info.ip ?? null,
  };
}

const list: Command = {
  name: 'list',
  summary: "show a user's live sessions (handle, created, last seen, expires, IP, user agent)",
  usage: '--user ID [--store URL] [--encryption-keys-file FILE] [--json]',
  help: `Shows a user's live sessions, most recently seen first: the handle that revoke --handle
takes, when each was created, last seen and expires (UTC), and the IP and user agent it was
created from. A handle is not a session ID and cannot be used as a cookie.

${ENCRYPTION_HELP}`,
  options: { user: USER, 'encryption-keys-file': KEYS_FILE },
  async run(context) {
    const user = required(context, 'user');
    const { out } = context;
    return withConnection(context, { createFile: false }, (connection) =>
      withStore(connection, {}, async (store) => {
        const manager = managerFor(context, store);
        const sessions = await manager.listUserSessions(user);
        // Records of the user the manager could not read: sealed under keys not given, or altered.
        const stored = hasUserIndex(store)
          ? (await store.listByUser(user)).length
          : sessions.length;
        const unreadable = Math.max(0, stored - sessions.length);
        out.document({
          store: connection.description,
          user,
          sessions: sessions.map(sessionDocument),
          unreadable,
        });
        out.line(
          `${plural(sessions.length, 'live session')} of user ${user} in ${connection.description}`,
        );
        if (sessions.length > 0) {
          out.line();
          const rows = sessions.map((info) => [
            info.handle,
            formatTime(info.createdAt),
            formatTime(info.lastSeenAt),
            formatTime(info.expiresAt),
            info.ip ?? '-',
            info.userAgent ?? '-',
          ]);
          const header = ['HANDLE', 'CREATED', 'LAST SEEN', 'EXPIRES', 'IP', 'USER AGENT'];
          for (const line of table(header, rows)) out.line(line);
        }
        if (unreadable > 0) {
          out.note(
            `${plural(unreadable, 'more record')} of this user could not be read: sealed under keys not given (set SESSION_ENCRYPTION_KEYS), or altered in the store.`,
          );
        }
        return 0;
      }),
    );
  },
};

const revoke: Command = {
  name: 'revoke',
  summary: "end a user's sessions, or the one with a handle",
  usage: '--user ID [--handle HANDLE] [--store URL] [--encryption-keys-file FILE] [--json]',
  help: `Ends every session of the user (sign out everywhere), or with --handle only the session
with that handle (from tessera-session list), and prints how many ended. Ending what has already
ended is not an error: it ends 0.

Ending one session by its handle reads its record first, to check that it is the user's.
${ENCRYPTION_HELP}`,
  options: {
    user: USER,
    handle: { type: 'string', value: 'HANDLE', help: 'end only this session (from list)' },
    'encryption-keys-file': KEYS_FILE,
  },
  async run(context) {
    const user = required(context, 'user');
    const handle = context.values.handle;
    if (handle === '') throw new CliError('USAGE', '--handle is empty');
    const { out } = context;
    return withConnection(context, { createFile: false }, (connection) =>
      withStore(connection, {}, async (store) => {
        const manager = managerFor(context, store);
        const ended =
          typeof handle === 'string'
            ? Number(await manager.revokeUserSession(user, handle))
            : await manager.revokeUserSessions(user);
        out.document({
          store: connection.description,
          user,
          handle: typeof handle === 'string' ? handle : null,
          ended,
        });
        out.line(`Ended ${plural(ended, 'session')} of user ${user} in ${connection.description}.`);
        if (typeof handle === 'string' && ended === 0) {
          out.note(
            'No live session of this user has that handle (if records are encrypted, give the keys: see --help).',
          );
        }
        return 0;
      }),
    );
  },
};

const BATCH_LIMIT = 100_000;

const prune: Command = {
  name: 'prune',
  summary: 'remove expired records from a SQL store, in bounded batches',
  usage: '[--store URL] [--batch-size N] [--progress] [--json]',
  help: `Deletes the records that have expired, in batches of at most --batch-size rows (1,000 by
default) so that no statement holds a lock for long, and prints how many it removed. A running
application prunes on its own timer too (pruneInterval); this is for a database whose
application has it turned off, or a backlog after a long stop.

Progress goes to stderr on a terminal, or anywhere with --progress. Redis and Memcached expire
records themselves: there is nothing to prune.`,
  options: {
    'batch-size': {
      type: 'string',
      value: 'N',
      help: `rows per delete, 1 to ${count(BATCH_LIMIT)} (default 1,000)`,
    },
    progress: { type: 'boolean', help: 'show progress on stderr even when it is not a terminal' },
  },
  async run(context) {
    const { spec, out } = context;
    const batchSize = batchSizeOf(context.values['batch-size']);
    if (!isSqlKind(spec.kind)) {
      const note = `${STORE_NAMES[spec.kind]} expires records itself: nothing to prune.`;
      out.line(note);
      out.document({ kind: spec.kind, removed: null, native: true, note });
      return 0;
    }
    return withSqlConnection(context, { createFile: false }, async (connection) => {
      // One instant for the whole run: the rows expired by then are what this run removes.
      const now = Date.now();
      const inspector = new SqlInspector(connection);
      return withStore(connection, { now: () => now, pruneBatchSize: batchSize }, async (store) => {
        const total = await inspector.expired(now);
        const stopProgress =
          out.showsProgress && total > 0
            ? reportProgress(context, inspector, now, total)
            : undefined;
        let removed: number;
        try {
          removed = (await store.prune?.()) ?? 0;
        } finally {
          await stopProgress?.();
        }
        out.line(`Removed ${plural(removed, 'expired record')} from ${connection.description}.`);
        out.document({ store: connection.description, kind: spec.kind, removed, native: false });
        return 0;
      });
    });
  },
};

function batchSizeOf(value: string | boolean | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || !/^[0-9]+$/.test(value) || n < 1 || n > BATCH_LIMIT) {
    throw new CliError(
      'USAGE',
      `--batch-size must be a whole number from 1 to ${count(BATCH_LIMIT)}`,
    );
  }
  return n;
}

/**
 * Shows how many of the `total` rows expired at `now` are gone (counted over the expiry index):
 * at once, then each second while the prune runs, and at the end. Answers a function that takes
 * the last count and stops.
 */
function reportProgress(
  { out }: Context,
  inspector: SqlInspector,
  now: number,
  total: number,
): () => Promise<void> {
  const show = (left: number) => {
    const done = Math.max(0, total - left);
    const percent = Math.floor((done * 100) / total);
    out.progress(
      `pruning: ${count(done)} of ${count(total)} expired records removed (${percent}%)`,
    );
  };
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pending: Promise<void> = Promise.resolve();
  const tick = () => {
    pending = inspector.expired(now).then(
      (left) => {
        if (stopped) return;
        show(left);
        timer = setTimeout(tick, 1_000);
      },
      () => undefined,
    );
  };
  show(total);
  timer = setTimeout(tick, 1_000);
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await pending;
    show(await inspector.expired(now).catch(() => total));
    out.endProgress();
  };
}

const stats: Command = {
  name: 'stats',
  summary: 'count live sessions and users (SQL stores)',
  usage: '[--store URL] [--json]',
  help: `Counts the live sessions, the distinct users they belong to, and the expired records not yet
pruned, where the store can count cheaply: the SQL stores count over their expiry and user
indexes. Redis and Memcached cannot: neither keeps a count per key prefix, and counting would
mean walking every key on the server (Redis SCAN) or is not possible at all (Memcached cannot
list its keys). For them it says so, with the server's total item count for scale.`,
  options: {},
  async run(context) {
    const { out } = context;
    return withConnection(context, { createFile: false }, async (connection) => {
      if (isSql(connection)) {
        const inspector = new SqlInspector(connection);
        await requireTable(connection);
        const counts = await inspector.counts(Date.now());
        out.line(`${connection.description}, table ${inspector.table}:`);
        const lines = [
          ['live sessions', counts.sessions],
          ['signed-in users', counts.users],
          ['expired, not yet pruned', counts.expired],
        ] as const;
        const width = Math.max(...lines.map(([, n]) => count(n).length));
        for (const [label, n] of lines)
          out.line(`  ${label.padEnd(25)}${count(n).padStart(width)}`);
        out.document({
          store: connection.description,
          kind: connection.kind,
          countable: true,
          ...counts,
        });
        return 0;
      }
      const reason = await uncountable(connection);
      out.line(reason);
      out.document({
        store: connection.description,
        kind: connection.kind,
        countable: false,
        reason,
      });
      return 0;
    });
  },
};

/** Why a key-value store cannot count its sessions, with its total item count for scale. */
async function uncountable(connection: StoreConnection): Promise<string> {
  switch (connection.kind) {
    case 'redis':
    case 'redis-cluster':
      return `${connection.description} cannot count sessions cheaply: Redis keeps no count per key prefix, and counting would mean a SCAN of every key on the server (${count(await redisKeys(connection))} keys in all, of every prefix).`;
    case 'memcached':
      return `${connection.description} cannot count sessions: Memcached cannot list its keys, and its item count (${count(await memcachedItems(connection))} items in all) mixes sessions, user indexes and anything else stored there.`;
    default:
      return `${connection.description} cannot be counted from outside the application.`;
  }
}

/** Every command, in the order the help lists them. */
export const COMMANDS: readonly Command[] = [migrate, schema, list, revoke, prune, stats, doctor];
