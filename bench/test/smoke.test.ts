import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runBench, type BenchReport } from '../harness.js';
import { ROOT } from '../options.js';
import { SCENARIOS } from '../protocol.js';

const run = promisify(execFile);

// The harness in smoke mode: real server processes, real HTTP load, one short run per scenario.
// Only the shape of the results is checked; performance is never asserted here.
describe('bench harness, smoke mode', () => {
  const contenders = [
    'bare-express',
    'layer-express',
    'floor-express',
    'tessera-express-memory',
    'express-session-memory',
  ];

  it('measures every scenario of bare Express (also with an empty middleware and with the inline floor), Tessera/Express/memory and express-session', async () => {
    const out = join(tmpdir(), `tessera-bench-smoke-test-${process.pid}-${Date.now()}.md`);
    const lines: string[] = [];
    let report: BenchReport;
    try {
      report = await runBench({
        smoke: true,
        filter: contenders.join(','),
        connections: 8,
        out,
        command: 'vitest run test/smoke.test.ts',
        log: (line) => lines.push(line),
      });
      expect(report.skipped, lines.join('\n')).toEqual([]);
      expect(report.rows).toHaveLength(contenders.length * SCENARIOS.length);
      for (const row of report.rows) {
        const name = `${row.contender.id} ${row.scenario}`;
        expect(row.error, name).toBeUndefined();
        expect(row.runs, name).toHaveLength(1);
        expect(row.rps, name).toBeGreaterThan(0);
        expect(Number.isFinite(row.p50), name).toBe(true);
        expect(Number.isFinite(row.p99), name).toBe(true);
        expect(row.cpuPerRequest, name).toBeGreaterThan(0);
        expect(row.systemPerRequest, name).toBeGreaterThanOrEqual(0);
        expect(row.systemPerRequest, name).toBeLessThanOrEqual(row.cpuRange[1]);
        expect(row.runs[0]!.requests, name).toBeGreaterThan(0);
        if (row.contender.store === 'none') {
          expect(row.storeCallsPerRequest, name).toBeNull();
        } else {
          // Every request of every scenario reaches the session store at least once.
          const calls = Object.values(row.storeCallsPerRequest ?? {}).reduce(
            (sum, value) => sum + value,
            0,
          );
          expect(calls, name).toBeGreaterThan(0);
        }
        // Memory stores have no client, so no round trips are counted.
        expect(row.roundTripsPerRequest, name).toBeNull();
      }
      expect(report.memory).toEqual([]);
      // Tessera's store calls are all counted, the synchronous forms included: the round-trip
      // targets must see one read per read-only request and one read and one save per write.
      expect(report.markdown).toMatch(
        /\| Read-only: one store round trip, no write \| [^|]+ \| met \|/,
      );
      expect(report.markdown).toMatch(
        /\| Read\+write: one read and one conditional write \(get \+ update\) \| [^|]+ \| met \|/,
      );

      const markdown = await readFile(out, 'utf8');
      expect(markdown).toBe(report.markdown);
      expect(markdown).toContain('Smoke run');
      expect(markdown).toContain('of it kernel (vs bare)');
      expect(markdown).toContain('vitest run test/smoke.test.ts');
      // The Express CPU targets show the empty middleware's share beside Tessera's figure.
      const target = markdown
        .split('\n')
        .find((line) => line.startsWith('| The session layer adds at most 10 µs'));
      expect(target).toMatch(
        /express [+-][\d.]+ µs \(an empty middleware: [+-][\d.]+ µs; the floor: [+-][\d.]+ µs\)/,
      );
      expect(markdown).toMatch(
        /\| Express \+ Tessera ≥ 0\.85× bare Express, read-only, memory \| [\d.]+× \(medians [\d,]+ vs [\d,]+ req\/s\); an empty middleware keeps [\d.]+×; the floor keeps [\d.]+× \|/,
      );
      for (const label of [
        'bare Express',
        'bare Express + an empty middleware',
        'Express + inline session work (the floor)',
        '**Tessera / Express / memory**',
        'express-session / MemoryStore',
      ]) {
        const row = markdown.split('\n').find((line) => line.startsWith(`| ${label} |`));
        expect(row, label).toBeDefined();
        // The req/s cell holds a number.
        expect(row!.split('|')[2]!.trim(), label).toMatch(/^[\d,]+/);
      }
    } finally {
      await rm(out, { force: true });
    }
  }, 300_000);

  it('measures the in-process CPU per request of a bare server and of Tessera on it', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        'bench/inprocess.ts',
        'bare-node',
        'tessera-node-memory',
        '--rounds',
        '1',
        '--requests',
        '1000',
      ],
      { cwd: ROOT, timeout: 60_000 },
    );
    for (const id of ['bare-node', 'tessera-node-memory']) {
      const line = stdout.split('\n').find((text) => text.startsWith(`${id} `));
      expect(line, stdout).toBeDefined();
      expect(Number(/median\s+([\d.]+)/.exec(line!)?.[1])).toBeGreaterThan(0);
    }
  }, 60_000);

  it('counts the bytes allocated per request, and finds that a session layer allocates more', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        'bench/allocations.ts',
        'bare-node',
        'tessera-node-memory',
        '--requests',
        '2000',
        '--top',
        '3',
      ],
      { cwd: ROOT, timeout: 60_000 },
    );
    const totals = ['bare-node', 'tessera-node-memory'].map((id) => {
      const line = stdout.split('\n').find((text) => text.startsWith(`${id}: `));
      expect(line, stdout).toBeDefined();
      return Number(/: ([\d,]+) bytes/.exec(line!)?.[1]?.replace(/,/g, ''));
    });
    expect(totals[0]).toBeGreaterThan(0);
    expect(totals[1]).toBeGreaterThan(totals[0]!);
    expect(stdout).toMatch(/tessera-node-memory against bare-node: \+\d+ bytes per request/);
  }, 60_000);

  it('measures the memory store per operation, builds side by side', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        'bench/store-ops.ts',
        '--sessions',
        '2000',
        '--rounds',
        '2',
        '--ops',
        '500',
      ],
      { cwd: ROOT, timeout: 60_000 },
    );
    const line = stdout.split('\n').find((text) => text.startsWith('src '));
    expect(line, stdout).toBeDefined();
    for (const operation of ['get', 'get\\+update', 'create \\(evicts\\)']) {
      expect(Number(new RegExp(`${operation} ([\\d.]+)`).exec(line!)?.[1])).toBeGreaterThan(0);
    }
  }, 60_000);
});
