/**
 * The stress tool: proves Tessera's reliability guarantees under faults and across instances,
 * with traffic on 127.0.0.1 only, bounded in count and time. See docs/reliability.md.
 *
 *   npx tsx stress/run.ts --faults                 every networked store under every fault
 *   npx tsx stress/run.ts --instances              three application processes on one store
 *   npx tsx stress/run.ts --cluster                Redis Cluster: a failover and slot moves
 *   npx tsx stress/run.ts                          all three
 *   npx tsx stress/run.ts --scale                  every store from 10 k sessions up (stress/scale-cli.ts)
 *   npx tsx stress/run.ts --soak                   a mixed workload for a bounded time (stress/scale-cli.ts)
 *
 * Options:
 *   --stores postgres,mysql,redis,memcached,sqlite   which stores (default: all that apply)
 *   --only restart,cut,partition,stale,slow,reset    which faults (default: all that apply; see
 *                      stress/faults.ts for each)
 *   --duration MS      how long a fault is held, 500 to 30000 (default 3000)
 *   --clients N        browsers at once, 1 to 64 (default 8)
 *   --store-timeout MS the manager's storeTimeout, 100 to 10000 (default 5000, the manager's own)
 *   --profile docs|demo|fixed   client settings (default docs: as docs/stores/*.md say)
 *   --client JSON      driver settings laid over the profile's (pg.Pool, mysql2 pool or memjs options)
 *   --think MS         pause between a browser's requests, 0 to 10000 (default 5)
 *   --probe-every MS   a read from a probe browser this often, answered or not (default 50; 0: none)
 *   --probe N          sessions stored before the second round-trip probe (default 1000; 0 skips)
 *   --json FILE        also write the results as JSON
 *
 * Options of --cluster (see stress/cluster.ts):
 *   --phases failover,migrate,migrate-tagged   which phases (default: all)
 *   --node-timeout MS  the cluster's cluster-node-timeout, 500 to 30000 (default 2000)
 *   --coverage full|partial   cluster-require-full-coverage yes (Redis's default) or no
 *   --no-refresh       leave out the client's slot refresh while a node reconnects
 *
 * Exits 0 when every guarantee held, 1 when one broke, 2 on a usage error or a run that
 * overran its time limit.
 */
import { writeFileSync } from 'node:fs';
import { FAULTS, faultsFor, runScenario, type FaultKind, type ScenarioResult } from './faults.js';
import { runInstances, type InstancesResult } from './instances.js';
import { formatCluster, formatFaults, formatInstances } from './report.js';
import {
  CLUSTER_PHASES,
  runClusterPhase,
  type ClusterPhase,
  type ClusterResult,
} from './cluster.js';
import { NETWORKED, type Profile, type StoreKind } from './stores.js';

const INSTANCE_STORES: readonly StoreKind[] = ['sqlite', 'postgres', 'mysql', 'redis', 'memcached'];

function usage(message: string): never {
  process.stderr.write(`stress: ${message}\n(see the comment at the top of stress/run.ts)\n`);
  process.exit(2);
}

function numberArg(value: string | undefined, name: string, min: number, max: number): number {
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n < min || n > max) {
    usage(`${name} takes a whole number from ${min} to ${max}`);
  }
  return n;
}

function listArg<T extends string>(
  value: string | undefined,
  name: string,
  allowed: readonly T[],
): T[] {
  const items = (value ?? '').split(',').filter((item) => item !== '');
  const bad = items.find((item) => !allowed.includes(item as T));
  if (items.length === 0 || bad !== undefined) usage(`${name} takes some of ${allowed.join(',')}`);
  return items as T[];
}

function jsonArg(value: string | undefined): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(value ?? '');
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      return parsed as Record<string, unknown>;
    }
  } catch {
    // reported below
  }
  return usage('--client takes a JSON object');
}

interface Args {
  faults: boolean;
  instances: boolean;
  cluster: boolean;
  phases: ClusterPhase[] | undefined;
  nodeTimeout: number;
  coverage: 'full' | 'partial';
  refresh: boolean;
  stores: StoreKind[] | undefined;
  only: FaultKind[] | undefined;
  duration: number;
  clients: number;
  storeTimeout: number;
  profile: Profile;
  client: Record<string, unknown> | undefined;
  think: number;
  probeEvery: number;
  probe: number;
  json: string | undefined;
}

function parse(argv: string[]): Args {
  const args: Args = {
    faults: false,
    instances: false,
    cluster: false,
    phases: undefined,
    nodeTimeout: 2_000,
    coverage: 'full',
    refresh: true,
    stores: undefined,
    only: undefined,
    duration: 3_000,
    clients: 8,
    storeTimeout: 5_000,
    profile: 'docs',
    client: undefined,
    think: 5,
    probeEvery: 50,
    probe: 1_000,
    json: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => argv[++i];
    if (flag === '--faults') args.faults = true;
    else if (flag === '--instances') args.instances = true;
    else if (flag === '--cluster') args.cluster = true;
    else if (flag === '--phases') args.phases = listArg(value(), '--phases', CLUSTER_PHASES);
    else if (flag === '--node-timeout')
      args.nodeTimeout = numberArg(value(), '--node-timeout', 500, 30_000);
    else if (flag === '--coverage')
      args.coverage = listArg(value(), '--coverage', ['full', 'partial'])[0]!;
    else if (flag === '--no-refresh') args.refresh = false;
    else if (flag === '--stores')
      args.stores = listArg(value(), '--stores', [...NETWORKED, 'sqlite'] as StoreKind[]);
    else if (flag === '--only') args.only = listArg(value(), '--only', FAULTS);
    else if (flag === '--duration') args.duration = numberArg(value(), '--duration', 500, 30_000);
    else if (flag === '--clients') args.clients = numberArg(value(), '--clients', 1, 64);
    else if (flag === '--store-timeout')
      args.storeTimeout = numberArg(value(), '--store-timeout', 100, 10_000);
    else if (flag === '--profile')
      args.profile = listArg(value(), '--profile', ['docs', 'demo', 'fixed'])[0]!;
    else if (flag === '--client') args.client = jsonArg(value());
    else if (flag === '--think') args.think = numberArg(value(), '--think', 0, 10_000);
    else if (flag === '--probe-every')
      args.probeEvery = numberArg(value(), '--probe-every', 0, 10_000);
    else if (flag === '--probe') args.probe = numberArg(value(), '--probe', 0, 10_000);
    else if (flag === '--json') args.json = value() ?? usage('--json takes a file');
    else usage(`unknown argument ${flag}`);
  }
  if (!args.faults && !args.instances && !args.cluster) {
    args.faults = args.instances = args.cluster = true;
  }
  return args;
}

async function main(): Promise<void> {
  if (process.argv.includes('--scale') || process.argv.includes('--soak')) {
    const { runScaleCli } = await import('./scale-cli.js');
    process.exit(await runScaleCli(process.argv.slice(2)));
  }
  const args = parse(process.argv.slice(2));
  const out = (text: string) => process.stdout.write(`${text}\n`);
  const scenarios: [StoreKind, FaultKind][] = [];
  if (args.faults) {
    for (const store of args.stores ?? NETWORKED) {
      if (store === 'sqlite') continue;
      for (const fault of faultsFor(store)) {
        if (args.only === undefined || args.only.includes(fault)) scenarios.push([store, fault]);
      }
    }
  }
  const instanceStores = args.instances
    ? (args.stores ?? INSTANCE_STORES).filter((store) => INSTANCE_STORES.includes(store))
    : [];
  // A hard limit on the whole run: each scenario's phases plus generous set-up time.
  const perScenario = 1_000 + args.duration + Math.max(3_000, args.storeTimeout + 1_000) + 30_000;
  const phases = args.cluster ? (args.phases ?? CLUSTER_PHASES) : [];
  // A cluster phase: starting six servers, the load, and a takeover within ten node timeouts.
  const perPhase = 90_000 + 10 * args.nodeTimeout;
  const limit =
    scenarios.length * perScenario +
    instanceStores.length * 120_000 +
    phases.length * perPhase +
    60_000;
  const watchdog = setTimeout(() => {
    process.stderr.write(`stress: the run overran its limit of ${Math.round(limit / 1000)} s\n`);
    process.exit(2);
  }, limit);
  watchdog.unref();

  const faultResults: ScenarioResult[] = [];
  if (scenarios.length > 0) {
    out(
      `Faults: ${args.clients} browsers (pause ${args.think} ms), a probe read every ${args.probeEvery} ms, ` +
        `fault held ${args.duration} ms, storeTimeout ${args.storeTimeout} ms, client settings "${args.profile}"` +
        (args.client === undefined ? '' : ` with ${JSON.stringify(args.client)}`),
    );
  }
  for (const [store, fault] of scenarios) {
    const result = await runScenario(store, fault, {
      clients: args.clients,
      duration: args.duration,
      storeTimeout: args.storeTimeout,
      profile: args.profile,
      client: args.client,
      thinkMs: args.think,
      probeEvery: args.probeEvery,
      probeSessions: fault === faultsFor(store)[faultsFor(store).length - 1] ? args.probe : 0,
    });
    faultResults.push(result);
    out(formatFaults([result], faultResults.length === 1));
  }
  const instanceResults: InstancesResult[] = [];
  for (const store of instanceStores) {
    const result = await runInstances(store, { profile: args.profile });
    instanceResults.push(result);
    out(formatInstances([result], instanceResults.length === 1));
  }
  const clusterResults: ClusterResult[] = [];
  if (phases.length > 0) {
    out(
      `Redis Cluster: 3 primaries and 3 replicas, cluster-node-timeout ${args.nodeTimeout} ms, ` +
        `full coverage ${args.coverage === 'full' ? 'yes' : 'no'}, ${args.clients} browsers, ` +
        `slot refresh ${args.refresh ? 'on' : 'off'}`,
    );
  }
  for (const phase of phases) {
    const result = await runClusterPhase(phase, {
      clients: args.clients,
      storeTimeout: args.storeTimeout,
      thinkMs: args.think,
      probeEvery: args.probeEvery,
      nodeTimeout: args.nodeTimeout,
      fullCoverage: args.coverage === 'full',
      refresh: args.refresh,
    });
    clusterResults.push(result);
    out(formatCluster([result], clusterResults.length === 1));
  }
  if (args.json !== undefined) {
    const results = { faults: faultResults, instances: instanceResults, cluster: clusterResults };
    writeFileSync(args.json, `${JSON.stringify({ args, ...results }, null, 2)}\n`);
  }
  const broken =
    faultResults.some((r) => r.violations.length > 0) ||
    instanceResults.some((r) => r.violations.length > 0) ||
    clusterResults.some((r) => r.violations.length > 0);
  out(broken ? 'Some guarantee broke: see the violations above.' : 'Every guarantee held.');
  clearTimeout(watchdog);
  // A client left with a silent connection (the stale fault) can hold the event loop open.
  process.exit(broken ? 1 : 0);
}

await main();
