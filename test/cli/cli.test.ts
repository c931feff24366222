/**
 * The `tessera-session` CLI, run as a child process (src/cli/main.ts, bundled by esbuild) against
 * real stores: SQLite in a temporary file, PostgreSQL on its own table, the shared Redis under
 * its own key prefix (only those keys are deleted afterwards), and a private redis-server set to
 * an evicting policy. Sessions are seeded through a `SessionManager`; expired ones through a
 * manager whose injected clock is two days behind.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { createClient } from 'redis';
import { afterAll, describe, expect, it } from 'vitest';
import { SessionManager, type SessionManagerOptions, type SessionStore } from '../../src/index.js';
import { PostgresStore } from '../../src/stores/postgres.js';
import { RedisStore } from '../../src/stores/redis.js';
import { SqliteStore } from '../../src/stores/sqlite.js';
import { bundleOnce } from '../support/bundle.js';
import { SECRET, cookiePair, rawIdOf } from '../support/fixtures.js';
import { RedisServerProcess, redisBinariesAvailable, redisCli } from '../support/redis-server.js';
import { SHARED, requireService, requireShared, withQuery } from '../support/services.js';

const ROOT = resolve(import.meta.dirname, '../..');
const suffix = randomBytes(4).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'tessera-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CLI = await bundleOnce('src/cli/main.ts', 'cli');

const postgres = await requireShared(SHARED.postgres);
const redis = await requireShared(SHARED.redis);
const privateRedis = await requireService('redis-server binary', redisBinariesAvailable);

const PG_URL = SHARED.postgres.url;
const TWO_DAYS = 2 * 86_400_000;
/** A 32-byte key, as an application would give `encryption.keys`. */
const KEY = randomBytes(32).toString('base64');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with `args` and only the environment variables given (besides PATH and HOME). */
function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** What an operator must never see: each session's ID and cookie value. */
const secrets: string[] = [];

/** Checks that `result` shows no session ID or cookie value, and no stack trace. */
function expectClean(result: Result): void {
  const all = result.stdout + result.stderr;
  for (const secret of secrets) expect(all).not.toContain(secret);
  expect(all).not.toMatch(/\n\s+at /);
}

/** Checks a failure: its exit code, one line on stderr, nothing on stdout. */
function expectOneLineFailure(result: Result, code: number, message: RegExp): void {
  expect(result.code).toBe(code);
  expect(result.stdout).toBe('');
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(message);
  expectClean(result);
}

/** Seeds `count` sessions of `userId` at the manager's clock, keeping their IDs as secrets. */
async function seed(manager: SessionManager, userId: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const session = await manager.load({
      https: true,
      userAgent: `TestBrowser/${i} (\u001b[31mred)`,
      ip: `203.0.113.${i + 1}`,
    });
    await session.login(userId);
    const pair = cookiePair((await manager.commit(session)).setCookie);
    secrets.push(pair.slice(pair.indexOf('=') + 1), rawIdOf(pair));
  }
}

interface StoreCase {
  name: string;
  url: string;
  sql: boolean;
  /** Extra environment for list and revoke: the encryption keys, when records are sealed. */
  env: Record<string, string>;
  /** Options for the seeding managers. */
  encryption?: SessionManagerOptions['encryption'];
  open(): Promise<{ store: SessionStore; close(): Promise<void> }>;
  /** Removes what the test left in the store. */
  cleanUp(): Promise<void>;
}

const sqliteFile = join(dir, 'sub', 'sessions.db');
const pgTable = `cli_${suffix}`;
const redisPrefix = `cli-${suffix}:`;

const cases: (StoreCase & { available: boolean; label: string })[] = [
  {
    name: 'SQLite',
    url: `sqlite:${sqliteFile}`,
    sql: true,
    // Records sealed with a key: the CLI reads them with SESSION_ENCRYPTION_KEYS.
    env: { SESSION_ENCRYPTION_KEYS: `k1:${KEY}` },
    encryption: { keys: [{ id: 'k1', key: KEY }] },
    async open() {
      const db = new Database(sqliteFile);
      const store = new SqliteStore({ db, createTable: false, pruneInterval: 0 });
      return { store, close: async () => void db.close() };
    },
    cleanUp: async () => undefined,
    available: true,
    label: '',
  },
  {
    name: 'PostgreSQL',
    url: withQuery(PG_URL, `table=${pgTable}`),
    sql: true,
    env: {},
    async open() {
      const pool = new pg.Pool({ connectionString: PG_URL });
      const store = new PostgresStore({ pool, table: pgTable, pruneInterval: 0 });
      return { store, close: () => pool.end() };
    },
    async cleanUp() {
      const pool = new pg.Pool({ connectionString: PG_URL });
      await pool.query(`DROP TABLE IF EXISTS ${pgTable}`);
      await pool.end();
    },
    ...postgres,
  },
  {
    name: 'Redis',
    url: withQuery(SHARED.redis.url, `prefix=${redisPrefix}`),
    sql: false,
    env: {},
    async open() {
      const client = createClient({ url: SHARED.redis.url });
      await client.connect();
      const store = new RedisStore({ client, prefix: redisPrefix });
      return { store, close: async () => client.destroy() };
    },
    async cleanUp() {
      const client = createClient({ url: SHARED.redis.url });
      await client.connect();
      for await (const keys of client.scanIterator({ MATCH: `${redisPrefix}*`, COUNT: 100 })) {
        if (keys.length > 0) await client.del(keys);
      }
      client.destroy();
    },
    ...redis,
  },
];

describe('tessera-session', () => {
  for (const store of cases) {
    // The stores' suites run side by side; the steps within one run in order.
    describe.concurrent(`on ${store.name}${store.label}`, () => {
      const step = store.available ? it.sequential : it.skip; // skipped: store not reachable, see store.label
      let opened: Awaited<ReturnType<StoreCase['open']>> | undefined;
      let manager: SessionManager;
      afterAll(async () => {
        await opened?.close();
        if (store.available) await store.cleanUp();
      });
      const env = { SESSION_STORE: store.url };
      const withKeys = { ...env, ...store.env };

      if (store.sql) {
        step('refuses to work on a store that was never migrated', async () => {
          const result =
            store.name === 'SQLite'
              ? await cli(['list', '--user', 'alice'], env)
              : await cli(['doctor'], env);
          if (store.name === 'SQLite') {
            // A mistyped path opens nothing and creates no file.
            expectOneLineFailure(result, 2, /SQLite at .* is unreachable: the file does not exist/);
            expect(existsSync(sqliteFile)).toBe(false);
          } else {
            expect(result.code).toBe(1);
            expect(result.stdout).toMatch(
              /^fail {2}table: there is no table cli_\w+: run tessera-session migrate$/m,
            );
          }
        });

        step('migrates, and a second migrate changes nothing', async () => {
          const first = await cli(['migrate'], env);
          expect(first).toMatchObject({ code: 0, stderr: '' });
          expect(first.stdout).toMatch(/^Created table \w+ and its indexes in /);
          const second = await cli(['migrate', '--json'], env);
          expect(second.code).toBe(0);
          expect(JSON.parse(second.stdout)).toMatchObject({
            kind: expect.any(String),
            created: false,
          });
        });

        step('prints the schema for a DBA', async () => {
          const result = await cli(['schema'], env);
          expect(result.code).toBe(0);
          const table = store.name === 'SQLite' ? 'tessera_sessions' : pgTable;
          expect(result.stdout).toContain(`CREATE TABLE IF NOT EXISTS "${table}"`);
          expect(result.stdout).toMatch(
            new RegExp(`CREATE INDEX IF NOT EXISTS "${table}_expires_at\\w*"`),
          );
          expect(result.stdout).toMatch(
            new RegExp(`CREATE INDEX IF NOT EXISTS "${table}_user_id\\w*"`),
          );
        });
      } else {
        step('has no schema to migrate', async () => {
          const result = await cli(['migrate', '--json'], env);
          expect(result.code).toBe(0);
          expect(JSON.parse(result.stdout)).toMatchObject({ kind: 'redis', created: false });
        });
      }

      step("lists a user's live sessions without their IDs", async () => {
        opened = await store.open();
        const options = { store: opened.store, secrets: [SECRET], encryption: store.encryption };
        manager = new SessionManager(options);
        await seed(manager, 'alice', 2);
        await seed(manager, 'bob', 1);
        if (store.sql) {
          const past = Date.now() - TWO_DAYS;
          // Another user's: revoking alice's sessions also deletes her expired rows.
          await seed(new SessionManager({ ...options, now: () => past }), 'carol', 3);
        }

        const human = await cli(['list', '--user', 'alice'], withKeys);
        expect(human.code).toBe(0);
        expectClean(human);
        const lines = human.stdout.trimEnd().split('\n');
        expect(lines[0]).toMatch(/^2 live sessions of user alice in /);
        expect(lines[2]).toMatch(/^HANDLE +CREATED +LAST SEEN +EXPIRES +IP +USER AGENT$/);
        expect(lines.slice(3)).toHaveLength(2);
        // The user agent's escape character is shown, not sent to the terminal.
        expect(human.stdout).toContain('TestBrowser/1 (\\x1b[31mred)');
        expect(human.stdout).not.toContain('\u001b');
        expect(human.stdout).toMatch(/203\.0\.113\.2/);

        const json = await cli(['list', '--user', 'alice', '--json'], env);
        expect(json.code).toBe(0);
        expectClean(json);
        const document = JSON.parse(json.stdout) as {
          sessions: { handle: string; ip: string; createdAt: string; userAgent: string }[];
          unreadable: number;
        };
        if (store.encryption !== undefined) {
          // Without the keys, sealed records cannot be read: the CLI says so.
          expect(document).toMatchObject({ sessions: [], unreadable: 2 });
          expect(json.stderr).toMatch(/2 more records of this user could not be read/);
        } else {
          expect(document.unreadable).toBe(0);
          expect(document.sessions.map((s) => s.ip).sort()).toEqual(['203.0.113.1', '203.0.113.2']);
          expect(document.sessions[0]!.createdAt).toMatch(
            /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
          );
          // JSON carries the user agent as stored (escaped by JSON itself).
          expect(document.sessions[0]!.userAgent).toMatch(/^TestBrowser\/\d \(/);
          expect(json.stdout).toContain('(\\u001b[31mred)');
        }
        const listed = await manager.listUserSessions('alice');
        expect(listed).toHaveLength(2);
      });

      step('revokes one session by its handle', async () => {
        const [kept, revoked] = await manager.listUserSessions('alice');
        const result = await cli(
          ['revoke', '--user', 'alice', '--handle', revoked!.handle, '--json'],
          withKeys,
        );
        expect(result.code).toBe(0);
        expectClean(result);
        expect(JSON.parse(result.stdout)).toMatchObject({ user: 'alice', ended: 1 });
        expect((await manager.listUserSessions('alice')).map((s) => s.handle)).toEqual([
          kept!.handle,
        ]);
      });

      step('revokes all of a user’s sessions and says how many', async () => {
        const result = await cli(['revoke', '--user', 'alice'], env);
        expect(result).toMatchObject({ code: 0, stderr: '' });
        expect(result.stdout).toMatch(/^Ended 1 session of user alice in /);
        expect(await manager.listUserSessions('alice')).toEqual([]);
        expect(await manager.listUserSessions('bob')).toHaveLength(1);
      });

      step('counts sessions and users where it can', async () => {
        const result = await cli(['stats', '--json'], env);
        expect(result.code).toBe(0);
        const document = JSON.parse(result.stdout) as Record<string, unknown>;
        if (store.sql) {
          // bob's session is live; carol's three expired ones wait for a prune.
          expect(document).toMatchObject({ countable: true, sessions: 1, users: 1, expired: 3 });
        } else {
          expect(document).toMatchObject({ countable: false });
          expect(document.reason).toMatch(/SCAN of every key on the server/);
        }
      });

      step('prunes expired records, with progress on stderr', async () => {
        const result = await cli(['prune', '--progress', '--batch-size', '2'], env);
        expect(result.code).toBe(0);
        if (store.sql) {
          expect(result.stdout).toMatch(/^Removed 3 expired records from /);
          expect(result.stderr).toContain('pruning: 0 of 3 expired records removed (0%)');
          expect(result.stderr).toContain('pruning: 3 of 3 expired records removed (100%)');
          const after = JSON.parse((await cli(['stats', '--json'], env)).stdout) as object;
          expect(after).toMatchObject({ sessions: 1, expired: 0 });
        } else {
          expect(result.stdout).toBe('Redis expires records itself: nothing to prune.\n');
        }
      });

      step('finds nothing wrong with a healthy store', async () => {
        const result = await cli(['doctor'], env);
        expect(result.stdout).toMatch(/^ok {4}reachable: /m);
        // SQLite runs in this process, on this machine's clock: there is no other to compare.
        if (store.name !== 'SQLite') expect(result.stdout).toMatch(/^ok {4}clock: /m);
        expect(result.stdout).toMatch(/No problem found\.\n$/);
        expect(result.code).toBe(0);
      });
    });
  }
});

describe.concurrent('tessera-session, without a usable store', () => {
  it('says in one line, exit code 2, that a store cannot be reached', async () => {
    const result = await cli(['doctor', '--store', 'postgres://postgres:hunter2@127.0.0.1:1/test']);
    expectOneLineFailure(
      result,
      2,
      /^tessera-session: PostgreSQL at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/test is unreachable: .*ECONNREFUSED/,
    );
    expect(result.stderr).not.toContain('hunter2');
    const json = await cli(['stats', '--json'], { SESSION_STORE: 'redis://127.0.0.1:1' });
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'UNREACHABLE' } });
  });

  it('answers bad arguments with one line and exit code 1, and --help with the options', async () => {
    expectOneLineFailure(await cli(['revoke', '--store', 'sqlite:x.db']), 1, /--user is required/);
    expectOneLineFailure(
      await cli(['list', '--user', 'a', '--store', 'ftp://x']),
      1,
      /must start with/,
    );
    const help = await cli(['prune', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: tessera-session prune /);
    expect(help.stdout).toContain('--batch-size N');
  });

  it.skipIf(!privateRedis.available)(
    `fails doctor on a Redis that evicts keys${privateRedis.label}`,
    async () => {
      const server = await RedisServerProcess.start();
      try {
        await redisCli(server.port, ['CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru']);
        const result = await cli(['doctor', '--store', `${server.url}?prefix=${redisPrefix}`]);
        expect(result.code).toBe(1);
        expect(result.stdout).toMatch(/^fail {2}eviction: maxmemory-policy allkeys-lru evicts /m);
        expect(result.stdout).toMatch(/1 problem found\.\n$/);
      } finally {
        await server.stop();
      }
    },
  );
});
