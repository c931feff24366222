import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach, vi } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import type BetterSqlite3 from 'better-sqlite3';
import { defineStoreConformance, randomStoreKey } from '../src/testing/index.js';
import { SqliteStore, sqliteSchema } from '../src/stores/sqlite.js';
import { SessionManager } from '../src/manager.js';
import { SessionError } from '../src/errors.js';
import type { SessionStore } from '../src/store.js';
import { requireService } from './support/services.js';

type Db = BetterSqlite3.Database;

// better-sqlite3 is a native module: if its binary does not load on this Node, say so.
let Database: typeof BetterSqlite3 | undefined;
const gate = await requireService('better-sqlite3', async () => {
  const loaded = (await import('better-sqlite3')).default;
  new loaded(':memory:').close();
  Database = loaded;
  return true;
});

const dir = mkdtempSync(join(tmpdir(), 'tessera-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const open = (file: string, options?: BetterSqlite3.Options): Db =>
  new Database!(join(dir, file), options);
const randomTable = () => `tessera_test_${randomBytes(6).toString('hex')}`;
const MINUTE = 60_000;
const run = promisify(execFile);

// The conformance suite on a file database, with the store's default locking and with the
// file kept to the store's own connection.
for (const exclusive of [false, true]) {
  const kept = exclusive ? ', exclusive: true' : '';
  describe.skipIf(!gate.available)(`SqliteStore on a file database${kept}${gate.label}`, () => {
    let db: Db;
    beforeAll(() => {
      db = open(exclusive ? 'conformance-exclusive.db' : 'conformance.db');
    });
    afterAll(() => db.close());

    defineStoreConformance({
      name: `SqliteStore (file${kept})`,
      createStore: (clock) =>
        new SqliteStore({ db, table: randomTable(), exclusive, now: clock.now, pruneInterval: 0 }),
      destroyStore: async (store) => {
        await store.close?.();
        db.exec(`DROP TABLE IF EXISTS "${(store as SqliteStore).table}"`);
      },
      injectedClock: true,
      prune: true,
      synchronous: true,
      runner: { describe, it, beforeEach, afterEach },
    });
  });
}

describe.skipIf(!gate.available)(`SqliteStore on ':memory:'${gate.label}`, () => {
  const databases = new Map<SessionStore, Db>();

  defineStoreConformance({
    name: "SqliteStore (':memory:')",
    createStore: (clock) => {
      const db = new Database!(':memory:');
      const store = new SqliteStore({ db, now: clock.now, pruneInterval: 0 });
      databases.set(store, db);
      return store;
    },
    destroyStore: async (store) => {
      await store.close?.();
      databases.get(store)?.close();
      databases.delete(store);
    },
    injectedClock: true,
    prune: true,
    synchronous: true,
    runner: { describe, it, beforeEach, afterEach },
  });
});

describe.skipIf(!gate.available)(`SqliteStore${gate.label}`, () => {
  let time = Date.now();
  const now = () => time;
  const opened: Db[] = [];
  const stores: SqliteStore[] = [];
  const openTracked = (file: string, options?: BetterSqlite3.Options) => {
    const db = open(file, options);
    opened.push(db);
    return db;
  };
  const storeOn = (db: Db, options: Partial<ConstructorParameters<typeof SqliteStore>[0]> = {}) => {
    const store = new SqliteStore({ db, now, pruneInterval: 0, ...options });
    stores.push(store);
    return store;
  };
  const record = (data: string, userId: string | null = null, ttl = 10 * MINUTE) => ({
    data,
    expiresAt: time + ttl,
    userId,
  });

  beforeEach(() => {
    time = Date.now();
  });
  afterEach(async () => {
    vi.useRealTimers();
    for (const store of stores.splice(0)) await store.close();
    for (const db of opened.splice(0)) if (db.open) db.close();
  });

  describe('options', () => {
    const expectInvalid = (make: () => unknown, pattern: RegExp) => {
      let caught: unknown;
      try {
        make();
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(SessionError);
      expect((caught as SessionError).code).toBe('INVALID_OPTION');
      expect((caught as SessionError).message).toMatch(pattern);
    };

    it('rejects a bad table name or clock with INVALID_OPTION', () => {
      const db = openTracked('options.db');
      for (const table of [
        '',
        'bad-name',
        'x"; DROP TABLE y; --',
        '1starts_with_digit',
        'a'.repeat(64),
        'naïve',
      ]) {
        expectInvalid(() => new SqliteStore({ db, table }), /table/);
      }
      expect(new SqliteStore({ db, table: 'a'.repeat(63), pruneInterval: 0 }).table).toBe(
        'a'.repeat(63),
      );
      db.exec(`DROP TABLE "${'a'.repeat(63)}"`);
      expectInvalid(() => new SqliteStore({ db, now: 5 as unknown as () => number }), /now/);
      expect(() => sqliteSchema('no spaces')).toThrow(SessionError);
    });

    // Each numeric option against what it must refuse, and each boolean against what is not one.
    const refused: [option: string, value: unknown][] = [
      ...['busyTimeout', 'pruneInterval', 'pruneBatchSize'].flatMap((option) =>
        [Infinity, -Infinity, Number.NaN, -1, '5'].map((value): [string, unknown] => [
          option,
          value,
        ]),
      ),
      ['busyTimeout', 1.5],
      ['busyTimeout', 2 ** 31],
      ['pruneInterval', 2 ** 31],
      ['pruneBatchSize', 0],
      ['pruneBatchSize', 1.5],
      ...['wal', 'createTable', 'exclusive'].flatMap((option) =>
        ['yes', 1, null].map((value): [string, unknown] => [option, value]),
      ),
    ];
    it.each(refused)('refuses %s: %o, naming the store and the option', (option, value) => {
      const db = openTracked('refused.db');
      expectInvalid(
        () => new SqliteStore({ db, pruneInterval: 0, [option]: value }),
        new RegExp(`^SqliteStore: ${option} `),
      );
    });

    it('accepts each numeric option at its bounds', () => {
      const db = openTracked('bounds.db');
      for (const pruneInterval of [0, 2 ** 31 - 1]) storeOn(db, { pruneInterval });
      storeOn(db, { pruneBatchSize: 1 });
      for (const busyTimeout of [0, 2 ** 31 - 1]) {
        storeOn(db, { busyTimeout });
        expect(db.pragma('busy_timeout', { simple: true })).toBe(busyTimeout);
      }
    });

    it('rejects a missing, closed or read-only database', () => {
      expectInvalid(() => new SqliteStore(undefined as never), /options/);
      expectInvalid(() => new SqliteStore({ db: {} as Db }), /db/);
      const closed = openTracked('closed.db');
      closed.close();
      expectInvalid(() => new SqliteStore({ db: closed }), /not open/);
      openTracked('readonly.db');
      const readonly = openTracked('readonly.db', { readonly: true });
      expectInvalid(() => new SqliteStore({ db: readonly }), /read-only/);
    });

    it('with createTable: false, needs the table to exist and then uses it', async () => {
      const db = openTracked('migrated.db');
      const table = randomTable();
      expectInvalid(() => new SqliteStore({ db, table, createTable: false }), /missing/);
      db.exec(sqliteSchema(table));
      const store = storeOn(db, { table, createTable: false });
      const key = randomStoreKey();
      expect(await store.create(key, record('x', 'u'))).toBe(true);
      expect((await store.get(key))?.data).toBe('x');
      const indexes = db
        .prepare<[string], string>(
          `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?`,
        )
        .pluck()
        .all(table);
      expect(indexes).toEqual(expect.arrayContaining([`${table}_expires_at`, `${table}_user_id`]));
    });

    it('switches a file database to WAL unless told not to, and sets the busy timeout', () => {
      const walDb = openTracked('wal.db');
      storeOn(walDb, { table: randomTable(), busyTimeout: 1234 });
      expect(walDb.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(walDb.pragma('busy_timeout', { simple: true })).toBe(1234);

      const plainDb = openTracked('no-wal.db');
      storeOn(plainDb, { table: randomTable(), wal: false });
      expect(plainDb.pragma('journal_mode', { simple: true })).toBe('delete');
      expect(plainDb.pragma('busy_timeout', { simple: true })).toBe(5000);
    });

    it('answers plain numbers even when the application turned on BigInt integers', async () => {
      const db = openTracked('bigint.db');
      db.defaultSafeIntegers(true);
      const store = storeOn(db, { table: randomTable() });
      const key = randomStoreKey();
      await store.create(key, record('x', 'u'));
      const read = await store.get(key);
      expect(typeof read?.expiresAt).toBe('number');
      expect(typeof read?.version).toBe('number');
      expect(await store.update(key, record('y', 'u'), 1)).toEqual({ status: 'ok', version: 2 });
      expect((await store.listByUser('u'))[0]?.version).toBe(2);
      expect(await store.deleteByUser('u')).toBe(1);
    });
  });

  describe('unusual user IDs, called directly', () => {
    it('keeps a user ID with U+0000, or of 10,000 characters, exactly and apart from its prefix', async () => {
      const store = storeOn(openTracked('user-ids.db'), { table: randomTable() });
      for (const [userId, prefix] of [
        ['user\u0000x', 'user'],
        ['u'.repeat(10_000), 'u'.repeat(9_999)],
      ] as const) {
        const created = randomStoreKey();
        const updated = randomStoreKey();
        expect(await store.create(created, record('a', userId))).toBe(true);
        expect(await store.create(updated, record('b'))).toBe(true);
        expect(await store.update(updated, record('b', userId), 1)).toEqual({
          status: 'ok',
          version: 2,
        });
        const listed = await store.listByUser(userId);
        expect(listed.map((row) => row.key).sort()).toEqual([created, updated].sort());
        expect(listed.every((row) => row.userId === userId)).toBe(true);
        expect(await store.listByUser(prefix)).toEqual([]);
        expect(await store.deleteByUser(userId)).toBe(2);
      }
    });
  });

  describe('sharing and restarts', () => {
    it('lets a second connection on the same file (another process) see and contend for sessions', async () => {
      const table = randomTable();
      const first = storeOn(openTracked('shared.db'), { table });
      const second = storeOn(openTracked('shared.db'), { table });
      const key = randomStoreKey();

      expect(await first.create(key, record('one', 'alice'))).toBe(true);
      expect(await second.create(key, record('other'))).toBe(false);
      expect(await second.get(key)).toEqual({ ...record('one', 'alice'), version: 1 });
      expect(await second.update(key, record('two', 'alice'), 1)).toEqual({
        status: 'ok',
        version: 2,
      });
      expect(await first.update(key, record('stale', 'alice'), 1)).toEqual({ status: 'conflict' });
      expect((await first.get(key))?.data).toBe('two');
      expect((await first.listByUser('alice')).map((row) => row.key)).toEqual([key]);
      await second.delete(key);
      expect(await first.update(key, record('zombie', 'alice'), 2)).toEqual({ status: 'missing' });
      expect(await first.get(key)).toBeNull();
    });

    it('with exclusive: true, keeps the file to itself until its connection closes', async () => {
      const table = randomTable();
      const owner = openTracked('exclusive.db');
      const store = storeOn(owner, { table, exclusive: true });
      expect(owner.pragma('locking_mode', { simple: true })).toBe('exclusive');
      expect(owner.pragma('journal_mode', { simple: true })).toBe('wal');
      const key = randomStoreKey();
      expect(await store.create(key, record('mine', 'carol'))).toBe(true);
      expect(await store.update(key, record('mine-2', 'carol'), 1)).toEqual({
        status: 'ok',
        version: 2,
      });
      expect((await store.get(key))?.data).toBe('mine-2');

      const intruder = openTracked('exclusive.db', { timeout: 0 });
      expect(() => intruder.prepare(`SELECT count(*) FROM "${table}"`).get()).toThrow(
        /database is locked/,
      );

      await store.close();
      owner.close();
      const after = storeOn(intruder, { table });
      expect(await after.get(key)).toEqual({ ...record('mine-2', 'carol'), version: 2 });
    });

    it('keeps sessions across a restart (a new Database and store on the same file)', async () => {
      const table = randomTable();
      const before = openTracked('restart.db');
      const store = storeOn(before, { table });
      const key = randomStoreKey();
      await store.create(key, record('kept', 'bob'));
      await store.update(key, record('kept-2', 'bob'), 1);
      await store.close();
      before.close();

      const after = storeOn(openTracked('restart.db'), { table });
      expect(await after.get(key)).toEqual({ ...record('kept-2', 'bob'), version: 2 });
      expect(await after.deleteByUser('bob')).toBe(1);
    });
  });

  describe('pruning', () => {
    const fillExpired = (db: Db, table: string, count: number) => {
      const insert = db.prepare(
        `INSERT INTO "${table}" (key, data, expires_at, version, user_id) VALUES (?, 'old', ?, 1, ?)`,
      );
      db.transaction(() => {
        for (let i = 0; i < count; i++)
          insert.run(randomStoreKey(), time - MINUTE, i % 2 === 0 ? 'u' : null);
      })();
    };
    const countRows = (db: Db, table: string, where = '1') =>
      db.prepare<[], number>(`SELECT count(*) FROM "${table}" WHERE ${where}`).pluck().get();

    it('deletes expired rows in bounded batches and answers the total', async () => {
      const db = openTracked('prune.db');
      const table = randomTable();
      const store = storeOn(db, { table, pruneBatchSize: 1000 });
      fillExpired(db, table, 2500);
      const live = Array.from({ length: 10 }, () => randomStoreKey());
      for (const key of live) await store.create(key, record('live', 'u'));

      const pending = store.prune();
      // The first batch runs before prune() first yields, and is small (50 rows): the batches
      // are sized to a time budget from there, up to pruneBatchSize.
      expect(countRows(db, table, `expires_at <= ${time}`)).toBe(2450);
      expect(await pending).toBe(2500);
      expect(countRows(db, table)).toBe(10);
      expect((await store.listByUser('u')).map((row) => row.key).sort()).toEqual([...live].sort());
      expect(await store.prune()).toBe(0);
    });

    it('prunes oldest first through the expiry index, even once ANALYZE has seen many expired rows', () => {
      const db = openTracked('prune-plan.db');
      const table = randomTable();
      const sent: string[] = [];
      const prepare = db.prepare.bind(db);
      db.prepare = ((sql: string) => {
        sent.push(sql);
        return prepare(sql);
      }) as typeof db.prepare;
      storeOn(db, { table });
      db.prepare = prepare;
      fillExpired(db, table, 5000);
      db.exec('ANALYZE');
      const prune = sent.find((sql) => /^DELETE[^]*expires_at <= \?/.test(sql))!;
      const plan = db
        .prepare<[number, number], { detail: string }>(`EXPLAIN QUERY PLAN ${prune}`)
        .all(time, 1000)
        .map((row) => row.detail);
      expect(plan).toContainEqual(expect.stringMatching(new RegExp(`INDEX ${table}_expires_at`)));
      expect(plan.join('\n')).not.toMatch(/TEMP B-TREE|^SCAN/m);
    });

    it('prunes on its timer, stops when closed, and survives a closed database', async () => {
      vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
      const db = openTracked('prune-timer.db');
      const table = randomTable();
      const store = storeOn(db, { table, pruneInterval: MINUTE });
      fillExpired(db, table, 5);
      await store.create(randomStoreKey(), record('live'));
      expect(vi.getTimerCount()).toBe(1);

      vi.advanceTimersByTime(MINUTE);
      await vi.waitFor(() => expect(countRows(db, table)).toBe(1));

      db.close();
      // A timed prune on a closed database must not surface as an unhandled rejection.
      vi.advanceTimersByTime(MINUTE);
      await new Promise((resolve) => setImmediate(resolve));
      await store.close();
      expect(vi.getTimerCount()).toBe(0);
    });

    it('never holds the process open with its timer', async () => {
      const storeModule = fileURLToPath(new URL('../src/stores/sqlite.ts', import.meta.url));
      const script = `
        import Database from 'better-sqlite3';
        import { SqliteStore } from ${JSON.stringify(storeModule)};
        new SqliteStore({ db: new Database(':memory:'), pruneInterval: 1000 });
      `;
      // Rejects if the child exits non-zero or is still running at the timeout.
      await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        timeout: 15_000,
      });
    });
  });

  describe('outage: a closed database', () => {
    it('makes every call reject, the manager answer STORE_UNAVAILABLE, and a restart find the sessions', async () => {
      const table = randomTable();
      const secrets = ['s'.repeat(32)];
      const db = openTracked('outage.db');
      const store = storeOn(db, { table });
      const manager = new SessionManager({ store, secrets, storeTimeout: 1000 });
      const session = await manager.load({});
      session.set('k', 'v');
      session.setUser('carol');
      const { setCookie } = await manager.commit(session);
      const cookie = setCookie[0]!.split(';')[0]!;
      const key = randomStoreKey();
      await store.create(key, record('raw', 'carol'));

      db.close();
      // A synchronous store throws; Promise.resolve().then() turns either way of failing into a rejection.
      const calls: [string, () => unknown][] = [
        ['get', () => store.get(key)],
        ['create', () => store.create(randomStoreKey(), record('x'))],
        ['update', () => store.update(key, record('y'), 1)],
        ['touch', () => store.touch(key, time + MINUTE)],
        ['delete', () => store.delete(key)],
        ['listByUser', () => store.listByUser('carol')],
        ['deleteByUser', () => store.deleteByUser('carol')],
        ['prune', () => store.prune()],
      ];
      for (const [name, call] of calls) {
        await expect(Promise.resolve().then(call), name).rejects.toThrow(/not open/);
      }

      const started = Date.now();
      const failure = await Promise.resolve(manager.load({ cookie })).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(SessionError);
      expect((failure as SessionError).code).toBe('STORE_UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(2000);

      const restarted = storeOn(openTracked('outage.db'), { table });
      const again = new SessionManager({ store: restarted, secrets, storeTimeout: 1000 });
      const loaded = await again.load({ cookie });
      expect(loaded.get('k')).toBe('v');
      loaded.set('k', 'w');
      await again.commit(loaded);
      expect((await again.load({ cookie })).get('k')).toBe('w');
      expect((await restarted.get(key))?.data).toBe('raw');
    });
  });

  describe('a lock held by another connection', () => {
    it('makes a write reject after the busy timeout instead of answering false or missing', async () => {
      const table = randomTable();
      const holder = openTracked('locked.db');
      const holderStore = storeOn(holder, { table });
      const store = storeOn(openTracked('locked.db'), { table, busyTimeout: 0 });
      const key = randomStoreKey();
      await holderStore.create(key, record('x'));

      holder.exec('BEGIN IMMEDIATE');
      await expect(store.create(randomStoreKey(), record('y'))).rejects.toMatchObject({
        code: 'SQLITE_BUSY',
      });
      await expect(store.update(key, record('z'), 1)).rejects.toMatchObject({
        code: 'SQLITE_BUSY',
      });
      // WAL readers do not wait for the writer.
      expect((await store.get(key))?.data).toBe('x');
      holder.exec('COMMIT');
      expect(await store.update(key, record('z'), 1)).toEqual({ status: 'ok', version: 2 });
    });
  });

  describe('raw contents', () => {
    it('stores only the hash of each session ID, never the ID or its signature', async () => {
      const db = openTracked('raw.db');
      const table = randomTable();
      const store = storeOn(db, { table });
      const manager = new SessionManager({ store, secrets: ['s'.repeat(32)] });

      const issued: { cookie: string; id: string; signature: string }[] = [];
      for (let i = 0; i < 3; i++) {
        const session = await manager.load({});
        session.set('k', 'v');
        session.setUser('alice');
        const { setCookie } = await manager.commit(session);
        const cookie = setCookie[0]!.split(';')[0]!;
        const value = cookie.slice(cookie.indexOf('=') + 1);
        const [id, signature] = value.split('.') as [string, string];
        expect(id).toHaveLength(43);
        expect(signature.length).toBeGreaterThan(0);
        issued.push({ cookie, id, signature });
      }

      const rows = db.prepare(`SELECT * FROM "${table}"`).all() as Record<string, unknown>[];
      expect(rows).toHaveLength(3);
      const cells = rows.flatMap((row) => Object.values(row).map((cell) => String(cell)));
      for (const { id, signature } of issued) {
        for (const cell of cells) {
          expect(cell).not.toContain(id);
          expect(cell).not.toContain(signature);
        }
        const storeKey = createHash('sha256').update(id).digest('base64url');
        expect(rows.some((row) => row.key === storeKey)).toBe(true);
      }

      for (const { cookie } of issued) {
        expect((await manager.load({ cookie })).get('k')).toBe('v');
      }
    });
  });
});
