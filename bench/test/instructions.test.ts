import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { createClient } from 'redis';
import { describe, expect, it } from 'vitest';
import { contenderById } from '../contenders.js';
import type { BenchReport, Row } from '../harness.js';
import { notCounted, SERVICES_ENV, type InstructionRow } from '../instructions.js';
import { resolveOptions, ROOT } from '../options.js';
import { evaluateTargets, renderReport } from '../report.js';
import { deleteKeys } from '../services.js';

const run = promisify(execFile);

/** A report with instruction counts only (no HTTP rows unless given). */
function reportWith(counts: Record<string, [number, number, number]>, rows: Row[] = []) {
  const instructionRows: InstructionRow[] = Object.entries(counts).flatMap(([id, values]) =>
    (['read', 'write'] as const).map((scenario) => ({
      contender: contenderById(id),
      scenario,
      values: scenario === 'read' ? values : values.map((value) => value + 10_000),
    })),
  );
  const report: BenchReport = {
    options: resolveOptions({ scenarios: ['read', 'write'], command: 'npm run bench -- x' }),
    environment: {
      cpuModel: 'test',
      cores: 2,
      memoryGiB: 1,
      os: 'test',
      node: 'v20',
      packages: {},
      commit: 'abc',
      dirty: false,
    },
    startedAt: new Date(0),
    finishedAt: new Date(60_000),
    rows,
    skipped: [],
    memory: [],
    instructions: {
      requests: 1000,
      warmup: 2000,
      repeats: 3,
      valgrind: 'valgrind-3.19.0',
      minutes: 5,
      rows: instructionRows,
      skipped: [{ contender: contenderById('work-node'), reason: 'a loop sized by the clock' }],
    },
    redisNote: '',
    tesseraNote: 'compiled',
    calibration: [],
    loadAverage: { start: [0, 0, 0], end: [0, 0, 0] },
    outFile: '/dev/null',
    markdown: '',
  };
  return report;
}

/** One HTTP row with one run per given CPU µs per request. */
function httpRow(id: string, cpu: number[]): Row {
  return {
    contender: contenderById(id),
    scenario: 'read',
    runs: cpu.map((micros) => ({
      requests: 1000,
      cpuMicros: micros * 1000,
      systemMicros: 0,
      storeCalls: {},
      roundTrips: null,
      rps: 1000,
      p50: 1,
      p99: 2,
      responses: 1000,
      non2xx: 0,
      errors: 0,
      redisCommands: null,
      otherCpuShare: null,
    })),
    rps: 1000,
    p50: 1,
    p99: 2,
    cpuPerRequest: cpu[0]!,
    cpuRange: [Math.min(...cpu), Math.max(...cpu)],
    systemPerRequest: 0,
    storeCallsPerRequest: null,
    roundTripsPerRequest: null,
    redisCommandsPerRequest: null,
    failures: 0,
  };
}

describe('instruction counts in the report', () => {
  const counts: Record<string, [number, number, number]> = {
    'bare-express': [600_000, 601_000, 602_000],
    'floor-express': [660_000, 661_000, 662_000],
    // Layer 70,000 against the floor's 60,000: 1.17×, missed.
    'tessera-express-memory': [670_000, 671_000, 672_000],
    'express-session-memory': [900_000, 901_000, 903_000],
    'bare-node': [300_000, 300_000, 300_000],
    'floor-node': [350_000, 350_000, 350_000],
    // Layer 50,000 against 50,000: 1.00×, met.
    'tessera-node-memory': [350_000, 350_000, 350_000],
  };

  it('judges the layer targets on the medians and says by how much one is missed', () => {
    const report = reportWith(counts);
    const markdown = renderReport(report);
    expect(markdown).toContain('## Instructions per request');
    expect(markdown).toMatch(
      /\| ≤ 1\.1× the floor \| Express\/memory vs the floor \| read-only \| \+70,000 \| \+60,000 \| 1\.17× \(1\.10–1\.24\) \| \*\*missed\*\* by 6 % \(the range straddles the target\) \| – \|/,
    );
    expect(markdown).toMatch(
      /\| ≤ 1\.1× the floor \| node:http\/memory vs the floor \| read-only \| \+50,000 \| \+50,000 \| 1\.00× \(1\.00–1\.00\) \| met \| – \|/,
    );
    expect(markdown).toMatch(
      /\| ≤ 0\.2× the peer \| Express\/memory vs express-session \| read-only \| \+70,000 \| \+300,000 \| 0\.23×/,
    );
    // Fastify was not counted.
    expect(markdown).toMatch(
      /\| Fastify\/memory vs the floor \| read-only \| – \| – \| – \| not measured \| – \|/,
    );
    // The rows: median, range, the number of counts, the layer and its ratio to the floor's.
    expect(markdown).toMatch(
      /\| \*\*Tessera \/ Express \/ memory\*\* \| 671,000 \(670,000–672,000\) \| – \| 3 \| \+70,000 \| 1\.17× \| – \| – \| – \|/,
    );
    expect(markdown).toContain('- Not counted: bare node:http + 10 µs of work (`work-node`)');
    const targets = evaluateTargets(report).filter((check) =>
      check.target.startsWith('Instructions:'),
    );
    expect(targets.map((check) => check.status)).toEqual(['missed', 'missed']);
    expect(targets[0]!.measured).toContain('Express read-only 1.17×');
    expect(targets[0]!.measured).toContain('node:http read+write 1.00×');
  });

  it("leaves the optimizing compiler's and the loader thread's work out of the layers, and shows the ratio with them", () => {
    const report = reportWith(counts);
    for (const row of report.instructions!.rows) {
      // Tessera's windows held 20,000 instructions a request more of compiling than the floor's.
      const compiling = row.contender.id === 'tessera-express-memory' ? 30_000 : 10_000;
      row.compiler = row.values.map(() => compiling - 1_000);
      row.loader = row.values.map(() => 1_000);
    }
    const markdown = renderReport(report);
    expect(markdown).toMatch(
      /\| ≤ 1\.1× the floor \| Express\/memory vs the floor \| read-only \| \+50,000 \| \+60,000 \| 0\.83× \([\d.]+–[\d.]+\) \| met \| 1\.17× \|/,
    );
    expect(markdown).toMatch(
      /\| \*\*Tessera \/ Express \/ memory\*\* \| 671,000 \(670,000–672,000\) \| 641,000 \(640,000–642,000\) \| 3 \| \+50,000 \| 0\.83× \|/,
    );
    expect(markdown).toContain('- Left out of the layers, ratios and targets');
  });

  it("states the machine's noise from the calibration rows' runs beside the bare framework's", () => {
    const report = reportWith(counts, [
      httpRow('bare-node', [10, 12, 11]),
      httpRow('work-node', [30, 20, 40]),
    ]);
    const markdown = renderReport(report);
    expect(markdown).toContain(
      "- Machine noise: the calibration rows' 10 µs of fixed work added between 8.0 and 29.0 µs",
    );
    // The HTTP figures stand beside the counts.
    expect(markdown).toMatch(
      /\| bare node:http \| 300,000 \(300,000–300,000\) \| – \| 3 \| – \| – \| 1,000 \| 10\.0 \| – \|/,
    );
  });

  it('counts the memory-store, Redis and sessionless rows, but not the clock-sized calibration work', () => {
    expect(notCounted(contenderById('connect-redis'))).toBeUndefined();
    expect(notCounted(contenderById('fastify-session-memory'))).toBeUndefined();
    expect(notCounted(contenderById('floor-fastify'))).toBeUndefined();
    expect(notCounted(contenderById('work-express'))).toMatch(/clock/);
    expect(notCounted(contenderById('tessera-express-postgres'))).toMatch(
      /memory store and on Redis/,
    );
  });
});

// The child a count runs under callgrind, here without valgrind: a Redis contender and
// @fastify/session serve the warm-up and the measured requests over HTTP from the driver, a session
// per connection, with the store's keys under the namespace it was given.
describe('the counted child, without valgrind', () => {
  for (const id of [
    'tessera-node-redis',
    'tessera-express-redis',
    'connect-redis',
    'fastify-session-memory',
  ]) {
    it(`serves ${id} over HTTP through the driver`, async () => {
      const namespace = `bench_test_${randomBytes(4).toString('hex')}`;
      const redisUrl = 'redis://127.0.0.1:6379';
      const client = createClient({ url: redisUrl });
      client.on('error', () => undefined);
      await client.connect();
      try {
        await run(
          process.execPath,
          ['--import', 'tsx', 'bench/inprocess.ts', '--child', id, 'write', '40', '20', 'http'],
          {
            cwd: ROOT,
            timeout: 60_000,
            env: { ...process.env, [SERVICES_ENV]: JSON.stringify({ redisUrl, namespace }) },
          },
        );
        const keys: string[] = [];
        for await (const batch of client.scanIterator({ MATCH: `${namespace}:*` }))
          keys.push(...batch);
        // One session per driver connection (8), each stored under the namespace.
        expect(keys.length >= 8).toBe(contenderById(id).store === 'redis');
      } finally {
        await deleteKeys(client, namespace);
        client.destroy();
      }
    }, 60_000);
  }
});

describe('the round-trip target of read-only requests', () => {
  /** A read row of `id` with these store calls and round trips per request. */
  function readRow(id: string, trips: number): Row {
    return {
      ...httpRow(id, [10]),
      storeCallsPerRequest: { get: 1 },
      roundTripsPerRequest: { get: trips },
    };
  }

  it('expects one round trip on Redis, and none through the client-side cache', () => {
    const met = renderReport(
      reportWith({}, [
        readRow('tessera-express-redis', 1),
        readRow('tessera-express-redis-cached', 0),
      ]),
    );
    expect(met).toMatch(
      /\| Read-only: one store round trip, no write \| all 2 Tessera rows \| met \|/,
    );
    const missed = renderReport(reportWith({}, [readRow('tessera-express-redis-cached', 1)]));
    expect(missed).toMatch(
      /\| Read-only: one store round trip, no write \| [^|]+ \| \*\*missed\*\* \|/,
    );
  });
});
