/**
 * Bytes allocated per request, by the function that allocated them: each contender's application
 * is driven in-process, as `inprocess.ts` does, under V8's sampling heap profiler with the objects
 * that the young and old generation collections freed kept in the samples, so short-lived garbage
 * counts too. Over HTTP, every byte allocated per request costs server CPU in the collector (much
 * more so under Express, which keeps much of its own garbage alive past a young collection; see
 * `docs/frameworks.md`), so this shows what the CPU figures of the in-process bench do not.
 *
 * The totals hold the warm-up and the application's start, spread over all requests; with the
 * default 100,000 requests that is a few bytes per request. Sampling every 512 bytes, two runs of
 * one build agree within about 100 bytes per request.
 *
 * @example
 * ```sh
 * npx tsx bench/allocations.ts bare-express tessera-express-memory
 * npx tsc -p tsconfig.json --outDir /tmp/before   # on the older commit
 * npx tsx bench/allocations.ts tessera-fastify-memory@/tmp/before tessera-fastify-memory@dist --scenario new
 * ```
 *
 * @packageDocumentation
 */
import type { HeapProfiler } from 'node:inspector';
import { Session } from 'node:inspector/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { askChild } from './children.js';
import { measureHere } from './inprocess.js';
import { ROOT } from './options.js';

type SamplingNode = HeapProfiler.SamplingHeapProfileNode;

/** What one contender allocated per request: in all, and by function. */
interface Allocated {
  spec: string;
  total: number;
  byFunction: Record<string, number>;
}

function functionKey({ functionName, url, lineNumber }: SamplingNode['callFrame']): string {
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const modules = path.lastIndexOf('/node_modules/');
  const place =
    modules !== -1
      ? path.slice(modules + '/node_modules/'.length)
      : path.startsWith('/')
        ? relative(ROOT, path)
        : path;
  return `${functionName || '(anonymous)'} ${place === '' ? '(native)' : `${place}:${lineNumber + 1}`}`;
}

/** Sums a sampling profile's self sizes by function, in bytes per request. */
function bytesByFunction(head: SamplingNode, requests: number): Record<string, number> {
  const sums: Record<string, number> = {};
  const visit = (node: SamplingNode) => {
    if (node.selfSize > 0) {
      const key = functionKey(node.callFrame);
      sums[key] = (sums[key] ?? 0) + node.selfSize / requests;
    }
    for (const child of node.children) visit(child);
  };
  visit(head);
  return sums;
}

/** In the child: drives the contender under the sampling heap profiler. */
async function allocateHere(spec: string, scenario: string, requests: number): Promise<Allocated> {
  const warmup = Math.min(20_000, requests);
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 512,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  await measureHere(spec, scenario, requests, warmup);
  const { profile } = await session.post('HeapProfiler.stopSampling');
  session.disconnect();
  const byFunction = bytesByFunction(profile.head, warmup + requests);
  const total = Object.values(byFunction).reduce((sum, value) => sum + value, 0);
  return { spec, total, byFunction };
}

function runChild(spec: string, scenario: string, requests: number): Promise<Allocated> {
  return askChild<Allocated>(
    fileURLToPath(import.meta.url),
    [spec, scenario, String(requests)],
    spec,
    'ignore',
  );
}

function formatBytes(value: number): string {
  return Math.round(value).toLocaleString('en-US').padStart(7);
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const [spec, scenario, requests] = process.argv.slice(3) as [string, string, string];
    let message: Allocated | { error: string };
    try {
      message = await allocateHere(spec, scenario, Number(requests));
    } catch (error) {
      message = { error: error instanceof Error ? error.message : String(error) };
    }
    process.send!(message, () => process.disconnect());
    return;
  }
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      scenario: { type: 'string', default: 'read' },
      requests: { type: 'string', default: '100000' },
      top: { type: 'string', default: '25' },
    },
  });
  if (positionals.length === 0) {
    console.log(
      'npx tsx bench/allocations.ts [--scenario read|write|new] [--requests 100000] [--top 25] <contender>[@<compiled dir>] ...',
    );
    return;
  }
  const top = Number(values.top);
  const results: Allocated[] = [];
  for (const spec of positionals) {
    const result = await runChild(spec, values.scenario, Number(values.requests));
    results.push(result);
    console.log(
      `\n${spec}: ${formatBytes(result.total).trim()} bytes allocated per request (${values.scenario})`,
    );
    const ranked = Object.entries(result.byFunction).sort((a, b) => b[1] - a[1]);
    for (const [name, bytes] of ranked.slice(0, top))
      console.log(`  ${formatBytes(bytes)}  ${name}`);
  }
  if (results.length < 2) return;
  const [base, ...others] = results as [Allocated, ...Allocated[]];
  for (const other of others) {
    console.log(
      `\n${other.spec} against ${base.spec}: ${other.total - base.total >= 0 ? '+' : ''}${Math.round(other.total - base.total)} bytes per request`,
    );
    const names = new Set([...Object.keys(base.byFunction), ...Object.keys(other.byFunction)]);
    const differences = [...names]
      .map((name) => ({
        name,
        delta: (other.byFunction[name] ?? 0) - (base.byFunction[name] ?? 0),
      }))
      .filter(({ delta }) => Math.abs(delta) >= 8)
      .sort((a, b) => b.delta - a.delta);
    for (const { name, delta } of differences.slice(0, top)) {
      console.log(`  ${(delta >= 0 ? '+' : '') + formatBytes(delta).trim().padStart(6)}  ${name}`);
    }
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
