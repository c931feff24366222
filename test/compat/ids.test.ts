/**
 * Session IDs that fit where express-session's did, and store errors that come after the
 * response's headers: a store that keeps the ID in a 36-character column (as
 * connect-session-sequelize's table does), on a real PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import express from 'express';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import session, {
  Store,
  type SessionData,
  type SessionOptions,
  type SessionRequest,
} from '../../src/compat/express-session/index.js';
import { SHARED, requireShared } from '../support/services.js';
import { Browser, idOf, listen, sessionCookies, sessionOf, type Running } from './helpers.js';

const secret = 'a test secret that is at least thirty-two bytes long';
const running: Running[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

/** An app counting views, with a route that notes what reached Express's error handler. */
async function start(options: SessionOptions, errors: unknown[] = []): Promise<Browser> {
  const app = express();
  app.use(session({ secret, resave: false, saveUninitialized: false, ...options }));
  app.get('/views', (req, res) => {
    const data = sessionOf(req);
    data.views = ((data.views as number | undefined) ?? 0) + 1;
    res.send(String(data.views));
  });
  app.use(
    (err: unknown, _req: express.Request, res: express.Response, next: express.NextFunction) => {
      errors.push(err);
      if (res.headersSent) next(err);
      else res.status(500).send('error');
    },
  );
  const server = await listen(app);
  running.push(server);
  return new Browser(server.url);
}

describe('default session IDs', () => {
  it("are 32 characters of base64url (24 random bytes), as express-session's uid-safe(24) makes", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const browser = await start({});
      const [cookie] = sessionCookies(await browser.request('/views'));
      const id = idOf(cookie!);
      expect(id).toMatch(/^[A-Za-z0-9_-]{32}$/);
      ids.add(id);
    }
    expect(ids.size).toBe(20);
  });

  it('are what genid answers when it is given', async () => {
    const browser = await start({ genid: () => 'an-id-chosen-by-the-application' });
    await browser.text('/views');
    const [cookie] = sessionCookies(await new Browser(browser.base).request('/views'));
    expect(idOf(cookie!)).toBe('an-id-chosen-by-the-application');
  });
});

const postgres = await requireShared(SHARED.postgres);

/** An express-session store keeping the ID in VARCHAR(36), as connect-session-sequelize's table does. */
class Sid36Store extends Store {
  constructor(
    readonly pool: pg.Pool,
    readonly table: string,
  ) {
    super();
  }

  override get(sid: string, callback: (err: unknown, data?: SessionData | null) => void): void {
    this.pool
      .query(`SELECT sess FROM ${this.table} WHERE sid = $1`, [sid])
      .then((result) => callback(null, (result.rows[0]?.sess as SessionData) ?? null), callback);
  }

  override set(sid: string, data: SessionData, callback?: (err?: unknown) => void): void {
    this.pool
      .query(
        `INSERT INTO ${this.table} (sid, sess) VALUES ($1, $2)
         ON CONFLICT (sid) DO UPDATE SET sess = EXCLUDED.sess`,
        [sid, JSON.stringify(data)],
      )
      .then(() => callback?.(), callback);
  }

  override destroy(sid: string, callback?: (err?: unknown) => void): void {
    this.pool
      .query(`DELETE FROM ${this.table} WHERE sid = $1`, [sid])
      .then(() => callback?.(), callback);
  }
}

describe(`a store with a 36-character ID column (PostgreSQL)${postgres.label}`, () => {
  const table = `tessera_es_sid36_${randomBytes(4).toString('hex')}`;
  let pool: pg.Pool;

  beforeAll(async () => {
    if (!postgres.available) return;
    pool = new pg.Pool(SHARED.postgres.connection);
    await pool.query(`CREATE TABLE ${table} (sid VARCHAR(36) PRIMARY KEY, sess JSON NOT NULL)`);
  });

  afterAll(async () => {
    if (!postgres.available) return;
    await pool.query(`DROP TABLE IF EXISTS ${table}`);
    await pool.end();
  });

  it.skipIf(!postgres.available)(
    `keeps the sessions the default IDs name${postgres.label}`,
    async () => {
      const browser = await start({ store: new Sid36Store(pool, table) });
      expect(await browser.text('/views')).toBe('1');
      expect(await browser.text('/views')).toBe('2');
      expect(await browser.text('/views')).toBe('3');
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${table}`);
      expect(rows[0].n).toBeGreaterThanOrEqual(1);
    },
  );

  it.skipIf(!postgres.available)(
    `tells onLateError, and next, when the end-of-response save fails after the headers went out${postgres.label}`,
    async () => {
      const late: { error: unknown; req: SessionRequest }[] = [];
      const errors: unknown[] = [];
      const browser = await start(
        {
          store: new Sid36Store(pool, table),
          genid: () => 'x'.repeat(40),
          onLateError: (error, req) => late.push({ error, req }),
        },
        errors,
      );
      const response = await browser.request('/views').catch((error: unknown) => error);
      // The status had gone out: the client may see a 200 (or a cut-off response), never a save.
      if (response instanceof Response) expect(response.status).toBe(200);
      await expect.poll(() => late.length).toBe(1);
      expect(String((late[0]!.error as Error).message)).toMatch(/too long/);
      expect(late[0]!.req.url).toBe('/views');
      await expect.poll(() => errors.length).toBe(1);
      expect(errors[0]).toBe(late[0]!.error);
    },
  );

  it.skipIf(!postgres.available)(
    `emits a process warning naming the error, without its message, by default${postgres.label}`,
    async () => {
      const warnings: Error[] = [];
      const listen = (warning: Error) => warnings.push(warning);
      process.on('warning', listen);
      try {
        const browser = await start({
          store: new Sid36Store(pool, table),
          genid: () => 'y'.repeat(40),
        });
        await browser.request('/views').catch(() => undefined);
        await expect
          .poll(() =>
            warnings.filter((w) => (w as { code?: string }).code === 'TESSERA_SESSION_LOST'),
          )
          .toHaveLength(1);
        const [warning] = warnings.filter(
          (w) => (w as { code?: string }).code === 'TESSERA_SESSION_LOST',
        );
        expect(warning!.message).toMatch(/DatabaseError 22001/);
        expect(warning!.message).not.toMatch(/y{40}/);
      } finally {
        process.off('warning', listen);
      }
    },
  );
});
