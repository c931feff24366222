/**
 * A short soak (stress/soak.ts): the stress application on an SQLite file and on a private
 * redis-server, under a mixed workload of reads, writes, sign-ins, sign-outs and revocations for
 * 20 seconds each. Every answer must be a 200, no acknowledged write may be lost, and the heap
 * (after a full collection), the RSS and the open file descriptors at the end must be within
 * stress/soak.ts's FLAT tolerance of their values a third of the way in. The full run is
 * `npm run stress -- --soak` (10 minutes per store).
 */
import { describe, expect, it } from 'vitest';
import { runSoak, type SoakKind } from '../../stress/soak.js';
import { redisBinariesAvailable } from '../support/redis-server.js';
import { requireService } from '../support/services.js';

const sqlite = await requireService('better-sqlite3', async () => {
  await import('better-sqlite3');
  return true;
});
const redis = await requireService('redis-server', redisBinariesAvailable);

const SECONDS = 20;

async function soak(kind: SoakKind): Promise<void> {
  const result = await runSoak(kind, { durationMs: SECONDS * 1_000, samples: 6 });
  expect(result.violations).toEqual([]);
  expect(result.errors).toBe(0);
  expect(result.lostWrites).toBe(0);
  for (const action of ['read', 'write', 'login', 'logout', 'revoke'] as const) {
    expect(result.requests[action], action).toBeGreaterThan(0);
  }
  expect(result.samples).toHaveLength(6);
}

describe('soak', () => {
  it.skipIf(!sqlite.available)(
    `keeps SQLite flat and lossless for ${SECONDS} s${sqlite.label}`,
    () => soak('sqlite'),
  );
  it.skipIf(!redis.available)(`keeps Redis flat and lossless for ${SECONDS} s${redis.label}`, () =>
    soak('redis'),
  );
});
