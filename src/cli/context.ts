/**
 * What every command works with: the parsed options, the output, the store URL, and the steps
 * they share (connecting, checking the SQL table, building a store and a manager).
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { EncryptionKey } from '../codec.js';
import { isSessionError } from '../errors.js';
import { SessionManager } from '../manager.js';
import type { SessionStore } from '../store.js';
import type { ConnectOptions, StoreConnection, StoreSpec } from '../store-url.js';
import { connectStore, storeOn } from '../store-url.js';
import { CliError, EXIT, asCliError, oneLine } from './errors.js';
import type { SqlConnection } from './inspect.js';
import { COLUMNS, SqlInspector, isSql } from './inspect.js';
import { parseEncryptionKeys } from './keys.js';
import type { Output } from './output.js';

/** The options a command was given: strings and booleans by name, as `parseArgs` answers them. */
export type Values = Record<string, string | boolean | undefined>;

/** A command's inputs. */
export interface Context {
  /** The command's name, for messages. */
  command: string;
  values: Values;
  out: Output;
  spec: StoreSpec;
  env: NodeJS.ProcessEnv;
}

/** A required string option, or a usage error naming it. */
export function required(context: Context, name: string): string {
  const value = context.values[name];
  if (typeof value !== 'string' || value === '') {
    throw new CliError(
      'USAGE',
      `--${name} is required (see tessera-session ${context.command} --help)`,
    );
  }
  return value;
}

/**
 * Connects to the store, runs `use`, and closes the connection whatever happens. A store that
 * stops answering half-way is reported as unreachable, naming it.
 */
export async function withConnection<T>(
  context: Context,
  options: ConnectOptions,
  use: (connection: StoreConnection) => Promise<T>,
): Promise<T> {
  const connection = await connectStore(context.spec, options);
  try {
    return await use(connection);
  } catch (error) {
    const failure = asCliError(error);
    if (failure.exitCode !== EXIT.unreachable) throw failure;
    throw new CliError(
      'UNREACHABLE',
      `${connection.description} stopped answering: ${oneLine(error)}`,
      EXIT.unreachable,
    );
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** {@link withConnection} for a URL that names a SQL store (the caller has checked its kind). */
export function withSqlConnection<T>(
  context: Context,
  options: ConnectOptions,
  use: (connection: SqlConnection) => Promise<T>,
): Promise<T> {
  return withConnection(context, options, (connection) => {
    if (!isSql(connection)) throw new TypeError(`${connection.kind} is not a SQL store`);
    return use(connection);
  });
}

/**
 * For a SQL store, checks that its table exists with the store's columns, so that a command on
 * a database that was never migrated says so (rather than failing on its first query).
 */
export async function requireTable(connection: StoreConnection): Promise<void> {
  if (!isSql(connection)) return;
  const inspector = new SqlInspector(connection);
  const shape = await inspector.shape();
  if (shape === null) {
    throw new CliError(
      'NO_TABLE',
      `${connection.description} has no table ${inspector.table}: run tessera-session migrate`,
    );
  }
  const missing = COLUMNS.filter((column) => !shape.columns.has(column));
  if (missing.length > 0) {
    throw new CliError(
      'NO_TABLE',
      `table ${inspector.table} in ${connection.description} lacks the column(s) ${missing.join(', ')}: it is not a Tessera session table`,
    );
  }
}

/**
 * Builds the store on `connection` and runs `use` with it, then closes it. The store never
 * creates a table and never prunes on a timer: the CLI does only what it is asked.
 */
export async function withStore<T>(
  connection: StoreConnection,
  options: { now?: () => number; pruneBatchSize?: number },
  use: (store: SessionStore) => Promise<T>,
): Promise<T> {
  await requireTable(connection);
  const store = await storeOn(connection, { createTable: false, pruneInterval: 0, ...options });
  try {
    return await use(store);
  } finally {
    await store.close?.();
  }
}

/** The encryption keys from `--encryption-keys-file`, else `SESSION_ENCRYPTION_KEYS`, if any. */
export function encryptionKeys(context: Context): EncryptionKey[] | undefined {
  const file = context.values['encryption-keys-file'];
  if (typeof file === 'string') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new CliError('USAGE', `--encryption-keys-file: cannot read it: ${oneLine(error)}`);
    }
    return parseEncryptionKeys(text, file);
  }
  const fromEnv = context.env.SESSION_ENCRYPTION_KEYS;
  return fromEnv === undefined || fromEnv === ''
    ? undefined
    : parseEncryptionKeys(fromEnv, 'SESSION_ENCRYPTION_KEYS');
}

/**
 * A manager on `store` for listing and revoking, which never sign a cookie. The constructor
 * requires a signing secret all the same: `SESSION_SECRET` when set, otherwise a random one that
 * lives only in this process.
 */
export function managerFor(context: Context, store: SessionStore): SessionManager {
  const keys = encryptionKeys(context);
  const secret = context.env.SESSION_SECRET || randomBytes(32).toString('base64url');
  try {
    return new SessionManager({
      store,
      secrets: [secret],
      encryption: keys === undefined ? undefined : { keys },
    });
  } catch (error) {
    if (!isSessionError(error, 'INVALID_OPTION')) throw error;
    const source = keys === undefined ? 'SESSION_SECRET' : 'SESSION_SECRET or the encryption keys';
    throw new CliError('INVALID_OPTION', `${source}: ${oneLine(error)}`);
  }
}
