/**
 * Plain-text tables of the stress tool's results, one row per scenario, and the violations
 * under them.
 */
import type { ClusterResult } from './cluster.js';
import type { ScenarioResult } from './faults.js';
import type { InstancesResult } from './instances.js';

function ms(value: number | null): string {
  return value === null ? '-' : `${Math.round(value)}`;
}

function row(cells: string[], widths: number[]): string {
  return cells
    .map((cell, i) => cell.padEnd(widths[i]!))
    .join('  ')
    .trimEnd();
}

const FAULT_HEADER = [
  'store',
  'fault',
  'requests',
  '503s',
  'errors from..to (ms)',
  'back at (ms)',
  'last failed start',
  'slowest after 1s',
  'lost writes',
  'signed out',
  'lost: failed login',
  'round trips/read',
  'held',
];
const FAULT_WIDTHS = [9, 9, 8, 5, 20, 12, 17, 16, 11, 10, 18, 16, 4];

/**
 * The fault results as a table. Times are relative to the fault's start, except the last failed
 * start (relative to the moment the store came back: negative means every failure began before).
 */
export function formatFaults(results: ScenarioResult[], header = true): string {
  const lines: string[] = [];
  if (header) lines.push(row(FAULT_HEADER, FAULT_WIDTHS));
  for (const r of results) {
    const window =
      r.errorWindow === null ? '-' : `${ms(r.errorWindow.first)}..${ms(r.errorWindow.last)}`;
    const trips =
      r.roundTripsPerRead === null ? '-' : r.roundTripsPerRead.map((n) => n.toFixed(2)).join(' / ');
    lines.push(
      row(
        [
          r.store,
          r.fault,
          String(r.requests),
          String(r.unavailable),
          window,
          ms(r.restoredAt),
          ms(r.lastFailedStartAfterRestore),
          ms(r.slowestAfterGrace),
          r.durable ? String(r.lostWrites) : `n/a (${r.expectedLosses} gone)`,
          r.durable ? String(r.signedOut) : 'n/a',
          String(r.lostAfterFailedLogin),
          trips,
          r.violations.length === 0 ? 'yes' : 'NO',
        ],
        FAULT_WIDTHS,
      ),
    );
    for (const v of r.violations)
      lines.push(`    violated "${v.rule}" ${v.count}x, e.g. ${v.example}`);
  }
  return lines.join('\n');
}

const INSTANCE_HEADER = [
  'store',
  'instances',
  'revoke',
  'logout',
  'cap',
  'writers x incs',
  'acked',
  'final',
  'lost',
  'held',
];
const INSTANCE_WIDTHS = [9, 9, 10, 10, 10, 14, 6, 6, 4, 4];

/** The instance results as a table. */
export function formatInstances(results: InstancesResult[], header = true): string {
  const lines: string[] = [];
  if (header) lines.push(row(INSTANCE_HEADER, INSTANCE_WIDTHS));
  for (const r of results) {
    const check = (c: { passed: number; checked: number }) => `${c.passed}/${c.checked}`;
    lines.push(
      row(
        [
          r.store,
          `${r.instances} ${r.processes ? 'proc' : 'mgr'}`,
          check(r.revoke),
          check(r.logout),
          check(r.cap),
          `${r.writers.writers}x${r.writers.increments}`,
          String(r.writers.acknowledged),
          String(r.writers.final),
          String(r.writers.lost),
          r.violations.length === 0 ? 'yes' : 'NO',
        ],
        INSTANCE_WIDTHS,
      ),
    );
    for (const v of r.violations)
      lines.push(`    violated "${v.rule}" ${v.count}x, e.g. ${v.example}`);
  }
  return lines.join('\n');
}

const CLUSTER_HEADER = [
  'phase',
  'requests',
  '503s',
  'errors from..to (ms)',
  'takeover at',
  'last failed start',
  'move (ms)',
  'slots/keys',
  'MOVED/ASK/TRYAGAIN/CLUSTERDOWN',
  'lost incs',
  'sessions hit',
  'lost: failed login',
  'held',
];
const CLUSTER_WIDTHS = [14, 8, 5, 20, 11, 17, 9, 10, 30, 9, 12, 18, 4];

/**
 * The Redis Cluster results as a table. Times are relative to the kill or to the start of the
 * move, except the last failed start (relative to the takeover).
 */
export function formatCluster(results: ClusterResult[], header = true): string {
  const lines: string[] = [];
  if (header) lines.push(row(CLUSTER_HEADER, CLUSTER_WIDTHS));
  for (const r of results) {
    const window =
      r.errorWindow === null ? '-' : `${ms(r.errorWindow.first)}..${ms(r.errorWindow.last)}`;
    const replies = ['MOVED', 'ASK', 'TRYAGAIN', 'CLUSTERDOWN']
      .map((kind) => String(r.redirections[kind] ?? 0))
      .join('/');
    lines.push(
      row(
        [
          r.phase,
          String(r.requests),
          String(r.unavailable),
          window,
          ms(r.takeoverAt),
          ms(r.lastFailedStartAfterTakeover),
          ms(r.moveMs),
          r.phase === 'failover' ? '-' : `${r.slotsMoved}/${r.keysMoved}`,
          replies,
          String(r.lostIncrements),
          String(r.sessionsHit),
          String(r.lostAfterFailedLogin),
          r.violations.length === 0 ? 'yes' : 'NO',
        ],
        CLUSTER_WIDTHS,
      ),
    );
    const causes = Object.entries(r.storeErrors).map(([cause, n]) => `${n}x "${cause}"`);
    if (causes.length > 0) lines.push(`    store errors: ${causes.join(', ')}`);
    for (const v of r.violations)
      lines.push(`    violated "${v.rule}" ${v.count}x, e.g. ${v.example}`);
  }
  return lines.join('\n');
}
