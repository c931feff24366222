/**
 * Option checks that several stores repeat: the options object, the client, SQL table names and
 * the user index margin of the key-value stores. Each refuses a bad value with a `SessionError`
 * of code `INVALID_OPTION` that names the store and the option.
 *
 * @packageDocumentation
 */
import { invalidOption, numberOption } from '../options.js';

/** The table the SQL stores use when none is named. */
export const DEFAULT_TABLE = 'tessera_sessions';

/** The default `indexMargin` of the Redis and Memcached stores: one hour, in milliseconds. */
export const DEFAULT_INDEX_MARGIN = 3_600_000;

/** The largest `indexMargin`: 365 days, in milliseconds. */
export const MAX_INDEX_MARGIN = 365 * 24 * 3_600_000;

/**
 * Answers `options` when it is an object; otherwise throws `INVALID_OPTION`, saying that `owner`
 * needs an options object with `needs` (`'a pool'`, `'a client'`...).
 */
export function optionsObject<T>(owner: string, options: T, needs: string): T {
  if (typeof options !== 'object' || options === null) {
    invalidOption(owner, `needs an options object with ${needs}`);
  }
  return options;
}

/**
 * Answers `value` when it is an object that has a function under each name of `methods`;
 * otherwise throws `INVALID_OPTION`, saying that the option `name` must be `kind`.
 *
 * @example
 * ```ts
 * const pool = clientOption<PostgresQueryable>('PostgresStore', 'pool', options.pool, ['query'], 'a pg.Pool');
 * ```
 */
export function clientOption<T>(
  owner: string,
  name: string,
  value: unknown,
  methods: readonly string[],
  kind: string,
): T {
  const ok =
    typeof value === 'object' &&
    value !== null &&
    methods.every((method) => typeof (value as Record<string, unknown>)[method] === 'function');
  if (!ok) invalidOption(owner, `${name} must be ${kind}`);
  return value as T;
}

/** What a SQL store allows in its table name. */
export interface TableRules {
  /**
   * What the part before a dot is called (`'schema'`, `'database'`), when the name may be
   * qualified by one. @defaultValue none: the name has no dot
   */
  qualifier?: string;
  /** The longest table part, in characters. */
  maxLength: number;
  /** The longest qualifier, in characters. @defaultValue `maxLength` */
  maxQualifierLength?: number;
  /** The character identifiers are quoted with in SQL: `"` (standard SQL) or `` ` `` (MySQL). */
  quote: string;
}

/** A table name after {@link sqlTable}'s checks. */
export interface SqlTable {
  /** The name quoted for SQL, qualifier included: `"app"."sessions"`. */
  sql: string;
  /** The table part, unquoted: the base of index names. */
  name: string;
  /** The name as given. */
  plain: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Checks a table name (by default {@link DEFAULT_TABLE}) and quotes it. Each part must be
 * letters, digits and underscores, not starting with a digit: nothing in it then needs escaping,
 * so no name can break out of its quotes.
 */
export function sqlTable(
  owner: string,
  rules: TableRules,
  table: unknown = DEFAULT_TABLE,
): SqlTable {
  const fail = (why: string): never => invalidOption(owner, `table ${why}`);
  if (typeof table !== 'string') return fail('must be a string');
  const parts = rules.qualifier === undefined ? [table] : table.split('.');
  if (parts.length > 2) fail(`may have at most one dot (${rules.qualifier}.table)`);
  if (!parts.every((part) => IDENTIFIER.test(part))) {
    fail('must be letters, digits and underscores, not starting with a digit');
  }
  const name = parts[parts.length - 1]!;
  if (name.length > rules.maxLength) fail(`name must be at most ${rules.maxLength} characters`);
  const maxQualifier = rules.maxQualifierLength ?? rules.maxLength;
  if (parts.length === 2 && parts[0]!.length > maxQualifier) {
    fail(`${rules.qualifier} must be at most ${maxQualifier} characters`);
  }
  const sql = parts.map((part) => `${rules.quote}${part}${rules.quote}`).join('.');
  return { sql, name, plain: table };
}

/**
 * Checks the user index margin of the Redis and Memcached stores: how far past a session's
 * expiry its entry in the user index reaches, a whole number of milliseconds from 0 to
 * {@link MAX_INDEX_MARGIN}; {@link DEFAULT_INDEX_MARGIN} when `undefined`. `name` is the option
 * as the application spelt it (the Redis store also takes a deprecated older name).
 */
export function indexMarginOption(owner: string, name: string, value: unknown): number {
  return numberOption(owner, name, value, DEFAULT_INDEX_MARGIN, {
    integer: true,
    max: MAX_INDEX_MARGIN,
  });
}
