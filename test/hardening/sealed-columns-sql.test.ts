/**
 * Holes 2 and 7 against real databases: a raw SQL `UPDATE` of an encrypted session's `user_id`
 * or `expires_at` is caught by the manager, and a user ID PostgreSQL cannot store is refused by
 * the manager with a typed error before it reaches the server.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type BetterSqlite3 from 'better-sqlite3';
import { SessionManager, type SessionStore } from '../../src/index.js';
import { PostgresStore } from '../../src/stores/postgres.js';
import { SqliteStore } from '../../src/stores/sqlite.js';
import { SHARED, probeTcp, requireService, requireShared } from '../support/services.js';
import { FakeClock, SECRET, cookiePair, rawIdOf, sha256 } from '../support/fixtures.js';

const HOUR = 3_600_000;
const connection = SHARED.postgres.connection;
const encryption = { keys: [{ id: 'k1', key: new Uint8Array(32).fill(5) }] };
const table = () => `tessera_hardening_${randomBytes(6).toString('hex')}`;

const postgres = await requireShared(SHARED.postgres, async () => {
  if (!(await probeTcp(connection.host, connection.port))) return 'nothing listens there';
  const probe = new pg.Client({ ...connection, connectionTimeoutMillis: 2_000 });
  try {
    await probe.connect();
    await probe.query('SELECT 1');
    return true;
  } finally {
    await probe.end().catch(() => undefined);
  }
});

let Database: typeof BetterSqlite3 | undefined;
const sqlite = await requireService('better-sqlite3', async () => {
  const loaded = (await import('better-sqlite3')).default;
  new loaded(':memory:').close();
  Database = loaded;
  return true;
});

/** One database under test: a store on it and a way to run raw SQL on the session table. */
interface Backend {
  store: SessionStore;
  /** Runs `UPDATE <table> SET <assignment> WHERE key = <key>`. */
  update(assignment: string, key: string): Promise<void>;
}

/** The checks both databases run, given a fresh backend on an injected clock. */
function defineSealedColumnChecks(open: (clock: FakeClock) => Promise<Backend>) {
  async function start() {
    const clock = new FakeClock();
    const backend = await open(clock);
    const manager = new SessionManager({
      store: backend.store,
      secrets: [SECRET],
      encryption,
      now: clock.now,
    });
    const rejected: string[] = [];
    manager.on('rejected', ({ reason }) => rejected.push(reason));
    const signIn = async (user: string) => {
      const session = await manager.load({});
      await session.login(user);
      session.set('secret', `${user}'s`);
      const cookie = cookiePair((await manager.commit(session)).setCookie);
      return { cookie, key: sha256(rawIdOf(cookie)) };
    };
    return { clock, backend, manager, rejected, signIn };
  }

  it("rejects a session whose user_id was set to another user's, and never lists it as theirs", async () => {
    const { backend, manager, rejected, signIn } = await start();
    const mallory = await signIn('mallory');
    expect((await manager.load({ cookie: mallory.cookie })).userId).toBe('mallory');
    await backend.update(`user_id = 'alice'`, mallory.key);

    const session = await manager.load({ cookie: mallory.cookie });
    expect(session.isNew).toBe(true);
    expect(session.userId).toBeNull();
    expect(session.get('secret')).toBeUndefined();
    expect(rejected).toEqual(['tampered']);
    expect(await manager.listUserSessions('alice')).toEqual([]);
    expect(await manager.revokeUserSession('alice', mallory.key)).toBe(false);
  });

  it('rejects a session whose expires_at was moved 10 hours ahead', async () => {
    const { backend, manager, rejected, signIn, clock } = await start();
    const alice = await signIn('alice');
    await backend.update(`expires_at = expires_at + ${10 * HOUR}`, alice.key);
    clock.advance(HOUR);
    const session = await manager.load({ cookie: alice.cookie });
    expect(session.isNew).toBe(true);
    expect(session.get('secret')).toBeUndefined();
    expect(rejected).toEqual(['tampered']);
    expect(await manager.listUserSessions('alice')).toEqual([]);
  });

  it('keeps an untouched session working through a re-sealing touch', async () => {
    const { manager, signIn, clock } = await start();
    const alice = await signIn('alice');
    for (let i = 0; i < 4; i++) {
      clock.advance(20 * 60_000);
      const session = await manager.load({ cookie: alice.cookie });
      expect(session.get('secret')).toBe("alice's");
      await manager.commit(session);
    }
    expect(await manager.listUserSessions('alice')).toHaveLength(1);
  });
}

describe.skipIf(!postgres.available)(
  `sealed user and expiry against PostgreSQL${postgres.label}`,
  () => {
    let pool: pg.Pool;
    const tables: string[] = [];
    beforeAll(() => {
      pool = new pg.Pool({ ...connection, max: 4, query_timeout: 5_000 });
      pool.on('error', () => undefined);
    });
    afterAll(async () => {
      for (const name of tables) await pool.query(`DROP TABLE IF EXISTS "${name}"`);
      await pool.end();
    });
    const open = async (clock: FakeClock): Promise<Backend> => {
      const name = table();
      tables.push(name);
      const store = new PostgresStore({ pool, table: name, now: clock.now, pruneInterval: 0 });
      await store.createTable();
      return {
        store,
        update: async (assignment, key) => {
          const result = await pool.query(`UPDATE "${name}" SET ${assignment} WHERE key = $1`, [
            key,
          ]);
          expect(result.rowCount).toBe(1);
        },
      };
    };

    defineSealedColumnChecks(open);

    it('refuses a user ID with a NUL byte with INVALID_USER_ID, not STORE_UNAVAILABLE', async () => {
      const clock = new FakeClock();
      const { store } = await open(clock);
      const manager = new SessionManager({ store, secrets: [SECRET], now: clock.now });
      const session = await manager.load({});
      session.set('k', 'v');
      expect(() => session.setUser('alice\u0000admin')).toThrow(
        expect.objectContaining({ code: 'INVALID_USER_ID' }),
      );
      await expect(session.login('\u0000')).rejects.toMatchObject({ code: 'INVALID_USER_ID' });
      for (const call of [
        () => manager.listUserSessions('a\u0000b'),
        () => manager.revokeUserSessions('a\u0000b'),
        () => manager.revokeUserSession('a\u0000b', sha256('x')),
      ]) {
        await expect(call()).rejects.toMatchObject({ code: 'INVALID_USER_ID' });
      }
      // The session is unharmed and saves normally.
      const { setCookie } = await manager.commit(session);
      expect((await manager.load({ cookie: cookiePair(setCookie) })).get('k')).toBe('v');
    });
  },
);

describe.skipIf(!sqlite.available)(`sealed user and expiry against SQLite${sqlite.label}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-hardening-'));
  let db: BetterSqlite3.Database;
  beforeAll(() => {
    db = new Database!(join(dir, 'sessions.db'));
  });
  afterAll(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  defineSealedColumnChecks(async (clock) => {
    const name = table();
    const store = new SqliteStore({ db, table: name, now: clock.now, pruneInterval: 0 });
    return {
      store,
      update: async (assignment, key) => {
        const result = db.prepare(`UPDATE "${name}" SET ${assignment} WHERE key = ?`).run(key);
        expect(result.changes).toBe(1);
      },
    };
  });
});
