/**
 * Profiles one contender under one scenario: starts its server with `--cpu-prof`, loads it as the
 * harness does, and prints where the server's CPU time went (self time by function, inclusive
 * time of Tessera's own functions, and time by package).
 *
 * @example
 * ```sh
 * npx tsx bench/profile.ts tessera-express-memory read --duration 10
 * npx tsx bench/profile.ts bare-express read    # the same for the ceiling, to subtract
 * ```
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { contenderById, hasSessions } from './contenders.js';
import { buildDirFor, compileTessera, removeBuild } from './build.js';
import { ServerProcess } from './children.js';
import { cannon, logIn } from './harness.js';
import { resolveOptions, ROOT } from './options.js';
import { SCENARIOS, type ScenarioId } from './protocol.js';
import { startServices } from './services.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One line of a profile summary. */
export interface ProfileEntry {
  name: string;
  /** Share of the busy (non-idle) samples, in percent. */
  percent: number;
}

/** Where a function comes from: a package, a Tessera file, Node itself, or V8. */
function placeOf(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  // Compiled Tessera (see build.ts) is shown under its source name; line numbers are the JavaScript's.
  const compiled = /\/\.cache\/tessera-bench\/[^/]+\/tessera\/(.*)\.js$/.exec(path);
  if (compiled !== null) return `src/${compiled[1]}.ts`;
  const modules = path.lastIndexOf('/node_modules/');
  if (modules !== -1) {
    const rest = path.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  return relative(ROOT, path);
}

function keyOf(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const place = placeOf(url, functionName);
  return `${functionName || '(anonymous)'} ${place.startsWith('(') ? '' : `${place}:${lineNumber + 1}`}`.trim();
}

/** Summarizes a `.cpuprofile`: self time by function, inclusive time of `src/` functions, time by place. */
export function summarizeProfile(profile: CpuProfile, top = 25) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfTime = new Map<number, number>();
  profile.samples.forEach((id, i) =>
    selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)),
  );
  const idle = profile.nodes
    .filter((node) => node.callFrame.functionName === '(idle)')
    .reduce((sum, node) => sum + (selfTime.get(node.id) ?? 0), 0);
  const totalTime = [...selfTime.values()].reduce((sum, value) => sum + value, 0);
  const busy = Math.max(1, totalTime - idle);

  const self = new Map<string, number>();
  const places = new Map<string, number>();
  for (const node of profile.nodes) {
    const time = selfTime.get(node.id) ?? 0;
    if (time === 0 || node.callFrame.functionName === '(idle)') continue;
    self.set(keyOf(node), (self.get(keyOf(node)) ?? 0) + time);
    const place = placeOf(node.callFrame.url, node.callFrame.functionName);
    places.set(place, (places.get(place) ?? 0) + time);
  }

  // Inclusive time, counting a function once even when it recurses.
  const inclusive = new Map<string, number>();
  const totalOf = new Map<number, number>();
  const subtotal = (id: number): number => {
    const node = byId.get(id)!;
    let sum = selfTime.get(id) ?? 0;
    for (const child of node.children ?? []) sum += subtotal(child);
    totalOf.set(id, sum);
    return sum;
  };
  const root = profile.nodes[0]!;
  subtotal(root.id);
  const onStack = new Map<string, number>();
  const walk = (id: number) => {
    const node = byId.get(id)!;
    const key = keyOf(node);
    const depth = onStack.get(key) ?? 0;
    if (depth === 0) inclusive.set(key, (inclusive.get(key) ?? 0) + (totalOf.get(id) ?? 0));
    onStack.set(key, depth + 1);
    for (const child of node.children ?? []) walk(child);
    onStack.set(key, depth);
  };
  walk(root.id);

  const list = (
    map: Map<string, number>,
    filter: (key: string) => boolean = () => true,
  ): ProfileEntry[] =>
    [...map.entries()]
      .filter(([key]) => filter(key))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, time]) => ({ name, percent: (100 * time) / busy }));
  return {
    busyMs: busy / 1000,
    idlePercent: (100 * idle) / Math.max(1, totalTime),
    self: list(self),
    tesseraInclusive: list(inclusive, (key) => / src\//.test(key)),
    places: list(places),
  };
}

/** Self time per request, in microseconds, by function. */
function perRequest(profile: CpuProfile, requests: number): Map<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const out = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (node === undefined || node.callFrame.functionName === '(idle)') return;
    const key = keyOf(node);
    out.set(key, (out.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / requests);
  });
  return out;
}

function print(title: string, entries: ProfileEntry[]): void {
  console.log(`\n${title}`);
  for (const { name, percent } of entries)
    console.log(`  ${percent.toFixed(1).padStart(5)} %  ${name}`);
}

interface Measured {
  id: string;
  requests: number;
  cpuPerRequest: number;
  profile: CpuProfile;
}

async function profileOne(
  id: string,
  scenario: ScenarioId,
  duration: number,
  connections: number,
  dir: string,
  namespace: string,
  tesseraDir: string | undefined,
): Promise<Measured> {
  const contender = contenderById(id);
  const options = resolveOptions({ connections });
  const services = await startServices(new Set([contender.store]), (line) => console.log(line));
  try {
    const reason = services.unavailable[contender.store];
    if (reason !== undefined) throw new Error(reason);
    const server = await ServerProcess.start(
      {
        contender: id,
        services: services.endpoints,
        namespace,
        workDir: dir,
        secret: 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz',
      },
      [],
      tesseraDir,
    );
    try {
      const cookies =
        hasSessions(contender) && scenario !== 'new'
          ? await logIn(server.port, options.connections)
          : [];
      await cannon(server.port, scenario, options, 2, cookies);
      const file = join(dir, `${id}.cpuprofile`);
      await server.begin(file);
      await cannon(server.port, scenario, options, duration, cookies);
      const counters = await server.end();
      return {
        id,
        requests: counters.requests,
        cpuPerRequest: counters.cpuMicros / counters.requests,
        profile: JSON.parse(await readFile(file, 'utf8')) as CpuProfile,
      };
    } finally {
      await server.stop();
    }
  } finally {
    await services.close(namespace);
  }
}

async function main(): Promise<void> {
  const [id, scenarioArg, ...rest] = process.argv.slice(2);
  if (id === undefined) {
    console.log(
      'usage: npx tsx bench/profile.ts <contender> [read|write|new] [--versus <contender>] [--duration s] [--connections n] [--top n] [--source]',
    );
    return;
  }
  const flag = (name: string): string | undefined => {
    const at = rest.indexOf(`--${name}`);
    return at === -1 ? undefined : rest[at + 1];
  };
  const scenario = (scenarioArg ?? 'read') as ScenarioId;
  if (!SCENARIOS.includes(scenario)) throw new Error(`unknown scenario ${scenario}`);
  const duration = Number(flag('duration') ?? 10);
  const connections = Number(flag('connections') ?? 50);
  const top = Number(flag('top') ?? 25);
  const versus = flag('versus');
  const dir = await mkdtemp(join(tmpdir(), 'tessera-profile-'));
  const namespace = `tessera_bench_${randomBytes(4).toString('hex')}`;
  const build = rest.includes('--source')
    ? { dir: undefined, note: 'from src/ through tsx' }
    : await compileTessera(join(buildDirFor(namespace), 'tessera'));
  console.log(`Tessera: ${build.note}`);
  try {
    const ids = versus === undefined ? [id] : [versus, id];
    const measured: Measured[] = [];
    for (const each of ids) {
      const result = await profileOne(
        each,
        scenario,
        duration,
        connections,
        dir,
        namespace,
        build.dir,
      );
      console.log(
        `${each} ${scenario}: ${result.requests} requests, ${result.cpuPerRequest.toFixed(1)} µs CPU/request (profiling included)`,
      );
      measured.push(result);
    }
    const subject = measured[measured.length - 1]!;
    const summary = summarizeProfile(subject.profile, top);
    console.log(
      `\nProfile of ${subject.id} over the measured window: ${summary.busyMs.toFixed(0)} ms busy, ${summary.idlePercent.toFixed(1)} % idle; percentages are of busy time`,
    );
    print('Self time by place', summary.places);
    print('Self time by function', summary.self);
    print("Inclusive time of Tessera's functions (src/)", summary.tesseraInclusive);
    if (measured.length === 2) {
      const base = perRequest(measured[0]!.profile, measured[0]!.requests);
      const mine = perRequest(subject.profile, subject.requests);
      const names = new Set([...base.keys(), ...mine.keys()]);
      const diffs = [...names]
        .map((name) => ({ name, base: base.get(name) ?? 0, mine: mine.get(name) ?? 0 }))
        .sort((a, b) => b.mine - b.base - (a.mine - a.base));
      const totalBase = [...base.values()].reduce((sum, value) => sum + value, 0);
      const totalMine = [...mine.values()].reduce((sum, value) => sum + value, 0);
      console.log(
        `\nSelf time per request, ${subject.id} against ${measured[0]!.id}: ${totalMine.toFixed(1)} vs ${totalBase.toFixed(1)} µs sampled`,
      );
      for (const { name, base: b, mine: m } of diffs.slice(0, top)) {
        console.log(
          `  ${(m - b >= 0 ? '+' : '') + (m - b).toFixed(2).padStart(6)} µs  (${m.toFixed(2)} vs ${b.toFixed(2)})  ${name}`,
        );
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await removeBuild(namespace);
  }
}

if (process.argv[1] !== undefined && /profile\.ts$/.test(process.argv[1])) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  });
}
