/**
 * What the harness (parent) and a contender's server process (child) say to each other over the
 * IPC channel, and the configuration the parent hands the child. Nothing here is measured: the
 * measured load is plain HTTP from autocannon.
 *
 * @packageDocumentation
 */

/** The measured request mixes. */
export type ScenarioId = 'read' | 'write' | 'new';

/** Every scenario, in the order the harness runs them (new sessions last, so they evict nothing measured). */
export const SCENARIOS: readonly ScenarioId[] = ['read', 'write', 'new'];

/** Human titles of the scenarios. */
export const SCENARIO_TITLES: Record<ScenarioId, string> = {
  read: 'Read-only (logged-in session, the handler reads it, nothing changes)',
  write: 'Read+write (logged-in session, one key changes per request)',
  new: 'New session (no cookie; the handler writes one key)',
};

/** The URL path each scenario requests. */
export const SCENARIO_PATHS: Record<ScenarioId, string> = {
  read: '/read',
  write: '/write',
  new: '/new',
};

/** Where the shared services are, as the parent found them. */
export interface ServiceEndpoints {
  /** A Redis URL (the harness's private redis-server when it could start one). */
  redisUrl?: string;
  postgres?: { host: string; port: number; user: string; password?: string; database: string };
  mysql?: { host: string; port: number; user: string; password?: string; database: string };
  memcached?: { host: string; port: number };
}

/** What a server process is told to build, through the `BENCH_SERVER` environment variable. */
export interface ServerConfig {
  /** The contender's id (see `contenders.ts`). */
  contender: string;
  services: ServiceEndpoints;
  /** A name prefix unique to this bench run: tables, Redis keys and files start with it. */
  namespace: string;
  /** A directory the server may create SQLite files in. */
  workDir: string;
  /** The cookie-signing secret shared by every contender (each library signs its own way). */
  secret: string;
}

/** Parent to child. */
export type ParentMessage =
  /** Starts a measured run; with `profile`, the server also samples its CPU into that file. */
  { type: 'begin'; profile?: string } | { type: 'end' } | { type: 'shutdown' };

/** Counters a server reports for one measured run. */
export interface RunCounters {
  /** Requests the server received during the run (its `request` events). */
  requests: number;
  /** User plus system CPU time the server process spent during the run, in microseconds. */
  cpuMicros: number;
  /** The part of `cpuMicros` spent in the kernel (system time): socket calls, wake-ups, page faults. */
  systemMicros: number;
  /** Calls of the session-store methods (`get`, `update`, `set`, `touch`...), by method. */
  storeCalls: Record<string, number>;
  /**
   * Round trips the store's client sent to its server (queries, commands, statements), by kind;
   * `null` for stores without a client (memory).
   */
  roundTrips: Record<string, number> | null;
}

/** Child to parent. */
export type ChildMessage =
  | { type: 'ready'; port: number }
  | { type: 'failed'; message: string }
  | { type: 'begun' }
  | ({ type: 'ended' } & RunCounters)
  | { type: 'closed' };
