import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach, vi } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import mysql from 'mysql2/promise';
import type { Pool, PoolOptions } from 'mysql2/promise';
import { defineStoreConformance, randomStoreKey } from '../src/testing/index.js';
import {
  MysqlStore,
  createMysqlTable,
  mysqlSchema,
  type MysqlPool,
  type MysqlQueryable,
} from '../src/stores/mysql.js';
import { SessionManager } from '../src/manager.js';
import { SessionError } from '../src/errors.js';
import type { SessionStore } from '../src/store.js';
import { SHARED, eventually, probeTcp, requireShared } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { FaultRelay } from '../stress/relay.js';

const { host: HOST, port: PORT } = SHARED.mysql;
const server: PoolOptions = { ...SHARED.mysql.connection, connectTimeout: 2_000 };
/** Where the tests' own servers and proxies listen. */
const LOOPBACK = '127.0.0.1';

const gate = await requireShared(SHARED.mysql, async () => {
  if (!(await probeTcp(HOST, PORT))) return 'nothing listens on the port';
  const connection = await mysql.createConnection(server);
  try {
    await connection.query('SELECT 1');
    return true;
  } finally {
    await connection.end();
  }
});

const MINUTE = 60_000;
const SECRET = 's'.repeat(32);
const randomTable = () => `tessera_test_${randomBytes(6).toString('hex')}`;
const record = (data: string, userId: string | null = null, ttl = 10 * MINUTE) => ({
  data,
  expiresAt: Date.now() + ttl,
  userId,
});
const storeKeyOf = (id: string) => createHash('sha256').update(id).digest('base64url');

async function dropTable(pool: Pool, table: string): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS \`${table}\``);
}

/** Runs the conformance suite on a pool; `flags` lets one run go without FOUND_ROWS. */
function conformance(name: string, flags: string[]) {
  let pool: Pool;
  beforeAll(() => {
    pool = mysql.createPool({ ...server, flags, connectionLimit: 10 });
  });
  afterAll(async () => {
    await pool.end();
  });
  defineStoreConformance({
    name,
    createStore: async (clock) => {
      const store = new MysqlStore({
        pool,
        table: randomTable(),
        now: clock.now,
        pruneInterval: 0,
      });
      await store.createTable();
      return store;
    },
    destroyStore: async (store) => {
      await store.close?.();
      await dropTable(pool, (store as MysqlStore).table);
    },
    injectedClock: true,
    prune: true,
    runner: { describe, it, beforeEach, afterEach },
  });
}

describe.skipIf(!gate.available)(`MysqlStore conformance${gate.label}`, () => {
  describe('with mysql2 defaults (FOUND_ROWS)', () => conformance('MysqlStore', []));
  describe('without FOUND_ROWS', () => conformance('MysqlStore (-FOUND_ROWS)', ['-FOUND_ROWS']));
});

describe('MysqlStore options', () => {
  const pool = {
    execute: async () => [[], []],
    query: async () => [[], []],
  } as unknown as MysqlQueryable;
  const invalid = (make: () => unknown, pattern: RegExp) => {
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

  it('rejects bad options with INVALID_OPTION', () => {
    invalid(() => new MysqlStore(undefined as never), /options/);
    invalid(() => new MysqlStore({ pool: {} as never }), /pool/);
    invalid(() => new MysqlStore({ pool, table: 'sessions; DROP TABLE users' }), /table/);
    invalid(() => new MysqlStore({ pool, table: 'my-sessions' }), /table/);
    invalid(() => new MysqlStore({ pool, table: '1sessions' }), /table/);
    invalid(() => new MysqlStore({ pool, table: 'a.b.c' }), /table/);
    invalid(() => new MysqlStore({ pool, table: '`x`' }), /table/);
    invalid(() => new MysqlStore({ pool, table: 'x'.repeat(65) }), /table/);
    invalid(() => new MysqlStore({ pool, table: 42 as never }), /table/);
    invalid(() => new MysqlStore({ pool, now: 5 as never }), /now/);
    invalid(() => mysqlSchema('sessions`; DROP TABLE users; --'), /table/);
  });

  // Each numeric option against what it must refuse.
  const refused: [option: string, value: unknown][] = [
    ...['pruneInterval', 'pruneBatchSize', 'statementTimeout'].flatMap((option) =>
      [Infinity, -Infinity, Number.NaN, -1, '5'].map((value): [string, unknown] => [option, value]),
    ),
    ['pruneInterval', 2 ** 31],
    ['pruneBatchSize', 0],
    ['pruneBatchSize', 1.5],
    ['statementTimeout', 0],
    ['statementTimeout', 2 ** 31],
  ];
  it.each(refused)('refuses %s: %o, naming the store and the option', (option, value) => {
    invalid(
      () => new MysqlStore({ pool, pruneInterval: 0, [option]: value }),
      new RegExp(`^MysqlStore: ${option} `),
    );
  });

  it('accepts a database-qualified table and defaults to tessera_sessions', async () => {
    expect(new MysqlStore({ pool, pruneInterval: 0 }).table).toBe('tessera_sessions');
    const store = new MysqlStore({ pool, table: 'app_db.user_sessions', pruneInterval: 0 });
    expect(store.table).toBe('app_db.user_sessions');
    await store.close();
  });
});

describe.skipIf(!gate.available)(`MysqlStore on MariaDB/MySQL${gate.label}`, () => {
  let pool: Pool;
  let table: string;
  let store: MysqlStore;

  beforeAll(() => {
    pool = mysql.createPool({ ...server, connectionLimit: 10 });
  });
  afterAll(async () => {
    await pool.end();
  });
  /** The shared pool, with every statement it executes recorded in `sent`. */
  function recordingPool(): {
    sent: { sql: string; values: unknown[] }[];
    recording: MysqlQueryable;
  } {
    const sent: { sql: string; values: unknown[] }[] = [];
    const recording: MysqlQueryable = {
      execute: (sql: string, values?: unknown[]) => {
        sent.push({ sql, values: values ?? [] });
        return pool.execute(sql, values as never);
      },
      query: (sql: string) => pool.query(sql),
    };
    return { sent, recording };
  }

  /** A store on the test table (or `options.table`) that prunes only when called, at `now`. */
  function prunesOnCall(
    now: () => number,
    options: { pool?: MysqlQueryable; table?: string; pruneBatchSize?: number } = {},
  ): MysqlStore {
    return new MysqlStore({ pool, table, pruneInterval: 0, now, ...options });
  }

  beforeEach(async () => {
    table = randomTable();
    store = new MysqlStore({ pool, table, pruneInterval: 0 });
    await store.createTable();
  });
  afterEach(async () => {
    await store.close();
    await dropTable(pool, table);
  });

  it('creates the documented table idempotently', async () => {
    await store.createTable();
    await createMysqlTable(pool, { table });
    await pool.query(mysqlSchema(table));
    await Promise.all([
      store.createTable(),
      store.createTable(),
      createMysqlTable(pool, { table: `test.${table}` }),
    ]);
    const [columns] = await pool.query<mysql.RowDataPacket[]>(
      `SELECT column_name AS name, column_type AS type, is_nullable AS nullable, collation_name AS collation
         FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position`,
      [table],
    );
    // MySQL 8 drops the display widths that MariaDB shows (bigint(20), int(10) unsigned).
    const typeOf = (type: unknown) => String(type).replace(/^(bigint|int)\(\d+\)/, '$1');
    expect(columns.map((c) => [c.name, typeOf(c.type), c.nullable])).toEqual([
      ['key', 'varbinary(64)', 'NO'],
      ['data', 'longtext', 'NO'],
      ['expires_at', 'bigint', 'NO'],
      ['version', 'int unsigned', 'NO'],
      ['user_id', 'varbinary(1024)', 'YES'],
    ]);
    expect(columns[1]?.collation).toBe('utf8mb4_bin');
    const [indexes] = await pool.query<mysql.RowDataPacket[]>(
      `SELECT index_name AS name, column_name AS col FROM information_schema.statistics
        WHERE table_schema = DATABASE() AND table_name = ? ORDER BY index_name`,
      [table],
    );
    expect(indexes.map((i) => [i.name, i.col])).toEqual([
      ['expires_at_idx', 'expires_at'],
      ['PRIMARY', 'key'],
      ['user_id_idx', 'user_id'],
    ]);
  });

  it('uses exactly one statement per operation', async () => {
    let statements = 0;
    const counting: MysqlQueryable = {
      execute: (sql, values) => {
        statements++;
        return pool.execute(sql, values) as Promise<[unknown, unknown]>;
      },
      query: (sql) => {
        statements++;
        return pool.query(sql) as Promise<[unknown, unknown]>;
      },
    };
    let now = Date.now();
    const counted = new MysqlStore({ pool: counting, table, pruneInterval: 0, now: () => now });
    const cost = async (run: () => Promise<unknown>) => {
      statements = 0;
      await run();
      return statements;
    };
    const key = randomStoreKey();
    expect(
      await cost(() => counted.create(key, { data: 'a', expiresAt: now + MINUTE, userId: 'u' })),
    ).toBe(1);
    expect(
      await cost(() => counted.create(key, { data: 'b', expiresAt: now + MINUTE, userId: 'u' })),
    ).toBe(1);
    expect(await cost(() => counted.get(key))).toBe(1);
    expect(await cost(() => counted.get(randomStoreKey()))).toBe(1);
    expect(
      await cost(() => counted.update(key, { data: 'c', expiresAt: now + MINUTE, userId: 'u' }, 1)),
    ).toBe(1);
    expect(
      await cost(() => counted.update(key, { data: 'd', expiresAt: now + MINUTE, userId: 'u' }, 1)),
    ).toBe(1);
    expect(
      await cost(() =>
        counted.update(randomStoreKey(), { data: 'e', expiresAt: now + MINUTE, userId: 'u' }, 1),
      ),
    ).toBe(1);
    expect(await cost(() => counted.touch(key, now + 2 * MINUTE))).toBe(1);
    expect(await cost(() => counted.listByUser('u'))).toBe(1);
    expect(await cost(() => counted.deleteByUser('u', key))).toBe(1);
    expect(await cost(() => counted.deleteByUser('u'))).toBe(1);
    expect(await cost(() => counted.delete(key))).toBe(1);
    await counted.create(key, { data: 'old', expiresAt: now + MINUTE, userId: null });
    now += 2 * MINUTE;
    expect(
      await cost(() => counted.create(key, { data: 'new', expiresAt: now + MINUTE, userId: null })),
    ).toBe(1);
    expect((await counted.get(key))?.data).toBe('new');
  });

  it('answers a touch that keeps the same expiry as found, with or without FOUND_ROWS', async () => {
    const plain = mysql.createPool({ ...server, flags: ['-FOUND_ROWS'], connectionLimit: 1 });
    try {
      for (const target of [store, new MysqlStore({ pool: plain, table, pruneInterval: 0 })]) {
        const key = randomStoreKey();
        const written = record('x');
        await target.create(key, written);
        expect(await target.touch(key, written.expiresAt)).toBe(true);
        expect(await target.create(key, record('y'))).toBe(false);
      }
    } finally {
      await plain.end();
    }
  });

  it('keeps user IDs exact: case, trailing spaces and accents are different users', async () => {
    const base = `user-${randomBytes(4).toString('hex')}`;
    const variants = [base, `${base} `, base.toUpperCase(), `${base}\u0301`, `${base}\0`];
    const keys = new Map<string, string>();
    for (const userId of variants) {
      const key = randomStoreKey();
      keys.set(userId, key);
      await store.create(key, record('x', userId));
    }
    for (const userId of variants) {
      const listed = await store.listByUser(userId);
      expect(listed.map((row) => [row.key, row.userId])).toEqual([[keys.get(userId), userId]]);
    }
    expect(await store.deleteByUser(`${base} `)).toBe(1);
    expect((await store.listByUser(base)).length).toBe(1);
  });

  it('keeps keys exact: a key differing in case or a trailing space is another record', async () => {
    const key = randomStoreKey();
    await store.create(key, record('original'));
    expect(
      await store.get(key.toLowerCase() === key ? key.toUpperCase() : key.toLowerCase()),
    ).toBeNull();
    expect(await store.get(`${key} `)).toBeNull();
    expect(await store.create(`${key} `, record('other'))).toBe(true);
    expect((await store.get(key))?.data).toBe('original');
  });

  it('refuses a user ID longer than the column instead of cutting it', async () => {
    const long = 'é'.repeat(513);
    const attempt = store.create(randomStoreKey(), record('x', long));
    await expect(attempt).rejects.toThrow(SessionError);
    await expect(attempt).rejects.toMatchObject({ code: 'INVALID_DATA' });
    const key = randomStoreKey();
    await store.create(key, record('x', 'short'));
    await expect(store.update(key, record('x', long), 1)).rejects.toMatchObject({
      code: 'INVALID_DATA',
    });
    expect(await store.listByUser(long)).toEqual([]);
  });

  it('called directly, keeps a user ID with U+0000 exactly, and refuses one of 10,000 characters with INVALID_DATA', async () => {
    const userId = 'user\u0000x';
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
    expect(await store.listByUser('user')).toEqual([]);
    expect(await store.deleteByUser(userId)).toBe(2);

    const long = 'u'.repeat(10_000);
    await expect(store.create(randomStoreKey(), record('a', long))).rejects.toMatchObject({
      code: 'INVALID_DATA',
    });
    const anonymous = randomStoreKey();
    await store.create(anonymous, record('b'));
    await expect(store.update(anonymous, record('b', long), 1)).rejects.toMatchObject({
      code: 'INVALID_DATA',
    });
    expect(await store.listByUser(long)).toEqual([]);
    expect(await store.deleteByUser(long)).toBe(0);
  });

  it('prunes in batches until none is left', async () => {
    let now = Date.now();
    const batched = prunesOnCall(() => now, { pruneBatchSize: 2 });
    for (let i = 0; i < 5; i++)
      await batched.create(randomStoreKey(), { data: 'x', expiresAt: now + 1, userId: 'p' });
    const live = randomStoreKey();
    await batched.create(live, { data: 'live', expiresAt: now + MINUTE, userId: 'p' });
    now += 2;
    expect(await batched.prune()).toBe(5);
    expect(await batched.prune()).toBe(0);
    const [rows] = await pool.query<mysql.RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM \`${table}\``,
    );
    expect(Number(rows[0]?.n)).toBe(1);
  });

  it('prunes oldest first through the expiry index, even once ANALYZE has seen many expired rows', async () => {
    const own = randomTable();
    const { sent, recording } = recordingPool();
    const now = Date.now();
    const pruner = prunesOnCall(() => now, { pool: recording, table: own });
    try {
      await pruner.createTable();
      const rows = Array.from({ length: 5_000 }, (_, i) => [
        randomStoreKey(),
        'x',
        i % 5 === 0 ? now - MINUTE - i : now + MINUTE,
        1,
        null,
      ]);
      await pool.query(
        `INSERT INTO \`${own}\` (\`key\`, data, expires_at, version, user_id) VALUES ?`,
        [rows],
      );
      await pool.query(`ANALYZE TABLE \`${own}\``);
      const byAge = rows
        .filter((row) => (row[2] as number) <= now)
        .sort((a, b) => (a[2] as number) - (b[2] as number))
        .map((row) => row[0] as string);
      const select = async () => {
        const read = sent.find(({ sql }) => sql.startsWith('SELECT'))!;
        const [plan] = await pool.query<mysql.RowDataPacket[]>(`EXPLAIN ${read.sql}`, read.values);
        return plan;
      };
      // With batches of 100, each read is followed by one delete, of the oldest keys left: never
      // two deletes at once, which slowed the reads made meanwhile.
      const first = prunesOnCall(() => now, { pool: recording, table: own, pruneBatchSize: 100 });
      sent.length = 0;
      expect(await first.prune()).toBe(1_000);
      expect(sent.map(({ sql }) => sql.slice(0, 6))).toEqual([
        ...Array.from({ length: 10 }, () => ['SELECT', 'DELETE']).flat(),
        'SELECT',
      ]);
      const deletes = sent.filter(({ sql }) => sql.startsWith('DELETE'));
      const named = (i: number) =>
        new Set(deletes[i]!.values.slice(0, 100).map((key) => (key as Buffer).toString()));
      expect(named(0)).toEqual(new Set(byAge.slice(0, 100)));
      expect(named(1)).toEqual(new Set(byAge.slice(100, 200)));
      expect((await select())[0]).toMatchObject({ type: 'range', key: 'expires_at_idx' });
      expect((await select())[0]!.Extra).toContain('Using index');
      await first.close();

      sent.length = 0;
      await pool.query(
        `INSERT INTO \`${own}\` (\`key\`, data, expires_at, version, user_id) VALUES ?`,
        [rows.filter((row) => (row[2] as number) <= now)],
      );
      await pool.query(`ANALYZE TABLE \`${own}\``);
      expect(await pruner.prune()).toBe(1_000);
      expect((await select())[0]).toMatchObject({ type: 'range', key: 'expires_at_idx' });
      const remove = sent.find(({ sql }) => sql.startsWith('DELETE'))!;
      const [plan] = await pool.query<mysql.RowDataPacket[]>(
        `EXPLAIN ${remove.sql}`,
        remove.values,
      );
      expect(plan[0]).toMatchObject({ type: 'range', key: 'PRIMARY' });
    } finally {
      await dropTable(pool, own);
    }
  });

  it('deletes through the primary key even when most of a small table has expired', async () => {
    const { recording } = recordingPool();
    const now = Date.now();
    const rows = Array.from({ length: 1_200 }, (_, i) => [
      randomStoreKey(),
      'x',
      i < 1_000 ? now - MINUTE : now + MINUTE,
      1,
      null,
    ]);
    await pool.query(
      `INSERT INTO \`${table}\` (\`key\`, data, expires_at, version, user_id) VALUES ?`,
      [rows],
    );
    await pool.query(`ANALYZE TABLE \`${table}\``);
    const pruner = prunesOnCall(() => now, { pool: recording });
    // The statement the prune sends, explained with the keys it named while they still exist.
    const first = new Promise<{ sql: string; values: unknown[] }>((resolve) => {
      recording.execute = (sql, values) => {
        if (sql.startsWith('DELETE')) resolve({ sql, values: values ?? [] });
        return pool.execute(sql, values as never);
      };
    });
    const pruning = pruner.prune();
    const remove = await first;
    const [plan] = await pool.query<mysql.RowDataPacket[]>(`EXPLAIN ${remove.sql}`, remove.values);
    expect(plan[0]).toMatchObject({ type: 'range', key: 'PRIMARY' });
    expect(await pruning).toBe(1_000);
  });

  it('never prunes a session renewed after its key was read, and prunes the rest', async () => {
    let now = Date.now();
    const renewed = randomStoreKey();
    let renew: (() => Promise<unknown>) | undefined = () =>
      store.touch(renewed, Date.now() + 10 * MINUTE);
    const racing = {
      execute: async (sql: string, values?: unknown[]) => {
        const answer = await pool.execute(sql, values as never);
        // Between the prune's read of the expired keys and its deletes, a request renews one.
        if (sql.startsWith('SELECT `key`') && renew !== undefined) {
          const run = renew;
          renew = undefined;
          await run();
        }
        return answer;
      },
      query: (sql: string) => pool.query(sql),
    };
    const pruner = prunesOnCall(() => now, { pool: racing, pruneBatchSize: 2 });
    const soon = Date.now() + MINUTE;
    // The oldest, so that the first read of expired keys finds it.
    await store.create(renewed, { data: 'renewed', expiresAt: soon - 100, userId: null });
    for (let i = 0; i < 6; i++)
      await store.create(randomStoreKey(), { data: 'gone', expiresAt: soon - 1 - i, userId: null });
    now = soon;
    expect(await pruner.prune()).toBe(6);
    expect((await store.get(renewed))?.data).toBe('renewed');
    expect(await pruner.prune()).toBe(0);
  });

  it('prunes every row of an expiry that many rows share, across reads', async () => {
    let now = Date.now();
    const { sent, recording } = recordingPool();
    const pruner = prunesOnCall(() => now, { pool: recording, pruneBatchSize: 2 });
    const at = now + 1;
    for (let i = 0; i < 21; i++)
      await store.create(randomStoreKey(), {
        data: 'x',
        expiresAt: i < 20 ? at : at - 1,
        userId: null,
      });
    now = at;
    expect(await pruner.prune()).toBe(21);
    // Each read after the first starts at the expiry where the one before it ended.
    const reads = sent.filter(({ sql }) => sql.startsWith('SELECT `key`')).map((r) => r.values);
    expect(reads.length).toBeGreaterThan(2);
    expect(reads.slice(1).every(([from]) => from === at)).toBe(true);
    // The next prune starts from the oldest row again.
    await store.create(randomStoreKey(), { data: 'x', expiresAt: at - 5, userId: null });
    expect(await pruner.prune()).toBe(1);
  });

  it('prunes with one delete statement whatever the number of rows left, and with batches above 10,000', async () => {
    let now = Date.now();
    const { sent, recording } = recordingPool();
    const pruner = prunesOnCall(() => now, { pool: recording, pruneBatchSize: 4 });
    for (const count of [1, 3, 4, 5, 11]) {
      for (let i = 0; i < count; i++)
        await store.create(randomStoreKey(), { data: 'x', expiresAt: now + 1, userId: null });
      now += 2;
      expect(await pruner.prune()).toBe(count);
    }
    // Prepared statements are per SQL text: the padded key list keeps the count at one.
    const deletes = new Set(sent.map(({ sql }) => sql).filter((sql) => sql.startsWith('DELETE')));
    expect(deletes.size).toBe(1);

    const large = prunesOnCall(() => now, { pruneBatchSize: 100_000 });
    for (let i = 0; i < 3; i++)
      await store.create(randomStoreKey(), { data: 'x', expiresAt: now + 1, userId: null });
    now += 2;
    expect(await large.prune()).toBe(3);
  });

  it('prunes on its timer', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      let now = Date.now();
      const timed = new MysqlStore({ pool, table, pruneInterval: 60_000, now: () => now });
      await timed.create(randomStoreKey(), { data: 'x', expiresAt: now + 1, userId: null });
      now += 2;
      vi.advanceTimersByTime(60_000);
      // The timer's prune is in flight; a call made meanwhile shares its result.
      expect(await timed.prune()).toBe(1);
      await timed.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('lets exactly one of 50 concurrent creates and updates win, every time', async () => {
    let now = Date.now();
    const raced = new MysqlStore({ pool, table, pruneInterval: 0, now: () => now });
    for (let round = 0; round < 5; round++) {
      const key = randomStoreKey();
      await raced.create(key, { data: 'expired', expiresAt: now + 1, userId: 'old' });
      now += 2;
      const creates = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          raced.create(key, { data: `c${i}`, expiresAt: now + MINUTE, userId: null }),
        ),
      );
      expect(creates.filter(Boolean).length).toBe(1);
      const updates = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          raced.update(key, { data: `u${i}`, expiresAt: now + MINUTE, userId: 'n' }, 1),
        ),
      );
      expect(updates.filter((r) => r.status === 'ok').length).toBe(1);
      expect(updates.filter((r) => r.status === 'conflict').length).toBe(49);
      expect((await raced.get(key))?.version).toBe(2);
      expect(await raced.listByUser('old')).toEqual([]);
    }
  });

  it('never exposes the session ID in the table: only its hash is stored', async () => {
    const manager = new SessionManager({ store, secrets: [SECRET] });
    const cookies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const session = await manager.load({});
      session.set('k', 'v');
      session.setUser(`alice-${i}`);
      const { setCookie } = await manager.commit(session);
      cookies.push(setCookie[0]!.split(';')[0]!.split('=')[1]!);
    }
    const [rows] = await pool.query<mysql.RowDataPacket[]>(`SELECT * FROM \`${table}\``);
    expect(rows.length).toBe(3);
    const dump = rows
      .flatMap((row) =>
        Object.values(row).flatMap((value) =>
          Buffer.isBuffer(value)
            ? [value.toString('utf8'), value.toString('hex'), value.toString('base64')]
            : [String(value)],
        ),
      )
      .join('\n');
    for (const value of cookies) {
      const [id, signature] = value.split('.') as [string, string];
      expect(id).toHaveLength(43);
      expect(dump).not.toContain(id);
      expect(dump).not.toContain(signature);
      expect(dump).toContain(storeKeyOf(id));
      const loaded = await manager.load({ cookie: `sid=${value}` });
      expect(loaded.get('k')).toBe('v');
    }
  });
});

describe.skipIf(!gate.available)(`MysqlStore during an outage${gate.label}`, () => {
  let proxy: TcpProxy;
  let direct: Pool;
  let proxied: Pool;
  const table = randomTable();

  beforeAll(async () => {
    proxy = new TcpProxy(HOST, PORT);
    const port = await proxy.start();
    direct = mysql.createPool({ ...server, connectionLimit: 2 });
    proxied = mysql.createPool({
      ...server,
      host: LOOPBACK,
      port,
      connectionLimit: 4,
      connectTimeout: 1_000,
    });
  });
  afterAll(async () => {
    await proxy.stop();
    await dropTable(direct, table);
    await proxied.end().catch(() => undefined);
    await direct.end();
  });

  it('rejects while the server is away and works again, unchanged, when it is back', async () => {
    const store = new MysqlStore({ pool: proxied, table, pruneInterval: 0 });
    await store.createTable();
    const manager = new SessionManager({ store, secrets: [SECRET], storeTimeout: 1_000 });
    const session = await manager.load({});
    session.set('k', 'v');
    const { setCookie } = await manager.commit(session);
    const cookie = setCookie[0]!.split(';')[0]!;
    const key = randomStoreKey();
    await store.create(key, record('before'));
    // Several pooled connections are open when the outage starts, and one statement is in
    // flight: an update waiting for a row lock held on the direct connection.
    await Promise.all([store.get(key), store.get(key), store.get(key)]);
    const lockedKey = randomStoreKey();
    await store.create(lockedKey, record('locked'));
    const locker = await direct.getConnection();
    await locker.query('START TRANSACTION');
    await locker.execute(`SELECT version FROM \`${table}\` WHERE \`key\` = ? FOR UPDATE`, [
      Buffer.from(lockedKey),
    ]);
    const blocked = store.update(lockedKey, record('blocked'), 1);
    blocked.catch(() => undefined);
    let waiting = false;
    for (let attempt = 0; attempt < 100 && !waiting; attempt++) {
      const [rows] = await direct.query<mysql.RowDataPacket[]>(
        `SELECT COUNT(*) AS n FROM information_schema.processlist WHERE info LIKE ?`,
        [`UPDATE \`${table}\` SET%`],
      );
      waiting = Number(rows[0]?.n) > 0;
      if (!waiting) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(waiting).toBe(true);

    await proxy.stop();
    const cutAt = Date.now();
    await expect(blocked).rejects.toThrow();
    expect(Date.now() - cutAt).toBeLessThan(2_000);
    await locker.query('ROLLBACK');
    locker.release();
    await expect(store.get(key)).rejects.toThrow();
    await expect(store.create(randomStoreKey(), record('during'))).rejects.toThrow();
    await expect(store.update(key, record('during'), 1)).rejects.toThrow();
    await expect(store.touch(key, Date.now() + MINUTE)).rejects.toThrow();
    await expect(store.listByUser('u')).rejects.toThrow();
    await expect(store.deleteByUser('u')).rejects.toThrow();
    await expect(store.delete(key)).rejects.toThrow();
    await expect(store.prune()).rejects.toThrow();
    const started = Date.now();
    const load = manager.load({ cookie });
    await expect(load).rejects.toBeInstanceOf(SessionError);
    await expect(load).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(Date.now() - started).toBeLessThan(3_000);

    await proxy.start();
    await eventually(() => store.get(key), 5_000);
    expect((await store.get(key))?.data).toBe('before');
    expect(await store.update(key, record('after'), 1)).toEqual({ status: 'ok', version: 2 });
    expect((await store.get(key))?.data).toBe('after');
    expect((await manager.load({ cookie })).get('k')).toBe('v');
    const next = await manager.load({});
    next.set('k', 'again');
    expect((await manager.commit(next)).setCookie).toHaveLength(1);
    await store.close();
  });
});

describe.skipIf(!gate.available)(
  `MysqlStore against a server that accepts but never answers${gate.label}`,
  () => {
    it('rejects within the connect timeout, and the manager answers STORE_UNAVAILABLE', async () => {
      const sockets = new Set<Socket>();
      const silent = createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => undefined);
      });
      await new Promise<void>((resolve) => silent.listen(0, LOOPBACK, resolve));
      const { port } = silent.address() as AddressInfo;
      const pool = mysql.createPool({
        ...server,
        host: LOOPBACK,
        port,
        connectTimeout: 500,
        connectionLimit: 2,
      });
      try {
        const store = new MysqlStore({ pool, table: randomTable(), pruneInterval: 0 });
        const started = Date.now();
        await expect(store.get(randomStoreKey())).rejects.toThrow();
        expect(Date.now() - started).toBeLessThan(2_000);
        const manager = new SessionManager({ store, secrets: [SECRET], storeTimeout: 1_000 });
        const session = await manager.load({});
        session.set('k', 'v');
        const commit = manager.commit(session);
        await expect(commit).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        expect(Date.now() - started).toBeLessThan(4_000);
      } finally {
        await pool.end().catch(() => undefined);
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => silent.close(() => resolve()));
      }
    });
  },
);

/** A pool whose checked-out connections report how they went back: released or destroyed. */
function tracked(pool: Pool): { pool: MysqlPool; returns: string[] } {
  const returns: string[] = [];
  const wrapped: MysqlPool = {
    execute: (sql, values) => pool.execute(sql, values) as Promise<[unknown, unknown]>,
    query: (sql) => pool.query(sql) as Promise<[unknown, unknown]>,
    getConnection: async () => {
      const connection = await pool.getConnection();
      return {
        execute: (sql, values) => connection.execute(sql, values) as Promise<[unknown, unknown]>,
        query: (sql) => connection.query(sql) as Promise<[unknown, unknown]>,
        release: () => {
          returns.push(`released ${connection.threadId}`);
          connection.release();
        },
        destroy: () => {
          returns.push(`destroyed ${connection.threadId}`);
          connection.destroy();
        },
      };
    },
  };
  return { pool: wrapped, returns };
}

describe.skipIf(!gate.available)(`MysqlStore's statementTimeout on a pool${gate.label}`, () => {
  const TIMEOUT = 300;
  let direct: Pool;
  const table = randomTable();

  beforeAll(async () => {
    direct = mysql.createPool({ ...server, connectionLimit: 2 });
    await createMysqlTable(direct, { table });
  });
  afterAll(async () => {
    await dropTable(direct, table);
    await direct.end();
  });

  it('runs each statement on a connection checked out for it, and gives it back after a success or an error', async () => {
    const one = mysql.createPool({ ...server, connectionLimit: 1 });
    try {
      const { pool, returns } = tracked(one);
      const store = new MysqlStore({ pool, table, pruneInterval: 0, statementTimeout: TIMEOUT });
      const key = randomStoreKey();
      expect(await store.create(key, record('a', 'u'))).toBe(true);
      expect((await store.get(key))?.data).toBe('a');
      expect(await store.update(key, record('b', 'u'), 1)).toEqual({ status: 'ok', version: 2 });
      const missing = new MysqlStore({ pool, table: randomTable(), pruneInterval: 0 });
      await expect(missing.get(key)).rejects.toMatchObject({ errno: 1146 });
      await store.createTable();
      expect(await store.deleteByUser('u')).toBe(1);
      const [thread] = returns;
      expect(returns).toEqual(Array.from({ length: 6 }, () => thread));
      expect(thread).toMatch(/^released \d+$/);
    } finally {
      await one.end();
    }
  });

  it('never sends a statement still waiting for a connection when the timeout fires', async () => {
    const one = mysql.createPool({ ...server, connectionLimit: 1 });
    try {
      const store = new MysqlStore({
        pool: one,
        table,
        pruneInterval: 0,
        statementTimeout: TIMEOUT,
      });
      const held = await one.getConnection();
      const key = randomStoreKey();
      const started = performance.now();
      const write = store.create(key, record('late'));
      await expect(write).rejects.toBeInstanceOf(SessionError);
      await expect(write).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      expect(performance.now() - started).toBeGreaterThanOrEqual(TIMEOUT - 5);
      held.release();
      // The late checkout is served first and given back unused: the create never ran.
      expect(await store.get(key)).toBeNull();
      expect(await store.create(key, record('now'))).toBe(true);
    } finally {
      await one.end();
    }
  });

  it('times out a statement on a connection the network silently lost, destroys that connection, and runs the next one on a new connection', async () => {
    const relay = new FaultRelay(HOST, PORT);
    const port = await relay.start();
    const one = mysql.createPool({
      ...server,
      host: LOOPBACK,
      port,
      connectionLimit: 1,
      connectTimeout: 1_000,
    });
    try {
      const { pool, returns } = tracked(one);
      const store = new MysqlStore({ pool, table, pruneInterval: 0, statementTimeout: TIMEOUT });
      const key = randomStoreKey();
      await direct.execute(
        `INSERT INTO \`${table}\` (\`key\`, data, expires_at, version) VALUES (?, 'kept', ?, 1)`,
        [Buffer.from(key), Date.now() + MINUTE],
      );
      expect((await store.get(key))?.data).toBe('kept');
      expect(relay.connections).toBe(1);

      // The open connection goes silent for good (a NAT or firewall forgot it); new ones work.
      relay.partition();
      relay.heal(true);
      // A statement this connection never prepared: its PREPARE, not only its EXECUTE, is bounded.
      const started = performance.now();
      const lost = store.create(randomStoreKey(), record('lost'));
      await expect(lost).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      const waited = performance.now() - started;
      expect(waited).toBeGreaterThanOrEqual(TIMEOUT - 5);
      expect(waited).toBeLessThan(TIMEOUT + 1_000);
      expect(returns.at(-1)).toMatch(/^destroyed \d+$/);

      // With a limit of one connection, the next statement runs only if the dead one left the pool.
      expect((await store.get(key))?.data).toBe('kept');
      const [first, destroyed, next] = returns;
      expect(destroyed).toBe(first!.replace('released', 'destroyed'));
      expect(next).toMatch(/^released \d+$/);
      expect(next).not.toBe(first);
      await eventually(() => expect(relay.connections).toBe(1), 2_000, 20);
    } finally {
      await one.end().catch(() => undefined);
      await relay.close();
    }
  });
});

describe.skipIf(!gate.available)(`MysqlStore with another store's table${gate.label}`, () => {
  it('keeps two stores on two tables apart', async () => {
    const pool = mysql.createPool({ ...server, connectionLimit: 2 });
    const stores: SessionStore[] = [];
    const tables = [randomTable(), randomTable()];
    try {
      for (const table of tables) {
        const store = new MysqlStore({ pool, table, pruneInterval: 0 });
        await store.createTable();
        stores.push(store);
      }
      const key = randomStoreKey();
      await stores[0]!.create(key, record('first'));
      expect(await stores[1]!.get(key)).toBeNull();
      expect(await stores[1]!.create(key, record('second'))).toBe(true);
      expect((await stores[0]!.get(key))?.data).toBe('first');
    } finally {
      for (const store of stores) await store.close?.();
      for (const table of tables) await dropTable(pool, table);
      await pool.end();
    }
  });
});
