/**
 * What the scale and soak runs measure with: the synthetic sessions (keys, users, data), latency
 * percentiles, the event loop's longest hold, and the process's heap, RSS and open descriptors.
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { SessionRecord } from '../src/store.js';

/** Each signed-in user holds this many of the loaded sessions, whatever the table's size. */
export const SESSIONS_PER_USER = 4;

/** The store key of loaded session `i` (live) or of expired session `i`: SHA-256, base64url. */
export function scaleKey(i: number, expired = false): string {
  return createHash('sha256')
    .update(`${expired ? 'tessera-scale-expired' : 'tessera-scale'}:${i}`)
    .digest('base64url');
}

/**
 * The user of loaded session `i`: every other session is anonymous, and each user holds
 * {@link SESSIONS_PER_USER} sessions (`i` = 8u, 8u + 2, 8u + 4, 8u + 6).
 */
export function scaleUser(i: number, expired = false): string | null {
  if (i % 2 === 1) return null;
  return `${expired ? 'gone' : 'user'}-${Math.floor(i / (2 * SESSIONS_PER_USER))}`;
}

/** A session's data as the manager would store it: about 180 bytes of JSON. */
export function scaleData(i: number, version = 1): string {
  return JSON.stringify({
    cart: [i % 97, i % 89, i % 83],
    theme: 'dark',
    visits: version,
    csrf: createHash('sha1').update(String(i)).digest('hex'),
    locale: 'en-GB',
    flags: { beta: i % 3 === 0, tour: false },
  });
}

/**
 * The expiry of loaded session `i`, seen from `base`: a day ahead, spread over an hour so the
 * expiry index has as many distinct values as a real table; an expired one ends within the hour
 * before `base`.
 */
export function scaleExpiry(i: number, base: number, expired = false): number {
  const spread = (i * 7_919) % 3_600_000;
  return expired ? base - 1_000 - spread : base + 86_400_000 + spread;
}

/** Loaded session `i` as a record. */
export function scaleRecord(i: number, base: number, expired = false): SessionRecord {
  return {
    data: scaleData(i),
    expiresAt: scaleExpiry(i, base, expired),
    userId: scaleUser(i, expired),
  };
}

/** Latency percentiles, in microseconds. */
export interface Latency {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** Percentiles of `samples` (milliseconds), in microseconds. */
export function latencyOf(samples: number[]): Latency {
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) =>
    sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return {
    count: sorted.length,
    p50: Math.round(at(0.5) * 1000),
    p99: Math.round(at(0.99) * 1000),
    max: Math.round((sorted[sorted.length - 1] ?? 0) * 1000),
  };
}

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs `op(n)` for n = 0 … count − 1, one at a time, and answers each call's latency. A call is
 * timed from the moment it was due, before a turn of the event loop, so that anything holding
 * the loop (a synchronous prune batch) counts against it as it would against a request.
 */
export async function timed(
  count: number,
  op: (n: number) => unknown,
  until?: () => boolean,
): Promise<number[]> {
  const samples: number[] = [];
  for (let n = 0; n < count && (until === undefined || !until()); n++) {
    const due = performance.now();
    await yieldTurn();
    await op(n);
    samples.push(performance.now() - due);
  }
  return samples;
}

/** Runs `op(n)` for n = 0 … count − 1 with at most `width` calls in flight. */
export async function inParallel(
  count: number,
  width: number,
  op: (n: number) => Promise<unknown> | unknown,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, count) }, worker));
}

/** Watches how long the event loop is held, from `start()` to `stop()`, in milliseconds. */
export function loopWatch(): { stop(): { max: number; p99: number } } {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  return {
    stop() {
      histogram.disable();
      return {
        max: Math.round(histogram.max / 1e5) / 10,
        p99: Math.round(histogram.percentile(99) / 1e5) / 10,
      };
    },
  };
}

let collect: (() => void) | undefined;

/** A full garbage collection (V8's `gc`, exposed at run time). */
export function fullGc(): void {
  if (collect === undefined) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  collect();
}

/** The process's footprint after a full collection. */
export interface Footprint {
  heapMiB: number;
  rssMiB: number;
  fds: number;
}

const mib = (bytes: number) => Math.round((bytes / 1_048_576) * 10) / 10;

/** Heap used and RSS after a full GC, and open file descriptors (`/proc/self/fd`). */
export function footprint(): Footprint {
  fullGc();
  const { heapUsed, rss } = process.memoryUsage();
  let fds = -1;
  try {
    fds = readdirSync('/proc/self/fd').length;
  } catch {
    // Not Linux: reported as -1.
  }
  return { heapMiB: mib(heapUsed), rssMiB: mib(rss), fds };
}
