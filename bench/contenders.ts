/**
 * The contenders: the bare frameworks (ceilings), Tessera on each framework and store, and the
 * established session libraries it is compared with. All of them serve identical handlers
 * (see `servers/apps.ts`).
 *
 * @packageDocumentation
 */

/** The HTTP frameworks. */
export type Framework = 'express' | 'fastify' | 'node';

/** Where sessions are kept; `none` for the bare frameworks. */
export type StoreKind = 'none' | 'memory' | 'sqlite' | 'postgres' | 'mysql' | 'redis' | 'memcached';

/** Which session library a contender runs. */
export type Library =
  'bare' | 'bare-work' | 'bare-layer' | 'floor' | 'tessera' | 'express-session' | 'fastify-session';

/**
 * The fixed work, in microseconds of CPU on an idle machine, that a calibration contender's
 * handlers do on every request (see `servers/work.ts`).
 */
export const CALIBRATION_WORK_MICROS = 10;

/** One server configuration that is measured. */
export interface Contender {
  /** A stable id, used by `--filter` and in the report. */
  id: string;
  /** The row title. */
  label: string;
  /**
   * `ceiling`: a bare framework; `calibration`: the bare framework doing a known amount of work
   * per request, which shows what that much work costs in the same run, or (Express only) running
   * an empty middleware, which shows what mounting any middleware costs.
   */
  kind: 'ceiling' | 'calibration' | 'tessera' | 'peer';
  library: Library;
  framework: Framework;
  store: StoreKind;
  /** For peers: the package (and store package) measured. */
  packages: readonly string[];
  /** The id of the peer a Tessera contender is compared with, if any. */
  peer?: string;
  /** Tessera on Redis: whether the store reads through node-redis's client-side cache. */
  clientSideCache?: boolean;
}

/** The Tessera stores, in the order they are reported. */
export const TESSERA_STORES: readonly Exclude<StoreKind, 'none'>[] = [
  'memory',
  'sqlite',
  'postgres',
  'mysql',
  'redis',
  'memcached',
];

const FRAMEWORK_LABEL: Record<Framework, string> = {
  express: 'Express',
  fastify: 'Fastify',
  node: 'node:http',
};
const STORE_LABEL: Record<StoreKind, string> = {
  none: '',
  memory: 'memory',
  sqlite: 'SQLite',
  postgres: 'PostgreSQL',
  mysql: 'MySQL',
  redis: 'Redis',
  memcached: 'Memcached',
};

/** The peer a Tessera contender on this framework and store is held against. */
const PEER_OF: Partial<Record<`${Framework}-${StoreKind}`, string>> = {
  'express-memory': 'express-session-memory',
  'express-redis': 'connect-redis',
  'express-postgres': 'connect-pg-simple',
  'express-mysql': 'express-mysql-session',
  'express-sqlite': 'better-sqlite3-session-store',
  'fastify-memory': 'fastify-session-memory',
};

function tessera(framework: Framework, store: Exclude<StoreKind, 'none'>): Contender {
  const peer = PEER_OF[`${framework}-${store}`];
  return {
    id: `tessera-${framework}-${store}`,
    label: `Tessera / ${FRAMEWORK_LABEL[framework]} / ${STORE_LABEL[store]}`,
    kind: 'tessera',
    library: 'tessera',
    framework,
    store,
    packages: [],
    ...(peer === undefined ? {} : { peer }),
  };
}

/** Tessera on Redis with the store's `clientSideCache` option (RESP3 client tracking) on. */
function tesseraCached(framework: 'express' | 'fastify'): Contender {
  return {
    id: `tessera-${framework}-redis-cached`,
    label: `Tessera / ${FRAMEWORK_LABEL[framework]} / Redis, client-side cache`,
    kind: 'tessera',
    library: 'tessera',
    framework,
    store: 'redis',
    packages: [],
    clientSideCache: true,
  };
}

const PEERS: readonly Contender[] = [
  {
    id: 'express-session-memory',
    label: 'express-session / MemoryStore',
    kind: 'peer',
    library: 'express-session',
    framework: 'express',
    store: 'memory',
    packages: ['express-session'],
  },
  {
    id: 'fastify-session-memory',
    label: '@fastify/session / default store',
    kind: 'peer',
    library: 'fastify-session',
    framework: 'fastify',
    store: 'memory',
    packages: ['@fastify/session', '@fastify/cookie'],
  },
  {
    id: 'better-sqlite3-session-store',
    label: 'express-session / better-sqlite3-session-store',
    kind: 'peer',
    library: 'express-session',
    framework: 'express',
    store: 'sqlite',
    packages: ['express-session', 'better-sqlite3-session-store', 'better-sqlite3'],
  },
  {
    id: 'connect-pg-simple',
    label: 'express-session / connect-pg-simple',
    kind: 'peer',
    library: 'express-session',
    framework: 'express',
    store: 'postgres',
    packages: ['express-session', 'connect-pg-simple', 'pg'],
  },
  {
    id: 'express-mysql-session',
    label: 'express-session / express-mysql-session',
    kind: 'peer',
    library: 'express-session',
    framework: 'express',
    store: 'mysql',
    packages: ['express-session', 'express-mysql-session', 'mysql2'],
  },
  {
    id: 'connect-redis',
    label: 'express-session / connect-redis',
    kind: 'peer',
    library: 'express-session',
    framework: 'express',
    store: 'redis',
    packages: ['express-session', 'connect-redis', 'redis'],
  },
];

function ceiling(framework: Framework): Contender {
  return {
    id: `bare-${framework}`,
    label: `bare ${FRAMEWORK_LABEL[framework]}`,
    kind: 'ceiling',
    library: 'bare',
    framework,
    store: 'none',
    packages: [],
  };
}

function calibration(framework: Framework): Contender {
  return {
    id: `work-${framework}`,
    label: `bare ${FRAMEWORK_LABEL[framework]} + ${CALIBRATION_WORK_MICROS} µs of work`,
    kind: 'calibration',
    library: 'bare-work',
    framework,
    store: 'none',
    packages: [],
  };
}

/**
 * Bare Express with one middleware that only calls `next()`. Express gives each request and
 * response a hidden class of its own (see `src/adapters/express.ts`), so each middleware layer
 * costs the router several slow property accesses; this row shows that cost, which every
 * Express session middleware pays before doing anything.
 */
const EMPTY_MIDDLEWARE: Contender = {
  id: 'layer-express',
  label: 'bare Express + an empty middleware',
  kind: 'calibration',
  library: 'bare-layer',
  framework: 'express',
  store: 'none',
  packages: [],
};

/**
 * The framework with the session work written inline in its handlers, no session library (see
 * `servers/floor.ts`): what a session costs on that framework before any library's own layer.
 */
function floor(framework: Framework): Contender {
  return {
    id: `floor-${framework}`,
    label: `${FRAMEWORK_LABEL[framework]} + inline session work (the floor)`,
    kind: 'calibration',
    library: 'floor',
    framework,
    store: 'memory',
    packages: [],
  };
}

/** Every contender the harness knows, in report order: ceilings, calibrations, then by store. */
export const CONTENDERS: readonly Contender[] = [
  ceiling('express'),
  ceiling('fastify'),
  ceiling('node'),
  calibration('express'),
  calibration('fastify'),
  calibration('node'),
  EMPTY_MIDDLEWARE,
  floor('express'),
  floor('fastify'),
  floor('node'),
  ...TESSERA_STORES.flatMap((store) => [
    tessera('express', store),
    tessera('fastify', store),
    tessera('node', store),
    ...(store === 'redis' ? [tesseraCached('express'), tesseraCached('fastify')] : []),
    ...PEERS.filter((peer) => peer.store === store),
  ]),
];

/**
 * The contenders that the targets compare, in the order their runs go within a round: each
 * comparison's two sides next to each other, so that the machine's speed, which drifts over
 * seconds, moves both alike. The other contenders follow in report order.
 */
const RUN_ORDER: readonly string[] = [
  'bare-express',
  'tessera-express-memory',
  'tessera-express-redis',
  'tessera-express-redis-cached',
  'work-express',
  'layer-express',
  'floor-express',
  'express-session-memory',
  'bare-fastify',
  'tessera-fastify-memory',
  'tessera-fastify-redis-cached',
  'fastify-session-memory',
  'floor-fastify',
  'work-fastify',
  'bare-node',
  'tessera-node-memory',
  'floor-node',
  'work-node',
  'tessera-express-postgres',
  'connect-pg-simple',
  'tessera-express-sqlite',
  'better-sqlite3-session-store',
];

/** Orders contenders for the runs of a round (see {@link RUN_ORDER}); a stable sort keeps the rest in report order. */
export function byRunOrder(a: Contender, b: Contender): number {
  const rank = (contender: Contender) => {
    const at = RUN_ORDER.indexOf(contender.id);
    return at === -1 ? RUN_ORDER.length : at;
  };
  return rank(a) - rank(b);
}

/** The contender with this id. */
export function contenderById(id: string): Contender {
  const found = CONTENDERS.find((contender) => contender.id === id);
  if (found === undefined)
    throw new Error(`unknown contender "${id}"; known: ${CONTENDERS.map((c) => c.id).join(', ')}`);
  return found;
}

/** Whether a contender keeps sessions (every one but the bare and calibration rows). */
export function hasSessions(contender: Contender): boolean {
  return contender.store !== 'none';
}

/** The id of the bare framework a contender is compared with. */
export function bareOf(contender: Contender): string {
  return `bare-${contender.framework}`;
}

/**
 * Whether a contender id matches a filter: a comma-separated list of patterns, each an exact id
 * or a `*` glob (`tessera-*-memory`); a leading `!` excludes.
 */
export function matchesFilter(id: string, filter: string | undefined): boolean {
  if (filter === undefined || filter.trim() === '') return true;
  const patterns = filter
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
  const toRegExp = (glob: string) =>
    new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  const includes = patterns.filter((p) => !p.startsWith('!'));
  const excludes = patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1));
  if (excludes.some((p) => toRegExp(p).test(id))) return false;
  return includes.length === 0 || includes.some((p) => toRegExp(p).test(id));
}
