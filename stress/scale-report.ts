/**
 * The scale run's figures as the Markdown tables of docs/reliability.md, "Scale".
 */
import type { HeapFigures } from './scale-heap.js';
import type { Latency } from './scale-measure.js';
import type { StoreScale } from './scale.js';

const NAMES: Record<string, string> = {
  memory: 'memory',
  sqlite: 'SQLite',
  postgres: 'PostgreSQL',
  mysql: 'MariaDB',
  redis: 'Redis',
  memcached: 'Memcached',
};

const count = (n: number) => n.toLocaleString('en-US');
const pair = (latency: Latency) => `${count(latency.p50)} / ${count(latency.p99)}`;

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Latencies per store and size (p50 / p99, µs), and bytes per session on the server. */
export function formatScale(results: StoreScale[]): string {
  const rows = results.flatMap((result) =>
    result.sizes.map((s) => [
      NAMES[result.kind]!,
      count(s.size),
      String(s.loadSeconds),
      pair(s.get),
      pair(s.update),
      pair(s.listByUser),
      pair(s.revoke),
      s.bytesPerSession === undefined ? '' : count(s.bytesPerSession),
      String(s.load),
    ]),
  );
  return table(
    [
      'store',
      'sessions',
      'load s',
      'get µs',
      'update µs',
      'listByUser µs',
      'revoke µs',
      'bytes/session',
      'load avg',
    ],
    rows,
  );
}

/** The prunes: rate, the event loop's longest hold, and the reads made meanwhile. */
export function formatPrunes(results: StoreScale[]): string {
  const rows = results.flatMap((result) =>
    result.sizes.flatMap((s) => {
      const p = s.prune;
      if (p === undefined) return [];
      return [
        [
          NAMES[result.kind]!,
          count(s.size),
          count(p.removed),
          count(p.ms),
          count(p.perSecond),
          // Only the in-process stores do their work on this process's CPU.
          result.kind === 'memory' || result.kind === 'sqlite' ? count(p.perCpuSecond) : '',
          p.steps === undefined
            ? ''
            : `${count(p.steps.count)}: ${p.steps.ownMs.p50} / ${p.steps.ownMs.p99} / ${p.steps.ownMs.max} (${p.steps.wallMs.max})`,
          String(p.loopMaxMs),
          `${count(p.reads.count)}: ${pair(p.reads)}`,
        ],
      ];
    }),
  );
  return table(
    [
      'store',
      'live',
      'expired removed',
      'ms',
      'rows/s',
      'rows/CPU s',
      'batches: n: own time p50 / p99 / max ms (longest wall)',
      'loop delay max ms',
      'reads meanwhile: n, p50 / p99 µs',
    ],
    rows,
  );
}

/** Every statement's plan, per store, as text blocks. */
export function formatPlans(results: StoreScale[]): string {
  return results
    .filter((result) => result.plans.length > 0)
    .map((result) => {
      const blocks = result.plans.map(
        (plan) =>
          `${plan.indexed ? '' : 'NO INDEX: '}${plan.sql.replace(/\s+/g, ' ').trim()}\n` +
          plan.plan.map((step) => `    ${step}`).join('\n'),
      );
      return `${NAMES[result.kind]!}\n\n${blocks.join('\n\n')}`;
    })
    .join('\n\n');
}

/** The heap samples of the manager run. */
export function formatHeap(heap: HeapFigures): string {
  return table(
    ['sessions made', 'heap MiB', 'RSS MiB'],
    heap.samples.map((s) => [count(s.sessions), String(s.heapMiB), String(s.rssMiB)]),
  );
}
