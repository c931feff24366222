/**
 * Property tests of the demo's `SESSION_STORE` URL parser (src/store-url.ts): it
 * answers a well-formed store description or throws its own `StoreUrlError`, nothing else.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseStoreUrl, StoreUrlError, type StoreSpec } from '../../src/store-url.js';

const SEED = 20_261_202;
const RUNS = 2_000;

/** What `parseStoreUrl` answers for `url`: its spec, or the error it threw. */
function attempt(url: string): StoreSpec | Error {
  try {
    return parseStoreUrl(url);
  } catch (error) {
    return error as Error;
  }
}

/** Each character percent-encoded (its UTF-8 bytes) or written as `encodeURIComponent` does, as `choices` say. */
function encodeSome(text: string, choices: boolean[]): string {
  let out = '';
  let i = 0;
  for (const c of text) {
    const full = choices[i++ % choices.length] === true;
    out += full
      ? [...Buffer.from(c)].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('')
      : encodeURIComponent(c);
  }
  return out;
}

const SAFE_TABLE = /^(?:[A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,47}$/;
const SAFE_PREFIX = /^[A-Za-z0-9_.:-]{1,100}$/;
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/;

/** What every answer of the parser must satisfy, whatever it was given. */
function expectSafe(spec: StoreSpec): void {
  if ('table' in spec && spec.table !== undefined) expect(spec.table).toMatch(SAFE_TABLE);
  if ('prefix' in spec && spec.prefix !== undefined) expect(spec.prefix).toMatch(SAFE_PREFIX);
  if (spec.kind === 'sqlite') expect(spec.path).not.toBe('');
  if (spec.kind === 'postgres' || spec.kind === 'mysql' || spec.kind === 'redis') {
    expect(URL.canParse(spec.url)).toBe(true);
    expect(spec.url).not.toMatch(/[?&](table|prefix)=/);
  }
  if (spec.kind === 'redis-cluster') {
    expect(spec.hosts.length).toBeGreaterThan(0);
    for (const host of spec.hosts) expect(host).toMatch(HOST_PORT);
  }
  if (spec.kind === 'memcached') {
    for (const host of spec.servers.split(',')) expect(host).toMatch(HOST_PORT);
  }
}

const schemes = [
  'memory:',
  'sqlite:',
  'sqlite://',
  'postgres://',
  'postgresql://',
  'mysql://',
  'mariadb://',
  'redis://',
  'rediss://',
  'redis-cluster://',
  'memcached://',
  'ftp://',
  '',
];

/** Text made of the characters that matter to URLs, often behind a real scheme. */
const urlish = fc
  .tuple(
    fc.constantFrom(...schemes),
    fc.string({
      unit: fc.oneof(
        fc.constantFrom(...'?&=%:/,@[]#+;\'" .-_'.split('')),
        fc.constantFrom('table', 'prefix', 'localhost', '6379', '%2', '%zz', '%E0%A4%A'),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      ),
      maxLength: 40,
    }),
  )
  .map(([scheme, rest]) => scheme + rest);

describe('parseStoreUrl on arbitrary input', () => {
  it(`answers a safe spec or throws StoreUrlError, nothing else (${RUNS * 2} runs)`, () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), urlish), (url) => {
        const result = attempt(url);
        if (result instanceof Error) expect(result).toBeInstanceOf(StoreUrlError);
        else expectSafe(result);
      }),
      { numRuns: RUNS * 2, seed: SEED },
    );
  });

  it('reads a megabyte of hostile text in one pass, answering a safe spec or StoreUrlError', () => {
    for (const url of [
      `redis://h:1?${'&'.repeat(1_000_000)}`,
      `postgres://h/db?${'table=%'.repeat(150_000)}`,
      `redis-cluster://${'h:1,'.repeat(250_000)}x`,
      `memcached://${'['.repeat(1_000_000)}`,
      `sqlite:${'/'.repeat(1_000_000)}?table=${'a'.repeat(100_000)}`,
      `${'a'.repeat(1_000_000)}:`,
      `ftp://u:${'x'.repeat(1_000_000)}`,
    ]) {
      const result = attempt(url);
      if (result instanceof Error) expect(result).toBeInstanceOf(StoreUrlError);
      else expectSafe(result);
    }
    expect(parseStoreUrl(`redis://h:1?${'&'.repeat(1_000_000)}`)).toEqual({
      kind: 'redis',
      url: 'redis://h:1',
      prefix: undefined,
    });
  });

  it('never shows a password of a URL it refuses (500 runs)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('ftp://', 'postgres://', 'redis://', 'mysql://'),
        fc.stringMatching(/^[A-Za-z0-9]{12,30}$/),
        fc.constantFrom(
          '?table=bad name',
          '?prefix=bad;prefix',
          '[',
          '?table=a&table=b',
          ':99999999',
        ),
        (scheme, password, breakage) => {
          const url = scheme.startsWith('ftp')
            ? `${scheme}user:${password}@host/x`
            : `${scheme}user:${password}@host${breakage.startsWith('?') ? '/db' : ''}${breakage}`;
          const result = attempt(url);
          if (result instanceof Error) expect(result.message).not.toContain(password);
        },
      ),
      { numRuns: 500, seed: SEED },
    );
  });
});

const table = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,47}$/);
const qualifiedTable = fc.oneof(
  table,
  fc.tuple(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/), table).map(([s, t]) => `${s}.${t}`),
);
const prefix = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,100}$/);
const host = fc.oneof(
  fc.stringMatching(/^[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}$/),
  fc.ipV4(),
  fc.constant('[::1]'),
);
const port = fc.integer({ min: 1, max: 65_535 });
const hostPort = fc.tuple(host, port).map(([h, p]) => `${h}:${p}`);
/** Driver parameters: never named `table` or `prefix`, written as they go to the driver. */
const driverParams = fc.array(
  fc
    .tuple(
      fc.stringMatching(/^[a-z_]{1,12}$/).filter((n) => n !== 'table' && n !== 'prefix'),
      fc.stringMatching(/^[A-Za-z0-9._~-]{0,12}$/),
    )
    .map(([n, v]) => `${n}=${v}`),
  { maxLength: 3 },
);
const encoding = fc.array(fc.boolean(), { minLength: 1, maxLength: 8 });

/** A query of driver parameters with the demo's option (when given) at any place among them. */
function query(params: string[], option: string | undefined, at: number): string {
  const parts = [...params];
  if (option !== undefined) parts.splice(at % (parts.length + 1), 0, option);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

describe('parseStoreUrl on well-formed URLs', () => {
  const options = { numRuns: RUNS, seed: SEED };

  it('reads memory: in any case', () => {
    for (const url of ['memory:', 'memory://', 'MEMORY:', 'Memory://']) {
      expect(parseStoreUrl(url)).toEqual({ kind: 'memory' });
    }
  });

  it(`reads sqlite:PATH with ?table= (${RUNS} runs)`, () => {
    const path = fc.stringMatching(/^[A-Za-z0-9_. /-]{1,40}$/).filter((p) => !p.startsWith('//'));
    fc.assert(
      fc.property(
        fc.constantFrom('sqlite:', 'sqlite://', 'SQLite:'),
        fc.oneof(path, fc.constant(':memory:')),
        fc.option(table, { nil: undefined }),
        encoding,
        (scheme, file, name, enc) => {
          const url = `${scheme}${file}${name === undefined ? '' : `?table=${encodeSome(name, enc)}`}`;
          expect(parseStoreUrl(url)).toEqual({ kind: 'sqlite', path: file, table: name });
        },
      ),
      options,
    );
  });

  it(`reads postgres:// and mysql:// with ?table= among driver parameters (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(
        fc.constantFrom('postgres', 'postgresql', 'mysql', 'mariadb'),
        fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/),
        hostPort,
        fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/),
        driverParams,
        fc.option(qualifiedTable, { nil: undefined }),
        fc.nat(),
        encoding,
        (scheme, user, server, db, params, name, at, enc) => {
          const base = `${scheme}://${user}@${server}/${db}`;
          const option = name === undefined ? undefined : `table=${encodeSome(name, enc)}`;
          const driverUrl = base + query(params, undefined, 0);
          const kind = scheme.startsWith('postgres') ? 'postgres' : 'mysql';
          expect(parseStoreUrl(base + query(params, option, at))).toEqual({
            kind,
            url: kind === 'mysql' ? driverUrl.replace(/^mariadb:/, 'mysql:') : driverUrl,
            table: name,
          });
        },
      ),
      options,
    );
  });

  it(`reads redis:// with ?prefix= among driver parameters (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(
        fc.constantFrom('redis', 'rediss'),
        hostPort,
        fc.option(fc.nat({ max: 15 }), { nil: undefined }),
        driverParams,
        fc.option(prefix, { nil: undefined }),
        fc.nat(),
        encoding,
        (scheme, server, db, params, keyPrefix, at, enc) => {
          const base = `${scheme}://${server}${db === undefined ? '' : `/${db}`}`;
          const option =
            keyPrefix === undefined ? undefined : `prefix=${encodeSome(keyPrefix, enc)}`;
          expect(parseStoreUrl(base + query(params, option, at))).toEqual({
            kind: 'redis',
            url: base + query(params, undefined, 0),
            prefix: keyPrefix,
          });
        },
      ),
      options,
    );
  });

  it(`reads redis-cluster://h:p,h:p and memcached://h:p with ?prefix= (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(
        fc.constantFrom('redis-cluster', 'memcached'),
        fc.array(hostPort, { minLength: 1, maxLength: 6 }),
        fc.option(prefix, { nil: undefined }),
        fc.boolean(),
        encoding,
        (scheme, hosts, keyPrefix, slash, enc) => {
          const url = `${scheme}://${hosts.join(',')}${slash ? '/' : ''}${keyPrefix === undefined ? '' : `?prefix=${encodeSome(keyPrefix, enc)}`}`;
          expect(parseStoreUrl(url)).toEqual(
            scheme === 'memcached'
              ? { kind: 'memcached', servers: hosts.join(','), prefix: keyPrefix }
              : { kind: 'redis-cluster', hosts, prefix: keyPrefix },
          );
        },
      ),
      options,
    );
  });
});

/** A name made unsafe: a quote, space, semicolon or other stray character put in, or bad shape. */
function unsafe(safe: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const stray = fc.constantFrom(
    "'",
    '"',
    '`',
    ' ',
    ';',
    '(',
    ')',
    '\\',
    '/',
    '*',
    '=',
    ',',
    '$',
    '!',
    '#',
    'é',
    '\u2028',
    '\u{1F511}',
  );
  return fc.oneof(
    fc
      .tuple(safe, stray, fc.nat())
      .map(
        ([name, c, at]) =>
          name.slice(0, at % (name.length + 1)) + c + name.slice(at % (name.length + 1)),
      ),
    fc
      .tuple(safe, fc.constantFrom("'; DROP TABLE users; --", '" OR "1"="1', ' '))
      .map(([name, tail]) => name + tail),
  );
}

describe('parseStoreUrl on unsafe options', () => {
  const options = { numRuns: RUNS, seed: SEED };
  const sqlUrls = ['sqlite:data/s.db', 'postgres://u@h:5432/db', 'mysql://u@h:3306/db'];
  const keyedUrls = ['redis://h:6379', 'redis-cluster://h:1,h:2', 'memcached://h:11211'];

  it(`refuses table names with quotes, spaces, semicolons or a bad shape (${RUNS} runs)`, () => {
    const bad = fc.oneof(
      unsafe(table),
      fc.constantFrom('', '1table', 'a.b.c', '.t', 't.', 'a'.repeat(49), `${'s'.repeat(64)}.t`),
    );
    fc.assert(
      fc.property(fc.constantFrom(...sqlUrls), bad, encoding, (base, name, enc) => {
        const result = attempt(`${base}?table=${encodeSome(name, enc)}`);
        expect(result).toBeInstanceOf(StoreUrlError);
        expect((result as Error).message).toMatch(/table=/);
      }),
      options,
    );
    // SQLite has no schemas: a dotted name is refused there.
    expect(attempt('sqlite:s.db?table=main.sessions')).toBeInstanceOf(StoreUrlError);
  });

  it(`refuses prefixes with quotes, spaces, semicolons or a bad shape (${RUNS} runs)`, () => {
    const bad = fc.oneof(unsafe(prefix), fc.constantFrom('', 'p'.repeat(101)));
    fc.assert(
      fc.property(fc.constantFrom(...keyedUrls), bad, encoding, (base, name, enc) => {
        const result = attempt(`${base}?prefix=${encodeSome(name, enc)}`);
        expect(result).toBeInstanceOf(StoreUrlError);
        expect((result as Error).message).toMatch(/prefix=/);
      }),
      options,
    );
  });

  it('takes userIndex=best-effort on memcached URLs only', () => {
    expect(parseStoreUrl('memcached://h:1,h:2?prefix=p:&userIndex=best-effort')).toEqual({
      kind: 'memcached',
      servers: 'h:1,h:2',
      prefix: 'p:',
      userIndex: 'best-effort',
    });
    expect(parseStoreUrl('memcached://h:1')).not.toHaveProperty('userIndex');
  });

  it('refuses an option given twice, an option of another kind of store, and options no driver reads', () => {
    for (const url of [
      'postgres://u@h/db?table=a&table=b',
      'redis://h:1?prefix=a&prefix=a',
      'redis://h:1?table=sessions',
      'memcached://h:1?table=sessions',
      'postgres://u@h/db?prefix=p:',
      'sqlite:s.db?prefix=p:',
      'memory:?table=t',
      'memory:?prefix=p',
      'memory:?anything=1',
      'memory:somewhere',
      'sqlite:s.db?mode=ro',
      'memcached://h:1?prefix=p&timeout=1',
      'redis-cluster://h:1?prefix=p&x=1',
      'memcached://h:1?userIndex=true',
      'memcached://h:1?userIndex=',
      'memcached://h:1?userIndex=best-effort&userIndex=best-effort',
      'redis://h:1?userIndex=best-effort',
      'postgres://u@h/db?userIndex=best-effort',
    ]) {
      expect(attempt(url), url).toBeInstanceOf(StoreUrlError);
    }
  });

  it('refuses hosts that are not host:port, and control characters anywhere', () => {
    for (const url of [
      'redis-cluster://',
      'redis-cluster://,,,',
      'redis-cluster://h',
      'redis-cluster://h:0',
      'redis-cluster://h:65536',
      'redis-cluster://u:p@h:1',
      'redis-cluster://h:1/x',
      'memcached://',
      'memcached://h:1,h',
      'memcached://h h:1',
      'redis://h:1\r\nFLUSHALL',
      'sqlite:s.db\u0000.txt',
      'postgres:db',
      'redis://[',
      'sqlite:',
      'sqlite://',
    ]) {
      expect(attempt(url), JSON.stringify(url)).toBeInstanceOf(StoreUrlError);
    }
  });
});
