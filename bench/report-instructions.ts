/**
 * The report's instruction counts (see `instructions.ts`): the targets judged on them, one table
 * per scenario beside the same contenders' req/s and CPU from the HTTP runs, and the machine's
 * noise those HTTP figures carry.
 *
 * @packageDocumentation
 */
import { CALIBRATION_WORK_MICROS, type Framework } from './contenders.js';
import type { BenchReport, Row } from './harness.js';
import { spread, type InstructionRow } from './instructions.js';
import { SCENARIO_TITLES, type ScenarioId } from './protocol.js';

/** One target judged on instruction counts (the same shape as the report's other targets). */
export interface InstructionCheck {
  target: string;
  measured: string;
  status: 'met' | 'missed' | 'not measured';
}

/** Tessera's layer against the floor's: at most this many times. */
export const FLOOR_LIMIT = 1.1;
/** Tessera's layer against the established library's on the same framework: at most this. */
export const PEER_LIMIT = 0.2;

const FRAMEWORKS: readonly Framework[] = ['express', 'fastify', 'node'];
const FRAMEWORK_NAME: Record<Framework, string> = {
  express: 'Express',
  fastify: 'Fastify',
  node: 'node:http',
};
const SCENARIO_NAME: Record<ScenarioId, string> = {
  read: 'read-only',
  write: 'read+write',
  new: 'new session',
};

function integer(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–';
}

function signedInteger(value: number): string {
  return Number.isFinite(value) ? `${value >= 0 ? '+' : ''}${integer(value)}` : '–';
}

function times(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : '–';
}

function counted(
  report: BenchReport,
  id: string,
  scenario: ScenarioId,
): InstructionRow | undefined {
  return report.instructions?.rows.find(
    (row) =>
      row.contender.id === id &&
      row.scenario === scenario &&
      row.error === undefined &&
      row.values.length > 0,
  );
}

/**
 * Which counts a figure is made of: every instruction, or those serving requests (outside the
 * optimizing compiler and the module loader's thread, see `Count` in `instructions.ts`).
 */
type Basis = 'all' | 'steady';

/**
 * A row's counts on a basis. Without the excluded shares (older saved results), the steady basis is
 * every instruction.
 */
function countsOf(row: InstructionRow, basis: Basis): number[] {
  const { values, compiler } = row;
  if (basis === 'all' || compiler === undefined || compiler.length !== values.length) return values;
  return values.map((value, index) => value - compiler[index]! - (row.loader?.[index] ?? 0));
}

/** A layer: a contender's instructions above its bare framework's, as a median and a range. */
interface Layer {
  median: number;
  /** The smallest and largest the layer can be, from the extremes of both sides' counts. */
  low: number;
  high: number;
}

function layerOf(
  report: BenchReport,
  id: string,
  framework: Framework,
  scenario: ScenarioId,
  basis: Basis = 'steady',
): Layer | undefined {
  const row = counted(report, id, scenario);
  const bare = counted(report, `bare-${framework}`, scenario);
  if (row === undefined || bare === undefined) return undefined;
  const a = spread(countsOf(row, basis));
  const b = spread(countsOf(bare, basis));
  return { median: a.median - b.median, low: a.min - b.max, high: a.max - b.min };
}

/** The ratio of two layers, with the range their extremes allow (unbounded when one can reach 0). */
function ratioOf(top: Layer, bottom: Layer): { median: number; low: number; high: number } {
  return {
    // A reference layer at or below zero (noise larger than the layer) gives no ratio.
    median: bottom.median > 0 ? top.median / bottom.median : Number.NaN,
    low: bottom.high > 0 ? top.low / bottom.high : Number.NaN,
    high: bottom.low > 0 ? top.high / bottom.low : Number.POSITIVE_INFINITY,
  };
}

function formatRatio(ratio: { median: number; low: number; high: number }): string {
  const high = Number.isFinite(ratio.high) ? ratio.high.toFixed(2) : '∞';
  return `${times(ratio.median)} (${Number.isFinite(ratio.low) ? ratio.low.toFixed(2) : '–'}–${high})`;
}

/** One comparison a target makes: Tessera's layer against a reference layer. */
interface Comparison {
  framework: Framework;
  scenario: ScenarioId;
  tessera: string;
  reference: string;
  /** How the comparison is named in the report (`Express/memory`). */
  name: string;
}

function comparisons(kind: 'floor' | 'peer'): Comparison[] {
  const list: Comparison[] = [];
  for (const scenario of ['read', 'write'] as const) {
    if (kind === 'floor') {
      for (const framework of FRAMEWORKS) {
        list.push({
          framework,
          scenario,
          tessera: `tessera-${framework}-memory`,
          reference: `floor-${framework}`,
          name: FRAMEWORK_NAME[framework],
        });
      }
    } else {
      list.push(
        {
          framework: 'express',
          scenario,
          tessera: 'tessera-express-memory',
          reference: 'express-session-memory',
          name: 'Express/memory vs express-session',
        },
        {
          framework: 'fastify',
          scenario,
          tessera: 'tessera-fastify-memory',
          reference: 'fastify-session-memory',
          name: 'Fastify/memory vs @fastify/session',
        },
        {
          framework: 'express',
          scenario,
          tessera: 'tessera-express-redis',
          reference: 'connect-redis',
          name: 'Express/Redis vs express-session with connect-redis',
        },
      );
    }
  }
  return list;
}

/** A comparison's figures, when both sides and the bare framework were counted. */
function judge(report: BenchReport, comparison: Comparison, basis: Basis = 'steady') {
  const { framework, scenario } = comparison;
  const tessera = layerOf(report, comparison.tessera, framework, scenario, basis);
  const reference = layerOf(report, comparison.reference, framework, scenario, basis);
  if (tessera === undefined || reference === undefined) return undefined;
  return { tessera, reference, ratio: ratioOf(tessera, reference) };
}

/** Whether every counted row has its optimizing compiler's share, so targets leave it out. */
function compilerKnown(report: BenchReport): boolean {
  const rows = (report.instructions?.rows ?? []).filter((row) => row.values.length > 0);
  return rows.length > 0 && rows.every((row) => row.compiler?.length === row.values.length);
}

/** The targets judged on instruction counts, one line each, for the report's target table. */
export function instructionTargets(report: BenchReport): InstructionCheck[] {
  if (report.instructions === undefined) return [];
  const targets: [kind: 'floor' | 'peer', limit: number, text: string][] = [
    [
      'floor',
      FLOOR_LIMIT,
      `Instructions: Tessera's session layer (above the bare framework) ≤ ${FLOOR_LIMIT}× the floor's, memory store, read-only and read+write`,
    ],
    [
      'peer',
      PEER_LIMIT,
      `Instructions: Tessera's session layer ≤ ${PEER_LIMIT}× the established library's on the same framework, read-only and read+write`,
    ],
  ];
  return targets.map(([kind, limit, target]) => {
    const parts: string[] = [];
    let met: boolean | undefined;
    for (const comparison of comparisons(kind)) {
      const judged = judge(report, comparison);
      if (judged === undefined) continue;
      parts.push(
        `${comparison.name} ${SCENARIO_NAME[comparison.scenario]} ${times(judged.ratio.median)}`,
      );
      if (!Number.isFinite(judged.ratio.median)) continue;
      met = (met ?? true) && judged.ratio.median <= limit;
    }
    if (met === undefined) return { target, measured: '–', status: 'not measured' };
    return { target, measured: parts.join('; '), status: met ? 'met' : 'missed' };
  });
}

/**
 * The machine's noise in the HTTP runs: what the calibration rows' fixed work added over the bare
 * framework, run by run (each run beside the bare framework's run of the same round).
 */
export function calibrationNoise(report: BenchReport): string {
  const added: number[] = [];
  for (const row of report.rows) {
    if (row.contender.library !== 'bare-work' || row.error !== undefined) continue;
    const bare = report.rows.find(
      (other: Row) =>
        other.contender.id === `bare-${row.contender.framework}` &&
        other.scenario === row.scenario &&
        other.error === undefined,
    );
    if (bare === undefined || bare.runs.length !== row.runs.length) continue;
    row.runs.forEach((run, index) => {
      const base = bare.runs[index]!;
      added.push(
        run.cpuMicros / Math.max(1, run.requests) - base.cpuMicros / Math.max(1, base.requests),
      );
    });
  }
  if (added.length === 0) return 'not measured (no calibration rows ran over HTTP)';
  const { median, min, max } = spread(added);
  return (
    `the calibration rows' ${CALIBRATION_WORK_MICROS} µs of fixed work added between ${min.toFixed(1)} and ${max.toFixed(1)} µs ` +
    `of server CPU per request over the bare framework (median ${median.toFixed(1)} µs, ${added.length} runs, every framework and scenario); ` +
    'a CPU or req/s difference smaller than that spread is not settled by these runs'
  );
}

/** How far repeated counts of one row lie apart, relative to their median. */
function repeatSpread(report: BenchReport): string {
  const spreads = (report.instructions?.rows ?? [])
    .filter((row) => row.values.length > 1)
    .map((row) => {
      const { median, min, max } = spread(row.values);
      return (max - min) / median;
    });
  if (spreads.length === 0) return 'no row was counted more than once';
  const { median, max } = spread(spreads);
  return `repeated counts of a row lay within ${(100 * median).toFixed(1)} % of each other (median over the rows), at most ${(100 * max).toFixed(1)} %`;
}

function scenarioTable(report: BenchReport, scenario: ScenarioId): string[] {
  const rows = (report.instructions?.rows ?? []).filter((row) => row.scenario === scenario);
  if (rows.length === 0) return [];
  const lines = [
    `### ${SCENARIO_TITLES[scenario]}`,
    '',
    "| Contender | instructions/req: median (min–max) | of them serving requests (outside the optimizing compiler and the module loader's thread) | counts | layer: above bare | × the floor's layer | req/s | CPU µs/req | CPU vs bare |",
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const row of rows) {
    const { contender } = row;
    const label = contender.kind === 'tessera' ? `**${contender.label}**` : contender.label;
    if (row.error !== undefined || row.values.length === 0) {
      const why = (row.error ?? 'no count finished').replace(/\|/g, '\\|');
      lines.push(`| ${label} | not counted: ${why} | | | | | | | |`);
      continue;
    }
    const { median, min, max } = spread(row.values);
    const steady = countsOf(row, 'steady');
    const outside = spread(steady);
    const steadyCell =
      steady === row.values
        ? '–'
        : `${integer(outside.median)} (${integer(outside.min)}–${integer(outside.max)})`;
    const layer =
      contender.kind === 'ceiling'
        ? undefined
        : layerOf(report, contender.id, contender.framework, scenario);
    const floor =
      contender.library === 'tessera' ||
      contender.library === 'express-session' ||
      contender.library === 'fastify-session'
        ? layerOf(report, `floor-${contender.framework}`, contender.framework, scenario)
        : undefined;
    const http = report.rows.find(
      (other) =>
        other.contender.id === contender.id &&
        other.scenario === scenario &&
        other.error === undefined,
    );
    const bare = report.rows.find(
      (other) =>
        other.contender.id === `bare-${contender.framework}` &&
        other.scenario === scenario &&
        other.error === undefined,
    );
    const cpuVsBare =
      http === undefined || bare === undefined || contender.kind === 'ceiling'
        ? '–'
        : `${http.cpuPerRequest >= bare.cpuPerRequest ? '+' : ''}${(http.cpuPerRequest - bare.cpuPerRequest).toFixed(1)}`;
    lines.push(
      `| ${label} | ${integer(median)} (${integer(min)}–${integer(max)}) | ${steadyCell} | ${row.values.length} | ` +
        `${layer === undefined ? '–' : signedInteger(layer.median)} | ` +
        `${layer === undefined || floor === undefined || floor.median <= 0 ? '–' : times(layer.median / floor.median)} | ` +
        `${http === undefined ? '–' : integer(http.rps)} | ${http === undefined ? '–' : http.cpuPerRequest.toFixed(1)} | ${cpuVsBare} |`,
    );
  }
  lines.push('');
  return lines;
}

function targetTable(report: BenchReport): string[] {
  const lines = [
    "| Target | Comparison | Scenario | Tessera's layer | reference layer | ratio (range) | Status | ratio on every instruction |",
    '|---|---|---|--:|--:|--:|---|--:|',
  ];
  for (const [kind, limit] of [
    ['floor', FLOOR_LIMIT],
    ['peer', PEER_LIMIT],
  ] as const) {
    for (const comparison of comparisons(kind)) {
      const judged = judge(report, comparison);
      const target = `≤ ${limit}× ${kind === 'floor' ? 'the floor' : 'the peer'}`;
      const name = kind === 'floor' ? `${comparison.name}/memory vs the floor` : comparison.name;
      if (judged === undefined) {
        lines.push(
          `| ${target} | ${name} | ${SCENARIO_NAME[comparison.scenario]} | – | – | – | not measured | – |`,
        );
        continue;
      }
      const { ratio } = judged;
      if (!Number.isFinite(ratio.median)) {
        lines.push(
          `| ${target} | ${name} | ${SCENARIO_NAME[comparison.scenario]} | ${signedInteger(judged.tessera.median)} | ` +
            `${signedInteger(judged.reference.median)} | – | not judged: the reference layer is not above zero | – |`,
        );
        continue;
      }
      const met = ratio.median <= limit;
      const settled = met ? ratio.high <= limit : ratio.low > limit;
      const status = `${met ? 'met' : `**missed** by ${Math.round(100 * (ratio.median / limit - 1))} %`}${settled ? '' : ' (the range straddles the target)'}`;
      lines.push(
        `| ${target} | ${name} | ${SCENARIO_NAME[comparison.scenario]} | ${signedInteger(judged.tessera.median)} | ` +
          `${signedInteger(judged.reference.median)} | ${formatRatio(ratio)} | ${status} | ` +
          `${compilerKnown(report) ? times(judge(report, comparison, 'all')!.ratio.median) : '–'} |`,
      );
    }
  }
  lines.push('');
  return lines;
}

/** How many times the rows were counted: as asked, or fewer where the phase was cut short. */
function countsNote(rows: readonly InstructionRow[], repeats: number): string {
  const done = rows.filter((row) => row.values.length > 0).map((row) => row.values.length);
  const plural = (n: number) => `${n} time${n === 1 ? '' : 's'}`;
  if (done.length > 0 && done.every((n) => n === repeats))
    return `Each row was counted ${plural(repeats)}`;
  return `Each row was to be counted ${plural(repeats)}; the "counts" column says how many counts it has`;
}

/** The "Instructions per request" section, or nothing when no counts were taken. */
export function instructionSection(report: BenchReport): string[] {
  const counts = report.instructions;
  if (counts === undefined) return [];
  const lines = [
    '## Instructions per request',
    '',
    `Counted by callgrind (${counts.valgrind}) in the server process, over real HTTP on loopback: autocannon sends the requests from a process callgrind does not follow ` +
      '(8 keep-alive connections, one logged-in session for the read and write scenarios, no cookie for new sessions). ' +
      `Each count is a fresh server process with Node's \`--predictable\` (no concurrent GC or compiler threads) and Tessera compiled as in the HTTP runs: ` +
      `${integer(counts.warmup)} warm-up requests, then ${integer(counts.requests)} measured ones, whose instructions (all the process's threads, GC included) are divided by their number. ` +
      `${countsNote(counts.rows, counts.repeats)}; the table gives the median and the range. ` +
      "The counts do not move with the machine's load, only with the GC and JIT work a window happens to hold.",
    '',
    `- Command: \`${report.options.command}\` (the counts took ${counts.minutes.toFixed(0)} min)`,
    `- Repeats: ${repeatSpread(report)}`,
    `- Machine noise in the HTTP figures beside them: ${calibrationNoise(report)}`,
    ...(compilerKnown(report)
      ? [
          '- Left out of the layers, ratios and targets, and shown beside them: the optimizing compiler (with `--predictable` V8 compiles optimized code on the main thread, and after the warm-up it was still doing so inside the measured windows; ' +
            "callgrind's inclusive count of `v8::internal::Compiler::CompileOptimized`), whose work tails off as a server keeps running and lands in a window by when functions reach their tier, not by what a request costs; " +
            "and Node's module loader thread (`node::worker::Worker::Run`), on which the `--import tsx` hooks of the bench's child run, waking on a schedule of their own rather than per request. " +
            'The last column of the targets gives the ratio on every instruction.',
        ]
      : []),
    "- \"Layer\" is a row's median count minus its bare framework's: the session layer's instructions per request. " +
      '"× the floor\'s layer" divides it by the floor row\'s layer on the same framework (the floor keeps its sessions in memory). ' +
      "A ratio's range comes from the extremes of the counts it is made of.",
    ...counts.skipped.map(
      ({ contender, reason }) =>
        `- Not counted: ${contender.label} (\`${contender.id}\`): ${reason}`,
    ),
    '',
    '### Targets on instruction counts',
    '',
    ...targetTable(report),
  ];
  for (const scenario of report.options.scenarios) lines.push(...scenarioTable(report, scenario));
  return lines;
}
