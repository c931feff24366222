/**
 * `tessera-session doctor`: checks that the store can serve sessions, one finding a line.
 *
 * @packageDocumentation
 */
import type { RedisNode, StoreConnection } from '../store-url.js';
import { memcachedStats } from '../store-url.js';
import type { Command } from './commands.js';
import { withConnection } from './context.js';
import type { ClockReading, SqlConnection } from './inspect.js';
import { COLUMNS, SqlInspector, isSql, parseInfo, readClock } from './inspect.js';
import { plural } from './output.js';

/** How a check came out: `warn` is worth knowing, `fail` makes doctor exit 1. */
export type Status = 'ok' | 'warn' | 'fail';

/** One finding. */
export interface Finding {
  /** What was checked: `reachable`, `table`, `clock`... (with the server, when there are several). */
  check: string;
  status: Status;
  /** Why, in one line. */
  message: string;
}

/** A clock within this of ours is fine, in milliseconds. */
const CLOCK_TOLERANCE_MS = 1_000;
/**
 * Beyond this a server's clock is wrong enough to matter, in milliseconds: sessions on Redis or
 * Memcached end this much early (or late), and it is the most the Redis store's user index
 * allows between cluster nodes.
 */
const CLOCK_LIMIT_MS = 60_000;

/**
 * The server's clock against this machine's. `decides` says whether the store expires records
 * by the server's clock (Redis, Memcached) or by the application's (the SQL stores), where a
 * difference only shows that the machines' clocks are not synchronised.
 */
function clockFinding(
  check: string,
  reading: ClockReading,
  decides: boolean,
  resolution = 0,
): Finding {
  const off = Math.abs(reading.offset);
  const seconds = (off / 1000).toFixed(off < 10_000 ? 3 : 0);
  const direction = reading.offset >= 0 ? 'ahead of' : 'behind';
  const text = `the server's clock is ${seconds} s ${direction} this machine's`;
  if (off - reading.uncertainty <= CLOCK_TOLERANCE_MS + resolution) {
    return { check, status: 'ok', message: text };
  }
  const effect = decides
    ? 'sessions expire by the server clock, so they end early or late by that much'
    : "the SQL stores compare expiry with the application's clock, but application servers whose clocks differ disagree on when a session ends";
  return {
    check,
    status: decides && off > CLOCK_LIMIT_MS ? 'fail' : 'warn',
    message: `${text}: ${effect}; synchronise the clocks (NTP)`,
  };
}

async function sqlFindings(connection: SqlConnection): Promise<Finding[]> {
  const inspector = new SqlInspector(connection);
  const findings: Finding[] = [
    { check: 'reachable', status: 'ok', message: `${await inspector.version()} answered` },
  ];
  const shape = await inspector.shape();
  if (shape === null) {
    findings.push({
      check: 'table',
      status: 'fail',
      message: `there is no table ${inspector.table}: run tessera-session migrate`,
    });
  } else {
    const missing = COLUMNS.filter((column) => !shape.columns.has(column));
    findings.push(
      missing.length === 0
        ? {
            check: 'table',
            status: 'ok',
            message: `${inspector.table} has the columns ${COLUMNS.join(', ')}`,
          }
        : {
            check: 'table',
            status: 'fail',
            message: `${inspector.table} lacks the column(s) ${missing.join(', ')}: it is not a Tessera session table`,
          },
    );
    const indexes = [
      ['expires_at', 'expiry index', 'reads of live sessions, pruning and counts'],
      ['user_id', 'user index', "listing and revoking a user's sessions"],
    ] as const;
    for (const [column, check, serves] of indexes) {
      findings.push(
        shape.indexed.has(column)
          ? { check, status: 'ok', message: `an index on ${column} serves ${serves}` }
          : {
              check,
              status: 'fail',
              message: `no index on ${column}: ${serves} scan the whole table; run tessera-session migrate (or see tessera-session schema)`,
            },
      );
    }
  }
  if (connection.kind !== 'sqlite') {
    const reading = await readClock(async () => (await inspector.clock()) ?? Date.now());
    findings.push(clockFinding('clock', reading, false));
  }
  return findings;
}

/** What `maxmemory-policy` means for sessions. */
function policyFinding(check: string, policy: string, maxmemory: string): Finding {
  const limit = maxmemory === '0' ? 'no maxmemory limit is set yet' : `maxmemory is ${maxmemory}`;
  if (policy === 'noeviction') {
    return {
      check,
      status: 'ok',
      message: `maxmemory-policy noeviction: a full Redis refuses writes (the application answers 503) rather than dropping sessions; ${limit}`,
    };
  }
  if (policy === 'volatile-ttl') {
    return {
      check,
      status: 'warn',
      message: `maxmemory-policy volatile-ttl: every Tessera key has an expiry, so a full Redis evicts the sessions nearest their end first, signing those users out early; ${limit}; noeviction is safest`,
    };
  }
  const evicts = policy.startsWith('allkeys-')
    ? 'evicts any key when memory runs short'
    : policy.startsWith('volatile-')
      ? 'evicts keys that have an expiry when memory runs short, and every Tessera key has one'
      : undefined;
  if (evicts !== undefined) {
    return {
      check,
      status: 'fail',
      message: `maxmemory-policy ${policy} ${evicts}: sessions and user indexes go, users are silently signed out, and revoking misses sessions whose index went; ${limit}; set maxmemory-policy noeviction`,
    };
  }
  return {
    check,
    status: 'warn',
    message: `maxmemory-policy ${policy} is not one this check knows; ${limit}`,
  };
}

async function redisFindings(nodes: RedisNode[]): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const node of nodes) {
    const where = nodes.length > 1 ? ` ${node.address}` : '';
    const server = parseInfo(await node.command(['INFO', 'server']));
    const memory = parseInfo(await node.command(['INFO', 'memory']));
    findings.push({
      check: `reachable${where}`,
      status: 'ok',
      message: `Redis ${server.get('redis_version') ?? '(unknown version)'} answered`,
    });
    findings.push(
      policyFinding(
        `eviction${where}`,
        memory.get('maxmemory_policy') ?? 'unknown',
        memory.get('maxmemory_human') === '0B' ? '0' : (memory.get('maxmemory_human') ?? '0'),
      ),
    );
    const reading = await readClock(async () => {
      const [seconds, micros] = (await node.command(['TIME'])) as [string, string];
      return Number(seconds) * 1000 + Number(micros) / 1000;
    });
    findings.push(clockFinding(`clock${where}`, reading, true));
  }
  return findings;
}

const MB = 1024 * 1024;

async function memcachedFindings(
  connection: Extract<StoreConnection, { kind: 'memcached' }>,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const before = Date.now();
  const servers = await memcachedStats(connection.client);
  const after = Date.now();
  for (const [server, stats] of servers) {
    const where = servers.size > 1 ? ` ${server}` : '';
    findings.push({
      check: `reachable${where}`,
      status: 'ok',
      message: `memcached ${stats.version ?? '(unknown version)'} answered`,
    });
    const limit = Number(stats.limit_maxbytes ?? 0);
    const used = Number(stats.bytes ?? 0);
    const evictions = Number(stats.evictions ?? 0);
    const usage = `uses ${(used / MB).toFixed(1)} MB of its ${(limit / MB).toFixed(0)} MB`;
    findings.push(
      evictions > 0
        ? {
            check: `memory${where}`,
            status: 'fail',
            message: `${plural(evictions, 'item')} evicted since it started: sessions among them signed users out; it ${usage}; give it more memory (-m) or keep sessions in Redis or SQL`,
          }
        : used >= 0.9 * limit
          ? {
              check: `memory${where}`,
              status: 'warn',
              message: `it ${usage}: once full it evicts items, sessions included; give it more memory (-m)`,
            }
          : {
              check: `memory${where}`,
              status: 'ok',
              message: `it ${usage}; nothing evicted since it started`,
            },
    );
    // `time` is whole seconds: the reading is only good to a second.
    const reading = {
      offset: Number(stats.time) * 1000 - (before + after) / 2,
      uncertainty: (after - before) / 2,
    };
    findings.push(clockFinding(`clock${where}`, reading, true, 1_000));
  }
  return findings;
}

/** The findings for an open connection. */
async function findingsFor(connection: StoreConnection): Promise<Finding[]> {
  if (isSql(connection)) return sqlFindings(connection);
  switch (connection.kind) {
    case 'redis':
    case 'redis-cluster':
      return redisFindings(await connection.nodes());
    case 'memcached':
      return memcachedFindings(connection);
    default:
      return [];
  }
}

/** The `doctor` command: its options, its help, and its checks. */
export const doctor: Command = {
  name: 'doctor',
  summary: 'check the store: reachable, schema and indexes, clock, eviction settings',
  usage: '[--store URL] [--json]',
  help: `Checks, one finding a line, that the store can keep sessions:
  - it answers (an unreachable store is one line and exit code 2);
  - SQL: the table has Tessera's columns, and the indexes on expires_at and user_id exist;
  - the server's clock against this machine's (PostgreSQL and MySQL: SELECT of the time;
    Redis: TIME; Memcached: stats time). Redis and Memcached expire sessions by their own clock;
  - Redis: maxmemory-policy. Every Tessera key has an expiry, so allkeys-* and volatile-*
    policies evict sessions (users signed out) when memory runs short; noeviction is right;
  - Memcached: its memory limit and whether it has evicted anything.
Exits 0 when nothing failed (warnings included), 1 when a check failed, 2 when unreachable.`,
  options: {},
  async run(context) {
    const { out } = context;
    return withConnection(context, { createFile: false }, async (connection) => {
      const findings = await findingsFor(connection);
      const failed = findings.filter((finding) => finding.status === 'fail').length;
      out.line(`Checking ${connection.description}`);
      for (const { check, status, message } of findings) {
        out.line(`${status.padEnd(4)}  ${check}: ${message}`);
      }
      out.line(failed === 0 ? 'No problem found.' : `${plural(failed, 'problem')} found.`);
      out.document({
        store: connection.description,
        kind: connection.kind,
        ok: failed === 0,
        findings,
      });
      return failed === 0 ? 0 : 1;
    });
  },
};
