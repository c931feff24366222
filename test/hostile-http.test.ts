/**
 * Hostile HTTP against the demo (examples/demo/app.ts), over raw TCP so that malformed request
 * lines and headers reach Node's parser: thousands of seeded random requests per store, then
 * checks that none answered a 5xx (other than the documented 503), that the server is up, and
 * that a signed-in user's session and preference came through untouched. 127.0.0.1 only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager, type SessionStore } from '../src/index.js';
import { MemoryStore } from '../src/stores/memory.js';
import { SqliteStore } from '../src/stores/sqlite.js';
import { createDemoApp } from '../examples/demo/app.js';
import { FakeClock, SECRET } from './support/fixtures.js';

/** Requests per store; the seed makes them reproducible (bar the session IDs, which are random). */
const REQUESTS = 3_000;
const SEED = 20_261_204;
/** Sockets open at once. */
const CONCURRENCY = 8;
const COOKIE = 'sid';

const dir = mkdtempSync(join(tmpdir(), 'tessera-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Writes `bytes` on a new connection, half-closes it, and reads until the server closes; answers
 * the status of each response and all that came back. The server is set to answer a request
 * whose client half-closed (`httpAllowHalfOpen`), as it answers a client that waits.
 */
function send(port: number, bytes: Buffer): Promise<{ statuses: number[]; text: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    // A server that refuses a request may reset the connection while it is still being written.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) =>
        Number(m[1]),
      );
      resolve({ statuses, text });
    });
    socket.end(bytes);
  });
}

/** What no response may show: a stack trace, a source path, or the demo's own source. */
const INTERNALS = /\n\s+at |node_modules|\.ts:\d+|createDemoApp/;

/** A well-formed request, for the checks before and after. */
async function request(
  port: number,
  method: string,
  path: string,
  options: { cookie?: string; json?: unknown } = {},
): Promise<{ status: number; body: string; setCookie: string[] }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    redirect: 'manual',
    headers: {
      accept: 'application/json',
      ...(options.cookie === undefined ? {} : { cookie: options.cookie }),
      ...(options.json === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: options.json === undefined ? undefined : JSON.stringify(options.json),
  });
  return {
    status: response.status,
    body: await response.text(),
    setCookie: response.headers.getSetCookie(),
  };
}

/** Signs in; answers the `sid=VALUE` pair. */
async function signIn(port: number, username: string, password: string): Promise<string> {
  const response = await request(port, 'POST', '/login', { json: { username, password } });
  expect(response.status).toBe(200);
  const pair = response.setCookie
    .map((line) => line.split(';')[0]!)
    .find((p) => p.startsWith(`${COOKIE}=`));
  expect(pair).toBeDefined();
  return pair!;
}

/** Up to `maxLength` characters of U+0000 to U+00FF: control characters and high bytes included. */
const latin1 = (maxLength: number) => fc.string({ unit: 'binary-ascii', maxLength });

/** The hostile requests, given alice's valid cookie value (only ever sent changed) and bob's. */
function hostileRequests(
  alice: string,
  bob: string,
): fc.Arbitrary<{ bytes: Buffer; raw: boolean }> {
  const methods = fc.oneof(
    { weight: 4, arbitrary: fc.constant('POST') },
    { weight: 3, arbitrary: fc.constant('GET') },
    { weight: 2, arbitrary: fc.constantFrom('PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH') },
    {
      weight: 1,
      arbitrary: fc.constantFrom('get', 'CONNECT', 'TRACE', 'PRI', 'BREW', 'G ET', '', 'POST\0'),
    },
    { weight: 1, arbitrary: latin1(12) },
  );
  const routes = [
    '/',
    '/login',
    '/logout',
    '/prefs',
    '/api/me',
    '/api/prefs',
    '/api/sessions',
    '/api/sessions/revoke',
    '/api/sessions/revoke-others',
    '/sessions/revoke',
    '/sessions/revoke-others',
    '/static/app.js',
    '/static/../app.ts',
    '/static/%2e%2e/app.ts',
  ];
  const paths = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...routes) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          fc.constantFrom(...routes),
          fc.constantFrom(
            '?notice=signed-out',
            '?notice=%',
            '?a=%zz',
            '?__proto__[x]=1',
            '%',
            '%00',
            '/..',
            '?' + '&'.repeat(5_000),
            '#frag',
          ),
        )
        .map(([route, tail]) => route + tail),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '*',
        'http://127.0.0.1/',
        '//evil.example/',
        '/' + 'a'.repeat(8_000),
        '/\u00e9',
        '/\u{1F511}',
        '',
      ),
    },
    { weight: 1, arbitrary: latin1(40) },
  );
  const versions = fc.oneof(
    { weight: 8, arbitrary: fc.constant('HTTP/1.1') },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        'HTTP/1.0',
        'HTTP/2.0',
        'HTTP/0.9',
        'HTTP/1.1x',
        'http/1.1',
        'HTTP/1.1 extra',
        '',
      ),
    },
  );
  // Alice's cookie, always changed: a valid value anywhere in the header could log her out.
  const tampered = fc
    .tuple(
      fc.nat({ max: alice.length - 1 }),
      fc.constantFrom('truncate', 'append', 'flip', 'prefix'),
      latin1(20),
    )
    .map(([at, how, extra]) => {
      switch (how) {
        case 'truncate':
          return alice.slice(0, at);
        case 'append':
          return alice + extra + 'x';
        case 'prefix':
          return 'x' + extra + alice;
        default:
          return alice.slice(0, at) + (alice[at] === 'A' ? 'B' : 'A') + alice.slice(at + 1);
      }
    });
  const cookieValue = fc.oneof(
    tampered,
    fc.constant(bob),
    fc.constantFrom(
      '',
      '%',
      '%zz',
      '%E0%A4%A',
      '"',
      '""',
      '"unterminated',
      '\u00fc\u20ac\u{1F600}',
      'a'.repeat(8_192),
    ),
    latin1(100),
    fc.string({ unit: 'binary', maxLength: 30 }),
  );
  const cookieHeader = fc.oneof(
    fc
      .tuple(
        fc.constantFrom(COOKIE, 'SID', ` ${COOKIE}`, `${COOKIE} `, `__Host-${COOKIE}`),
        cookieValue,
      )
      .map(([n, v]) => `${n}=${v}`),
    fc.tuple(cookieValue, cookieValue).map(([a, b]) => `${COOKIE}=${a}; ${COOKIE}=${b}`),
    fc.constantFrom(
      ';'.repeat(5_000),
      Array.from({ length: 1_000 }, (_, i) => `c${i}=v${i}`).join('; '),
      `${Array.from({ length: 999 }, (_, i) => `c${i}=v`).join('; ')}; ${COOKIE}=${alice.slice(1)}`,
      '__proto__=x; constructor=y; hasOwnProperty=z; toString=1',
      `__proto__=${COOKIE}; ${COOKIE}=__proto__`,
      `demo_ends=%; demo_ends=99999999999999999; demo_ends=-1`,
      '=; =x; ==; ;;=;',
    ),
    latin1(200),
  );
  const contentTypes = fc.constantFrom(
    'application/json',
    'application/json; charset=utf-7',
    'application/json; charset=""',
    'application/x-www-form-urlencoded',
    'text/plain',
    'multipart/form-data; boundary=x',
    'application/json, text/html',
    'application/\u00e9',
    '',
  );
  const jsonBombs = fc.constantFrom(
    '['.repeat(8_000) + ']'.repeat(8_000),
    '{"a":'.repeat(3_000) + '1' + '}'.repeat(3_000),
    '['.repeat(20_000),
    JSON.stringify({ username: 'x'.repeat(20_000), password: 'y' }),
    '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"username":"alice"}',
    '{"username":{"toString":"alice"},"password":["wonderland"]}',
    '{"username":"alice","password":"wonderland\\u0000"}',
    '{"big":1e400,"neg":-0,"s":"\\ud800"}',
    JSON.stringify(Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, 'v']))),
    JSON.stringify(Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`p${i}`, 'v']))),
    '{"theme":"' + 'x'.repeat(201) + '"}',
    '{"__proto__":"x","constructor":"y"}',
    '{"handle":"' + 'h'.repeat(300) + '"}',
    '{"handle":{"length":1}}',
    'username=alice&password=wonderland&username=bob',
    'username[]=a&password[__proto__]=b',
    '%%%&&&===',
  );
  const body = fc.oneof(jsonBombs, latin1(300), fc.string({ unit: 'binary', maxLength: 100 }));
  const headerNames = fc.oneof(
    fc.constantFrom(
      'Host',
      'Accept',
      'User-Agent',
      'X-Forwarded-Proto',
      'X-Forwarded-For',
      'Expect',
      'Connection',
      'Transfer-Encoding',
      'Content-Encoding',
      'Origin',
      'Sec-Fetch-Site',
      'Range',
    ),
    latin1(20),
    fc.constantFrom('Bad Header', 'Bad:Header', '\u00e9', ''),
  );
  const headerValues = fc.oneof(
    fc.constantFrom(
      'application/json',
      'https',
      'chunked',
      'gzip',
      'close',
      '100-continue',
      'bytes=0-0,1-1',
      'x'.repeat(8_192),
      '\u00e9\u{1F600}',
    ),
    latin1(60),
    fc.string({ unit: 'binary', maxLength: 30 }),
  );
  /** Content-Length values: right, too long, too short, negative, not a number, doubled, huge. */
  const lengths = (actual: number) => [
    String(actual),
    String(actual + 10),
    String(Math.max(0, actual - 1)),
    '-1',
    'abc',
    `${actual}, ${actual}`,
    '99999999999999999999',
  ];

  return fc
    .record({
      // One request in four is left raw; the others are made valid HTTP (bar one body length in
      // ten), so that their hostile cookies, paths and bodies reach the session layer and routes.
      raw: fc.nat({ max: 3 }).map((n) => n === 0),
      method: methods,
      path: paths,
      version: versions,
      cookie: fc.option(cookieHeader, { freq: 4, nil: undefined }),
      asBob: fc.nat({ max: 3 }).map((n) => n === 0),
      contentType: fc.option(contentTypes, { nil: undefined }),
      body: fc.option(body, { nil: undefined }),
      lengthChoice: fc.nat({ max: 9 }),
      chunked: fc.boolean(),
      headers: fc.array(fc.tuple(headerNames, headerValues), { maxLength: 4 }),
    })
    .map((r) => {
      const valid = !r.raw;
      const method = valid && !STANDARD_METHODS.includes(r.method) ? 'POST' : r.method;
      const path = valid ? requestTarget(r.path) : r.path;
      const version = valid && r.version !== 'HTTP/1.0' ? 'HTTP/1.1' : r.version;
      const field = valid ? fieldValue : (text: string) => text;
      const lines = [`${method} ${path} ${version}`.trimEnd(), 'Host: 127.0.0.1'];
      // Bob's valid cookie goes only where no request ends a session, so that his requests keep
      // reaching the routes behind sign-in; alice's never goes unchanged.
      const bobSafe = !/logout|revoke-others/.test(path);
      if (r.asBob && bobSafe) lines.push(`Cookie: ${COOKIE}=${bob}`);
      else if (r.cookie !== undefined) lines.push(`Cookie: ${field(r.cookie)}`);
      if (r.contentType !== undefined) lines.push(`Content-Type: ${field(r.contentType)}`);
      for (const [name, value] of r.headers) {
        if (valid && (!TOKEN.test(name) || /^(content-length|transfer-encoding|host)$/i.test(name)))
          continue;
        lines.push(`${name}: ${field(value)}`);
      }
      const payload = Buffer.from(r.body ?? '', 'utf8');
      let tail: Buffer = payload;
      if (r.body !== undefined) {
        // Valid requests give the body's true length nine times in ten; raw ones pick any.
        const choice = valid ? (r.lengthChoice === 9 ? 1 : 0) : r.lengthChoice;
        if (r.chunked) {
          lines.push('Transfer-Encoding: chunked');
          const size = [payload.length, payload.length + 5, 0][choice] ?? payload.length;
          tail = Buffer.concat([
            Buffer.from(`${size.toString(16)}\r\n`),
            payload,
            Buffer.from('\r\n0\r\n\r\n'),
          ]);
        } else {
          // Past the list, no Content-Length at all.
          const length = lengths(payload.length)[choice];
          if (length !== undefined) lines.push(`Content-Length: ${length}`);
        }
      }
      const text = lines.join('\r\n');
      const bytes = text.includes(alice)
        ? Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        : Buffer.concat([Buffer.from(`${text}\r\n\r\n`, 'utf8'), tail]);
      return { bytes, raw: r.raw };
    });
}

const STANDARD_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'];
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** `text` as a request target: characters outside printable ASCII percent-encoded, a `/` first. */
function requestTarget(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.codePointAt(0)!;
    out +=
      code > 0x20 && code < 0x7f
        ? c
        : [...Buffer.from(c)].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
  }
  return out.startsWith('/') || out === '*' ? out : `/${out}`;
}

/** `text` with control characters replaced, as a header value may hold it (UTF-8 kept). */
function fieldValue(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.codePointAt(0)!;
    out += (code < 0x20 && code !== 0x09) || code === 0x7f ? '?' : c;
  }
  return out;
}

interface Target {
  name: string;
  store: (clock: FakeClock) => SessionStore & { close(): Promise<void> };
}

const targets: Target[] = [
  {
    name: 'the memory store',
    store: (clock) => new MemoryStore({ now: clock.now, sweepInterval: 0 }),
  },
  {
    name: 'the SQLite store (temp file)',
    store: (clock) =>
      new SqliteStore({
        db: new Database(join(dir, 'hostile.db')),
        now: clock.now,
        pruneInterval: 0,
      }),
  },
];

describe.each(targets)('hostile HTTP against the demo on $name', ({ store: makeStore }) => {
  const clock = new FakeClock();
  let server: Server;
  let port: number;
  let store: SessionStore & { close(): Promise<void> };
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    store = makeStore(clock);
    const manager = new SessionManager({ store, secrets: [SECRET], now: clock.now });
    server = createServer(createDemoApp(manager, { now: clock.now }));
    // Answer a request whose client half-closed after sending it, instead of dropping it.
    (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    alice = await signIn(port, 'alice', 'wonderland');
    bob = await signIn(port, 'bob', 'builder');
    const saved = await request(port, 'POST', '/api/prefs', {
      cookie: alice,
      json: { theme: 'dark' },
    });
    expect(saved.status).toBe(200);
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await store.close();
  });

  // A few seconds of CPU per store; the time bound leaves room for a machine busy with others.
  it(`answers ${REQUESTS} malformed requests without a 5xx but 503 or a leak of internals, and keeps alice's session and preference`, async () => {
    const requests = fc.sample(
      hostileRequests(alice.slice(COOKIE.length + 1), bob.slice(COOKIE.length + 1)),
      { numRuns: REQUESTS, seed: SEED },
    );
    const failures: { statuses: number[]; request: string }[] = [];
    const statuses = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < requests.length) {
        const { bytes } = requests[next++]!;
        const outcome = await send(port, bytes);
        for (const status of outcome.statuses)
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (
          outcome.statuses.some((status) => status >= 500 && status !== 503) ||
          INTERNALS.test(outcome.text)
        ) {
          failures.push({
            statuses: outcome.statuses,
            request: bytes.toString('latin1').slice(0, 400),
          });
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    expect(failures).toEqual([]);
    // Many requests got past the parser to the routes, so the check above had something to see.
    const routed = [...statuses].filter(([status]) => [200, 303, 401].includes(status));
    expect(routed.reduce((sum, [, n]) => sum + n, 0)).toBeGreaterThan(REQUESTS / 10);

    // Still up, and alice's session and preference are as they were.
    expect((await request(port, 'GET', '/')).status).toBe(200);
    const me = await request(port, 'GET', '/api/me', { cookie: alice });
    expect(me.status).toBe(200);
    const body = JSON.parse(me.body) as { user: string; prefs: Record<string, string> };
    expect(body.user).toBe('alice');
    expect(body.prefs).toEqual({ theme: 'dark' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }, 120_000);
});
