import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/index.js';
import { openStore, StoreUrlError } from '../src/store-url.js';
import { SECRET, cookiePair } from './support/fixtures.js';
import { SHARED, requireService, requireShared, withQuery } from './support/services.js';
import { MemcachedServer, memcachedInstalled } from './support/memcached-server.js';
import { RedisClusterProcesses, redisBinariesAvailable } from './support/redis-server.js';

const suffix = randomBytes(4).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'tessera-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const postgres = await requireShared(SHARED.postgres);
const mysql = await requireShared(SHARED.mysql);
const redis = await requireShared(SHARED.redis);

const memcached = await requireService('memcached binary', async () => memcachedInstalled());
const cluster = await requireService(
  'redis-server binary for a private cluster',
  redisBinariesAvailable,
);
const memcachedServer = memcached.available ? await MemcachedServer.start() : undefined;
const clusterServers = cluster.available ? await RedisClusterProcesses.start(3) : undefined;
afterAll(async () => {
  await memcachedServer?.stop();
  await clusterServers?.stop();
});

const clusterHosts =
  clusterServers?.rootNodes.map((node) => node.url.replace('redis://', '')).join(',') ?? '';
const cases = [
  {
    url: `memcached://127.0.0.1:${memcachedServer?.port ?? 0}?prefix=demo-${suffix}:&userIndex=best-effort`,
    ...memcached,
  },
  { url: `redis-cluster://${clusterHosts}?prefix=demo-${suffix}:`, ...cluster },
  { url: `sqlite:${join(dir, 'sessions.db')}`, available: true, label: '' },
  { url: withQuery(SHARED.postgres.url, `table=demo_${suffix}`), ...postgres },
  { url: withQuery(SHARED.mysql.url, `table=demo_${suffix}`), ...mysql },
  { url: withQuery(SHARED.redis.url, `prefix=demo-${suffix}:`), ...redis },
];

async function roundTrip(url: string) {
  const opened = await openStore(url);
  try {
    const manager = new SessionManager({ store: opened.store, secrets: [SECRET] });
    const session = await manager.load({});
    await session.login('alice');
    session.set('theme', 'dark');
    const cookie = cookiePair((await manager.commit(session)).setCookie);
    const again = await manager.load({ cookie });
    expect(again.userId).toBe('alice');
    expect(again.get('theme')).toBe('dark');
    expect(await manager.revokeUserSessions('alice')).toBe(1);
  } finally {
    if (url.startsWith('postgres')) {
      const pg = await import('pg');
      const pool = new pg.default.Pool({ connectionString: SHARED.postgres.url });
      await pool.query(`DROP TABLE IF EXISTS demo_${suffix}`);
      await pool.end();
    }
    if (url.startsWith('mysql')) {
      const mysql2 = await import('mysql2/promise');
      const connection = await mysql2.createConnection(SHARED.mysql.url);
      await connection.query(`DROP TABLE IF EXISTS demo_${suffix}`);
      await connection.end();
    }
    await opened.close();
  }
}

describe("the demo's SESSION_STORE URLs", () => {
  for (const { url, available, label } of cases) {
    it.skipIf(!available)(`opens ${url.split(':')[0]} and keeps a session${label}`, () =>
      roundTrip(url),
    );
  }

  it('refuses an unknown scheme and an unreachable server with a clear message', async () => {
    await expect(openStore('ftp://x')).rejects.toThrow(/SESSION_STORE must start with/);
    await expect(openStore('redis://127.0.0.1:1')).rejects.toThrow(
      /Redis at redis:\/\/127.0.0.1:1 (is unreachable|did not answer)/,
    );
    await expect(openStore('sqlite:')).rejects.toThrow(/needs a file path/);
  });

  it('refuses an unsafe table or prefix with StoreUrlError before opening anything', async () => {
    const file = join(dir, 'never-opened', 'sessions.db');
    const refused = openStore(`sqlite:${file}?table=${encodeURIComponent('s; DROP TABLE t')}`);
    await expect(refused).rejects.toThrow(StoreUrlError);
    await expect(refused).rejects.toThrow(/table=/);
    expect(existsSync(file)).toBe(false);
    // Port 1 answers nothing: a prefix refused before connecting says so, not "unreachable".
    await expect(openStore('redis://127.0.0.1:1?prefix=bad%20prefix')).rejects.toThrow(
      /prefix= must be/,
    );
    await expect(openStore('redis://127.0.0.1:1?table=sessions')).rejects.toThrow(
      /takes no table= option/,
    );
  });
});
