/**
 * Reading a store URL (`SESSION_STORE`) whole, opening nothing: what store it names, where, and
 * Tessera's own options in its query. See {@link parseStoreUrl}.
 *
 * @packageDocumentation
 */

/** A store URL that cannot be used; the message says why. */
export class StoreUrlError extends Error {
  override name = 'StoreUrlError';
}

/**
 * A store whose server could not be reached, or did not answer within 5 seconds (a SQLite file
 * that cannot be opened counts too); the message says which and why.
 */
export class StoreUnreachableError extends StoreUrlError {
  override name = 'StoreUnreachableError';
}

/** A URL with its password replaced by `***`, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/** A SQL table name, optionally qualified by its schema or database: what every SQL store takes. */
const TABLE = /^(?:[A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,47}$/;
/** SQLite takes no schema part. */
const SQLITE_TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;
/** A key prefix that needs no quoting in any store or log line. */
const PREFIX = /^[A-Za-z0-9_.:-]{1,100}$/;
/** `host:port`, the host a name, an IPv4 address or a bracketed IPv6 address. */
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/;
/** Whether `text` holds a control character: never part of a store URL or a file path worth opening. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** What a `SESSION_STORE` URL names, before anything is opened. */
export type StoreSpec =
  | { kind: 'memory' }
  | { kind: 'sqlite'; path: string; table?: string }
  | { kind: 'postgres'; url: string; table?: string }
  | { kind: 'mysql'; url: string; table?: string }
  | { kind: 'redis'; url: string; prefix?: string }
  | { kind: 'redis-cluster'; hosts: string[]; prefix?: string }
  | { kind: 'memcached'; servers: string; prefix?: string; userIndex?: 'best-effort' };

const SCHEMES =
  'SESSION_STORE must start with memory:, sqlite:, postgres://, mysql://, redis://, redis-cluster:// or memcached://';

/**
 * The query of a store URL split into Tessera's own options (`table`, `prefix`, `userIndex`) and the rest,
 * which stays as written for the driver. One pass over the query.
 */
function splitQuery(query: string): { own: Map<string, string>; rest: string[] } {
  const own = new Map<string, string>();
  const rest: string[] = [];
  for (const part of query.split('&')) {
    if (part === '') continue;
    // URLSearchParams decodes as browsers do (`+` is a space) and never throws on a stray `%`.
    const [name, value] = [...new URLSearchParams(part)][0] ?? ['', ''];
    if (name !== 'table' && name !== 'prefix' && name !== 'userIndex') {
      rest.push(part);
      continue;
    }
    if (own.has(name)) throw new StoreUrlError(`${name}= is given twice`);
    own.set(name, value);
  }
  return { own, rest };
}

/** `host:port,host:port,...` as a list, each checked; empty entries are skipped. */
function hostList(text: string, scheme: string): string[] {
  const hosts = text.split(',').filter((host) => host !== '');
  if (hosts.length === 0) throw new StoreUrlError(`${scheme}: needs host:port,host:port,...`);
  for (const host of hosts) {
    const port = HOST_PORT.exec(host)?.[1];
    if (port === undefined || Number(port) < 1 || Number(port) > 65_535) {
      throw new StoreUrlError(`${scheme}: ${JSON.stringify(host)} is not host:port`);
    }
  }
  return hosts;
}

/**
 * Reads a `SESSION_STORE` URL without opening anything. SQL URLs take `?table=NAME` (letters,
 * digits and underscores, `schema.table` for PostgreSQL and MySQL), Redis and Memcached URLs
 * `?prefix=P` (1 to 100 of `[A-Za-z0-9_.:-]`), Memcached URLs `?userIndex=best-effort` too (see
 * `MemcachedStoreOptions.userIndex`); the query starts at the first `?`. PostgreSQL,
 * MySQL and Redis URLs keep their other parameters, as written, for their driver. Throws
 * {@link StoreUrlError}, and nothing else, for anything it cannot use.
 */
export function parseStoreUrl(original: string): StoreSpec {
  if (typeof original !== 'string') throw new StoreUrlError('SESSION_STORE must be a string');
  if (hasControl(original)) {
    throw new StoreUrlError('SESSION_STORE must not contain control characters');
  }
  const at = original.indexOf('?');
  const base = at === -1 ? original : original.slice(0, at);
  const { own, rest } = splitQuery(at === -1 ? '' : original.slice(at + 1));
  const table = own.get('table');
  const prefix = own.get('prefix');
  const userIndex = own.get('userIndex');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(base)?.[1]?.toLowerCase();
  const after = base.slice((scheme?.length ?? 0) + 1);
  const kind =
    scheme === 'postgresql'
      ? 'postgres'
      : scheme === 'mariadb'
        ? 'mysql'
        : scheme === 'rediss'
          ? 'redis'
          : scheme;
  const sql = kind === 'sqlite' || kind === 'postgres' || kind === 'mysql';
  const keyed = kind === 'redis' || kind === 'redis-cluster' || kind === 'memcached';
  if (!sql && !keyed && kind !== 'memory') {
    throw new StoreUrlError(`${SCHEMES} (got ${JSON.stringify(redact(base))})`);
  }
  if (table !== undefined && !sql) throw new StoreUrlError(`${scheme}: takes no table= option`);
  if (prefix !== undefined && !keyed) throw new StoreUrlError(`${scheme}: takes no prefix= option`);
  if (table !== undefined && !(kind === 'sqlite' ? SQLITE_TABLE : TABLE).test(table)) {
    throw new StoreUrlError(
      `table= must be letters, digits and underscores${kind === 'sqlite' ? '' : ' (schema.table allowed)'}, not starting with a digit, at most 48 characters`,
    );
  }
  if (userIndex !== undefined && kind !== 'memcached') {
    throw new StoreUrlError(`${scheme}: takes no userIndex= option`);
  }
  if (userIndex !== undefined && userIndex !== 'best-effort') {
    throw new StoreUrlError('userIndex= must be best-effort (Memcached may evict the index)');
  }
  if (prefix !== undefined && !PREFIX.test(prefix)) {
    throw new StoreUrlError('prefix= must be 1 to 100 characters of A-Z a-z 0-9 _ . : -');
  }
  const driverUrl = base + (rest.length > 0 ? `?${rest.join('&')}` : '');
  // Only the drivers of URL schemes read parameters; elsewhere one would be silently ignored.
  if (rest.length > 0 && kind !== 'postgres' && kind !== 'mysql' && kind !== 'redis') {
    const known = sql
      ? ' but table='
      : kind === 'memcached'
        ? ' but prefix= and userIndex='
        : keyed
          ? ' but prefix='
          : '';
    throw new StoreUrlError(`${scheme}: takes no option${known}`);
  }
  switch (kind) {
    case 'memory':
      if (after !== '' && after !== '//') throw new StoreUrlError('memory: takes nothing after it');
      return { kind };
    case 'sqlite': {
      const path = after.replace(/^\/\//, '');
      if (path === '')
        throw new StoreUrlError('sqlite: needs a file path, e.g. sqlite:data/sessions.db');
      return { kind, path, table };
    }
    case 'postgres':
    case 'mysql':
    case 'redis': {
      if (!after.startsWith('//')) throw new StoreUrlError(`${scheme}: must be ${scheme}://...`);
      if (!URL.canParse(driverUrl)) {
        throw new StoreUrlError(`${JSON.stringify(redact(driverUrl))} is not a valid URL`);
      }
      // mysql2 knows the mysql: scheme only.
      const url = kind === 'mysql' ? `mysql:${driverUrl.slice(scheme!.length + 1)}` : driverUrl;
      return kind === 'redis' ? { kind, url, prefix } : { kind, url, table };
    }
    case 'redis-cluster':
    case 'memcached': {
      if (!after.startsWith('//'))
        throw new StoreUrlError(`${scheme}: must be ${scheme}://host:port`);
      const hosts = hostList(after.slice(2).replace(/\/$/, ''), scheme!);
      if (kind === 'redis-cluster') return { kind, hosts, prefix };
      const servers = hosts.join(',');
      return userIndex === undefined
        ? { kind, servers, prefix }
        : { kind, servers, prefix, userIndex: 'best-effort' };
    }
  }
  throw new StoreUrlError(SCHEMES);
}
