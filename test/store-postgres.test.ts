import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach, vi } from 'vitest';
import pg from 'pg';
import { defineStoreConformance, randomStoreKey } from '../src/testing/index.js';
import {
  PostgresStore,
  createPostgresTable,
  postgresSchema,
  type PostgresQueryable,
} from '../src/stores/postgres.js';
import { SessionManager } from '../src/manager.js';
import { SessionError } from '../src/errors.js';
import type { SessionStore } from '../src/store.js';
import { SHARED, eventually, probeTcp, requireShared } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';

const { host: HOST, port: PORT, connection } = SHARED.postgres;
/** Where the tests' own servers and proxies listen. */
const LOOPBACK = '127.0.0.1';

const gate = await requireShared(SHARED.postgres, async () => {
  if (!(await probeTcp(HOST, PORT))) return `nothing listens on ${HOST}:${PORT}`;
  const probe = new pg.Client({ ...connection, connectionTimeoutMillis: 2_000 });
  try {
    await probe.connect();
    await probe.query('SELECT 1');
    return true;
  } finally {
    await probe.end().catch(() => undefined);
  }
});

const uniqueTable = () => `tessera_test_${randomBytes(6).toString('hex')}`;
/** An anonymous record that expires in ten minutes. */
const live = () => ({ data: '{}', expiresAt: Date.now() + 10 * 60_000, userId: null });
const minute = 60_000;
const secret = 's'.repeat(32);

/** A pool on the shared server, or on a proxy in front of it at `port` on the loopback. */
function newPool(port?: number): pg.Pool {
  const pool = new pg.Pool({
    ...connection,
    ...(port === undefined ? {} : { host: LOOPBACK, port }),
    max: 10,
    connectionTimeoutMillis: 1_000,
    query_timeout: 5_000,
    statement_timeout: 5_000,
  });
  // A connection cut while idle surfaces here; without a listener it would crash the process.
  pool.on('error', () => undefined);
  return pool;
}

describe.skipIf(!gate.available)(`PostgresStore against a real server${gate.label}`, () => {
  let pool: pg.Pool;
  const tables = new Set<string>();

  const dropTable = async (table: string) => {
    await pool.query(`DROP TABLE IF EXISTS ${table}`);
    tables.delete(table);
  };
  const newStore = async (
    options: { now?: () => number; pruneBatchSize?: number; preparedStatements?: boolean } = {},
  ) => {
    const store = new PostgresStore({ pool, table: uniqueTable(), pruneInterval: 0, ...options });
    tables.add(store.table);
    await store.createTable();
    return store;
  };

  beforeAll(() => {
    pool = newPool();
  });
  afterAll(async () => {
    for (const table of [...tables]) await dropTable(table);
    await pool.end();
  });

  for (const preparedStatements of [true, false]) {
    defineStoreConformance({
      name: preparedStatements ? 'PostgresStore' : 'PostgresStore with preparedStatements: false',
      createStore: (clock) => newStore({ now: clock.now, preparedStatements }),
      destroyStore: async (store: SessionStore) => {
        await store.close?.();
        await dropTable((store as PostgresStore).table);
      },
      injectedClock: true,
      prune: true,
      runner: { describe, it, beforeEach, afterEach },
    });
  }

  describe('prepared statements', () => {
    const preparedOn = async (client: pg.Client) =>
      (
        await client.query<{ name: string }>(
          `SELECT name FROM pg_prepared_statements WHERE name LIKE 'tessera%' ORDER BY name`,
        )
      ).rows.map((row) => row.name);

    it('prepares each statement once per connection, named apart for each table', async () => {
      const client = new pg.Client({ ...connection });
      await client.connect();
      try {
        const first = new PostgresStore({ pool: client, table: uniqueTable(), pruneInterval: 0 });
        const second = new PostgresStore({ pool: client, table: uniqueTable(), pruneInterval: 0 });
        for (const store of [first, second]) {
          tables.add(store.table);
          await store.createTable();
        }
        const key = randomStoreKey();
        const record = { data: 'd', expiresAt: Date.now() + minute, userId: null };
        for (let i = 0; i < 3; i++) {
          expect(await first.get(key)).toBeNull();
          expect(await second.get(key)).toBeNull();
        }
        expect(await first.create(key, record)).toBe(true);
        expect((await first.get(key))?.data).toBe('d');
        expect(await second.get(key)).toBeNull();
        const names = await preparedOn(client);
        expect(names.filter((name) => name.startsWith('tessera_get_'))).toHaveLength(2);
        expect(names.filter((name) => name.startsWith('tessera_create_'))).toHaveLength(1);
        expect(names.every((name) => name.length <= 63)).toBe(true);
      } finally {
        await client.end();
      }
    });

    it('sends plain statements with preparedStatements: false', async () => {
      const client = new pg.Client({ ...connection });
      await client.connect();
      try {
        const store = new PostgresStore({
          pool: client,
          table: uniqueTable(),
          pruneInterval: 0,
          preparedStatements: false,
        });
        tables.add(store.table);
        await store.createTable();
        const key = randomStoreKey();
        await store.create(key, { data: 'd', expiresAt: Date.now() + minute, userId: null });
        expect((await store.get(key))?.data).toBe('d');
        expect(await preparedOn(client)).toEqual([]);
      } finally {
        await client.end();
      }
    });
  });

  describe('concurrency beyond the suite', () => {
    let store: PostgresStore;
    let now: number;
    beforeEach(async () => {
      now = Date.now();
      store = await newStore({ now: () => now });
    });
    afterEach(async () => {
      await store.close();
      await dropTable(store.table);
    });
    const live = (data: string) => ({ data, expiresAt: now + 10 * minute, userId: 'u' });

    it('lets exactly one of many concurrent creates over an expired record win', async () => {
      const key = randomStoreKey();
      await store.create(key, { data: 'old', expiresAt: now - minute, userId: null });
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => store.create(key, live(`w${i}`))),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const read = await store.get(key);
      expect(read?.data).toBe(`w${results.indexOf(true)}`);
      expect(read?.version).toBe(1);
    });

    it('answers missing, never conflict, when an update races a delete', async () => {
      const keys = Array.from({ length: 30 }, () => randomStoreKey());
      for (const key of keys) await store.create(key, live('base'));
      const outcomes = await Promise.all(
        keys.map(async (key) => {
          const [result] = await Promise.all([
            store.update(key, live('next'), 1),
            store.delete(key),
          ]);
          return result.status;
        }),
      );
      expect(outcomes.every((status) => status === 'ok' || status === 'missing')).toBe(true);
      for (const key of keys) expect(await store.get(key)).toBeNull();
    });

    it('keeps an update ok when it races a touch, which leaves the version alone', async () => {
      const keys = Array.from({ length: 30 }, () => randomStoreKey());
      for (const key of keys) await store.create(key, live('base'));
      const results = await Promise.all(
        keys.map(async (key) => {
          const [result] = await Promise.all([
            store.update(key, live('next'), 1),
            store.touch(key, now + 20 * minute),
          ]);
          return result;
        }),
      );
      expect(results.every((result) => result.status === 'ok' && result.version === 2)).toBe(true);
    });
  });

  describe('schema and pruning', () => {
    it('creates the table idempotently, also when many callers race', async () => {
      const table = uniqueTable();
      tables.add(`"${table}"`);
      await Promise.all(Array.from({ length: 6 }, () => createPostgresTable(pool, { table })));
      await createPostgresTable(pool, { table });
      const store = new PostgresStore({ pool, table, pruneInterval: 0 });
      await store.createTable();

      const columns = await pool.query(
        `SELECT column_name, data_type, is_nullable, collation_name FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`,
        [table],
      );
      expect(columns.rows).toEqual([
        { column_name: 'key', data_type: 'text', is_nullable: 'NO', collation_name: 'C' },
        { column_name: 'data', data_type: 'text', is_nullable: 'NO', collation_name: null },
        { column_name: 'expires_at', data_type: 'bigint', is_nullable: 'NO', collation_name: null },
        { column_name: 'version', data_type: 'integer', is_nullable: 'NO', collation_name: null },
        { column_name: 'user_id', data_type: 'text', is_nullable: 'YES', collation_name: 'C' },
      ]);
      const indexes = await pool.query(
        `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1 ORDER BY indexname`,
        [table],
      );
      expect(indexes.rows.map((row: { indexname: string }) => row.indexname)).toEqual([
        `${table}_expires_at_idx`,
        `${table}_pkey`,
        `${table}_user_id_idx`,
      ]);
      await store.close();
      await dropTable(`"${table}"`);
    });

    it('gives migrations the same schema as plain SQL', async () => {
      expect(postgresSchema()).toBe(
        [
          'CREATE TABLE IF NOT EXISTS "tessera_sessions" (',
          '  key TEXT COLLATE "C" PRIMARY KEY,',
          '  data TEXT NOT NULL,',
          '  expires_at BIGINT NOT NULL,',
          '  version INTEGER NOT NULL,',
          '  user_id TEXT COLLATE "C"',
          ');',
          'CREATE INDEX IF NOT EXISTS "tessera_sessions_expires_at_idx" ON "tessera_sessions" (expires_at);',
          'CREATE INDEX IF NOT EXISTS "tessera_sessions_user_id_idx" ON "tessera_sessions" (user_id) WHERE user_id IS NOT NULL;',
          '',
        ].join('\n'),
      );
      const table = uniqueTable();
      tables.add(`"${table}"`);
      await pool.query(postgresSchema(table));
      await pool.query(postgresSchema(table));
      const store = new PostgresStore({ pool, table, pruneInterval: 0 });
      await store.createTable();
      const key = randomStoreKey();
      await store.create(key, { data: 'x', expiresAt: Date.now() + minute, userId: 'u' });
      expect((await store.listByUser('u')).map((row) => row.key)).toEqual([key]);
      await dropTable(`"${table}"`);
    });

    it('works in a schema-qualified table', async () => {
      const schema = `tessera_test_schema_${randomBytes(6).toString('hex')}`;
      await pool.query(`CREATE SCHEMA "${schema}"`);
      try {
        const store = new PostgresStore({ pool, table: `${schema}.sessions`, pruneInterval: 0 });
        expect(store.table).toBe(`"${schema}"."sessions"`);
        await store.createTable();
        await store.createTable();
        const key = randomStoreKey();
        expect(
          await store.create(key, { data: 'x', expiresAt: Date.now() + minute, userId: 'u' }),
        ).toBe(true);
        expect((await store.get(key))?.data).toBe('x');
        const found = await pool.query(`SELECT key FROM "${schema}"."sessions"`);
        expect(found.rows).toEqual([{ key }]);
        await store.close();
      } finally {
        await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
      }
    });

    it('prunes in batches until none are left, and only expired rows', async () => {
      let now = Date.now();
      const store = await newStore({ now: () => now, pruneBatchSize: 2 });
      for (let i = 0; i < 7; i++)
        await store.create(randomStoreKey(), { data: 'x', expiresAt: now + minute, userId: null });
      const keep = randomStoreKey();
      await store.create(keep, { data: 'keep', expiresAt: now + 10 * minute, userId: null });
      now += minute;
      expect(await store.prune()).toBe(7);
      expect(await store.prune()).toBe(0);
      const { rows } = await pool.query(`SELECT key FROM ${store.table}`);
      expect(rows).toEqual([{ key: keep }]);
      await dropTable(store.table);
    });

    it('prunes through the expiry index, in the generic plan and the custom one, once ANALYZE has seen many expired rows', async () => {
      const sent: string[] = [];
      const recording = {
        query(arg: string | { text: string }, values?: unknown[]) {
          sent.push(typeof arg === 'string' ? arg : arg.text);
          return pool.query(arg as string, values);
        },
      };
      const now = Date.now();
      const store = new PostgresStore({ pool: recording, table: uniqueTable(), pruneInterval: 0 });
      tables.add(store.table);
      await store.createTable();
      // A fifth of 20,000 rows expired: enough for a sequential scan to look cheap to a planner
      // that reads LIMIT $n as a tenth of the table.
      await pool.query(
        `INSERT INTO ${store.table} SELECT md5(i::text), 'x',
           CASE WHEN i % 5 = 0 THEN $1::bigint - 1000 ELSE $1::bigint + 86400000 END, 1, NULL
         FROM generate_series(1, 20000) AS i`,
        [now],
      );
      await pool.query(`ANALYZE ${store.table}`);
      sent.length = 0;
      await store.prune();
      const prune = sent.find((sql) => sql.startsWith('DELETE'))!;
      const client = await pool.connect();
      try {
        await client.query(`PREPARE tessera_test_prune AS ${prune}`);
        for (const mode of ['force_generic_plan', 'force_custom_plan']) {
          await client.query(`SET plan_cache_mode = ${mode}`);
          const { rows } = await client.query<{ 'QUERY PLAN': string }>(
            `EXPLAIN (COSTS OFF) EXECUTE tessera_test_prune(${now})`,
          );
          const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
          expect(plan, mode).toMatch(/Index Scan using \S+_expires_at_idx/);
          expect(plan, mode).not.toMatch(/Seq Scan/);
        }
      } finally {
        await client.query('DEALLOCATE ALL; RESET plan_cache_mode');
        client.release();
      }
      await dropTable(store.table);
    });

    it('lets two processes prune one table at once without double counting', async () => {
      let now = Date.now();
      const first = await newStore({ now: () => now, pruneBatchSize: 5 });
      const second = new PostgresStore({
        pool,
        table: first.table.slice(1, -1),
        now: () => now,
        pruneInterval: 0,
        pruneBatchSize: 5,
      });
      for (let i = 0; i < 60; i++) {
        await first.create(randomStoreKey(), { data: 'x', expiresAt: now + minute, userId: null });
      }
      now += minute;
      const [a, b] = await Promise.all([first.prune(), second.prune()]);
      expect(a + b).toBe(60);
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${first.table}`);
      expect(rows).toEqual([{ n: 0 }]);
      await dropTable(first.table);
    });

    it('prunes on its timer, and close waits for a prune in progress', async () => {
      let now = Date.now();
      const table = uniqueTable();
      tables.add(`"${table}"`);
      await createPostgresTable(pool, { table });
      vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
      try {
        const store = new PostgresStore({ pool, table, now: () => now, pruneInterval: 60_000 });
        await store.create(randomStoreKey(), { data: 'x', expiresAt: now + minute, userId: null });
        now += 2 * minute;
        vi.advanceTimersByTime(60_000);
        await store.close();
        const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "${table}"`);
        expect(rows).toEqual([{ n: 0 }]);
      } finally {
        vi.useRealTimers();
        await dropTable(`"${table}"`);
      }
    });
  });

  describe('unusual user IDs, called directly', () => {
    const rejectsInvalidData = async (call: Promise<unknown>) => {
      const error = await call.then(
        () => null,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(SessionError);
      expect(error).toMatchObject({ code: 'INVALID_DATA', message: /^PostgresStore: / });
    };

    it('refuses a user ID with U+0000, which text cannot hold, with INVALID_DATA from every call', async () => {
      const store = await newStore();
      const userId = 'user\u0000x';
      const key = randomStoreKey();
      await rejectsInvalidData(store.create(randomStoreKey(), { ...live(), userId }));
      expect(await store.create(key, live())).toBe(true);
      await rejectsInvalidData(store.update(key, { ...live(), userId }, 1));
      await rejectsInvalidData(store.listByUser(userId));
      await rejectsInvalidData(store.deleteByUser(userId));
      expect(await store.get(key)).toMatchObject({ userId: null, version: 1 });
    });

    it('keeps a 10,000-character user ID that fits its index, and refuses one that does not with INVALID_DATA', async () => {
      const store = await newStore();
      // PostgreSQL compresses a large index entry: a repetitive ID fits, a random one does not.
      const fits = 'u'.repeat(10_000);
      const tooLarge = randomBytes(7_500).toString('base64');
      const created = randomStoreKey();
      const updated = randomStoreKey();
      expect(await store.create(created, { ...live(), userId: fits })).toBe(true);
      expect(await store.create(updated, live())).toBe(true);
      expect(await store.update(updated, { ...live(), userId: fits }, 1)).toEqual({
        status: 'ok',
        version: 2,
      });
      expect((await store.listByUser(fits)).map((row) => row.key).sort()).toEqual(
        [created, updated].sort(),
      );
      expect(await store.listByUser(fits.slice(1))).toEqual([]);
      expect(await store.deleteByUser(fits)).toBe(2);

      expect(tooLarge).toHaveLength(10_000);
      await rejectsInvalidData(store.create(randomStoreKey(), { ...live(), userId: tooLarge }));
      const anonymous = randomStoreKey();
      expect(await store.create(anonymous, live())).toBe(true);
      await rejectsInvalidData(store.update(anonymous, { ...live(), userId: tooLarge }, 1));
      expect(await store.get(anonymous)).toMatchObject({ userId: null, version: 1 });
      expect(await store.listByUser(tooLarge)).toEqual([]);
      expect(await store.deleteByUser(tooLarge)).toBe(0);
    });
  });

  describe('what the server holds', () => {
    it('keeps only the hash of each session ID, never the ID or its signature', async () => {
      const store = await newStore();
      const manager = new SessionManager({ store, secrets: [secret] });
      const cookies: string[] = [];
      for (let i = 0; i < 3; i++) {
        const session = await manager.load({});
        session.set('k', 'v');
        session.setUser('alice');
        const { setCookie } = await manager.commit(session);
        const value = /^sid=([^;]+)/.exec(setCookie[0] ?? '')?.[1];
        expect(value).toMatch(/^[A-Za-z0-9_-]{43}\./);
        cookies.push(value!);
      }

      const { rows } = await pool.query(`SELECT * FROM ${store.table}`);
      expect(rows).toHaveLength(3);
      const raw = JSON.stringify(rows);
      expect(Object.keys(rows[0] as object).sort()).toEqual([
        'data',
        'expires_at',
        'key',
        'user_id',
        'version',
      ]);
      for (const value of cookies) {
        const id = value.slice(0, 43);
        const signature = value.slice(44);
        expect(raw).not.toContain(id);
        expect(raw).not.toContain(signature);
        expect(raw).toContain(createHash('sha256').update(id).digest('base64url'));
        expect((await manager.load({ cookie: `sid=${value}` })).get('k')).toBe('v');
      }
      expect(rows.every((row: { user_id: string }) => row.user_id === 'alice')).toBe(true);
      await dropTable(store.table);
    });
  });

  describe('outage', () => {
    it('rejects while the server is unreachable and works again once it is back, with the same store', async () => {
      const proxy = new TcpProxy(HOST, PORT);
      await proxy.start();
      const cut = newPool(proxy.port);
      const table = uniqueTable();
      tables.add(`"${table}"`);
      try {
        const store = new PostgresStore({ pool: cut, table, pruneInterval: 0 });
        await store.createTable();
        const manager = new SessionManager({ store, secrets: [secret], storeTimeout: 1_000 });
        const session = await manager.load({});
        session.set('k', 'v');
        session.setUser('bob');
        const { setCookie } = await manager.commit(session);
        const cookie = /^(sid=[^;]+)/.exec(setCookie[0] ?? '')![1]!;
        const [{ key }] = (await pool.query(`SELECT key FROM "${table}"`)).rows as [
          { key: string },
        ];

        await proxy.stop();
        const started = Date.now();
        await expect(store.get(key)).rejects.toThrow();
        await expect(
          store.create(randomStoreKey(), {
            data: 'x',
            expiresAt: Date.now() + minute,
            userId: null,
          }),
        ).rejects.toThrow();
        await expect(
          store.update(key, { data: 'x', expiresAt: Date.now() + minute, userId: null }, 1),
        ).rejects.toThrow();
        await expect(store.touch(key, Date.now() + minute)).rejects.toThrow();
        await expect(store.listByUser('bob')).rejects.toThrow();
        await expect(store.deleteByUser('bob')).rejects.toThrow();
        await expect(store.delete(key)).rejects.toThrow();
        await expect(store.prune()).rejects.toThrow();
        expect(Date.now() - started).toBeLessThan(10_000);
        const loading = Date.now();
        const failure = await Promise.resolve(manager.load({ cookie })).then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(failure).toBeInstanceOf(SessionError);
        expect((failure as SessionError).code).toBe('STORE_UNAVAILABLE');
        expect(Date.now() - loading).toBeLessThan(3_000);

        await proxy.start();
        await eventually(() => store.get(key), 5_000);
        const loaded = await manager.load({ cookie });
        expect(loaded.get('k')).toBe('v');
        loaded.set('k', 'after');
        await manager.commit(loaded);
        expect((await manager.load({ cookie })).get('k')).toBe('after');
        expect(
          await store.create(randomStoreKey(), {
            data: 'new',
            expiresAt: Date.now() + minute,
            userId: null,
          }),
        ).toBe(true);
        await store.close();
      } finally {
        await proxy.stop();
        await cut.end();
        await dropTable(`"${table}"`);
      }
    });

    it('rejects within the pool timeout when the server accepts but never answers', async () => {
      const sockets = new Set<Socket>();
      const silent = createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => undefined);
      });
      await new Promise<void>((resolve) => silent.listen(0, LOOPBACK, resolve));
      const { port } = silent.address() as AddressInfo;
      const hung = new pg.Pool({
        ...connection,
        host: LOOPBACK,
        port,
        connectionTimeoutMillis: 300,
      });
      hung.on('error', () => undefined);
      try {
        const store = new PostgresStore({ pool: hung, table: uniqueTable(), pruneInterval: 0 });
        const started = Date.now();
        await expect(store.get(randomStoreKey())).rejects.toThrow();
        expect(Date.now() - started).toBeLessThan(3_000);
        const manager = new SessionManager({ store, secrets: [secret], storeTimeout: 1_000 });
        const session = await manager.load({});
        session.set('k', 'v');
        await expect(manager.commit(session)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      } finally {
        await hung.end();
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => silent.close(() => resolve()));
      }
    });
  });
});

describe('PostgresStore options', () => {
  const pool = { query: async () => ({ rows: [], rowCount: 0 }) };
  const invalid = (options: Record<string, unknown>) => {
    try {
      new PostgresStore({ pool, pruneInterval: 0, ...options } as never);
    } catch (error) {
      return error instanceof SessionError && error.code === 'INVALID_OPTION';
    }
    return false;
  };

  it('rejects bad options with a typed error', () => {
    expect(invalid({ pool: undefined })).toBe(true);
    expect(invalid({ pool: {} })).toBe(true);
    for (const table of [
      '',
      'a;drop table x',
      '1abc',
      'a.b.c',
      'a b',
      '"quoted"',
      'x'.repeat(49),
      `${'s'.repeat(64)}.t`,
      42,
    ]) {
      expect(invalid({ table }), String(table)).toBe(true);
    }
    expect(invalid({ now: 5 })).toBe(true);
  });

  // Each numeric option against what it must refuse, and the boolean against what is not one.
  const refused: [option: string, value: unknown][] = [
    ...['pruneInterval', 'pruneBatchSize'].flatMap((option) =>
      [Infinity, -Infinity, Number.NaN, -1, '5'].map((value): [string, unknown] => [option, value]),
    ),
    ['pruneInterval', 2 ** 31],
    ['pruneBatchSize', 0],
    ['pruneBatchSize', 1.5],
    ...['yes', 1, null].map((value): [string, unknown] => ['preparedStatements', value]),
  ];
  it.each(refused)('refuses %s: %o, naming the store and the option', (option, value) => {
    let caught: unknown;
    try {
      new PostgresStore({ pool, pruneInterval: 0, [option]: value });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SessionError);
    expect(caught).toMatchObject({
      code: 'INVALID_OPTION',
      message: expect.stringMatching(new RegExp(`^PostgresStore: ${option} `)),
    });
  });

  it('accepts good names and quotes them', () => {
    expect(new PostgresStore({ pool, pruneInterval: 0 }).table).toBe('"tessera_sessions"');
    expect(new PostgresStore({ pool, pruneInterval: 0, table: 'App.Sessions_2' }).table).toBe(
      '"App"."Sessions_2"',
    );
  });

  it('accepts a pg.Pool as its client type', () => {
    const real = new pg.Pool({ ...connection });
    const store = new PostgresStore({ pool: real, pruneInterval: 0 });
    expect(store.table).toBe('"tessera_sessions"');
    const clients: PostgresQueryable[] = [real, new pg.Client({ ...connection })];
    expect(clients).toHaveLength(2);
    return real.end();
  });
});
