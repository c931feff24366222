/**
 * A short run of the stress tool's instances check (stress/instances.ts): three managers, each
 * with its own store client and its own cache of verified cookies, serve one store. A
 * revocation, a logout or the per-user cap applied through one of them takes effect on the next
 * request on every other, and concurrent writers through all of them lose nothing. The full run,
 * with each instance in its own process, is `npx tsx stress/run.ts --instances`.
 */
import { describe, expect, it } from 'vitest';
import { runInstances, type InstancesResult } from '../../stress/instances.js';
import type { StoreKind } from '../../stress/stores.js';
import { memcachedInstalled } from '../support/memcached-server.js';
import { redisBinariesAvailable } from '../support/redis-server.js';
import { SHARED, requireService, requireShared } from '../support/services.js';

const redis = await requireService('redis-server', redisBinariesAvailable);
const postgres = await requireShared(SHARED.postgres);
const mysql = await requireShared(SHARED.mysql);
const memcached = await requireService('memcached binary', async () => memcachedInstalled());

function run(store: StoreKind): Promise<InstancesResult> {
  return runInstances(store, {
    instances: 3,
    processes: false,
    users: 4,
    sessions: 2,
    writers: 6,
    increments: 12,
  });
}

function expectGuaranteesHeld(result: InstancesResult): void {
  expect(result.violations).toEqual([]);
  for (const check of [result.revoke, result.logout, result.cap]) {
    expect(check.checked).toBeGreaterThan(0);
    expect(check.passed).toBe(check.checked);
  }
  expect(result.writers.acknowledged).toBeGreaterThan(0);
  expect(result.writers.lost).toBe(0);
  expect(result.writers.final).toBeGreaterThanOrEqual(result.writers.acknowledged);
}

const STORES = [
  { title: 'one SQLite file', store: 'sqlite', gate: { available: true, label: '' } },
  { title: `the shared PostgreSQL${postgres.label}`, store: 'postgres', gate: postgres },
  { title: `the shared MariaDB${mysql.label}`, store: 'mysql', gate: mysql },
  { title: `one private redis-server${redis.label}`, store: 'redis', gate: redis },
  { title: `one private memcached${memcached.label}`, store: 'memcached', gate: memcached },
] as const;

for (const { title, store, gate } of STORES) {
  describe(`three instances on ${title}`, () => {
    it.skipIf(!gate.available)(
      'end revoked, logged-out and capped sessions everywhere at once, and lose no concurrent write',
      async () => {
        expectGuaranteesHeld(await run(store));
      },
      // A few seconds alone; more while other test files share the two cores.
      60_000,
    );
  });
}
