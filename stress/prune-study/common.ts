/**
 * What the prune studies in this folder share: their flags, the load average they print first
 * and last, a seeded pick of sessions, clean-up on Ctrl-C, and the side-by-side loop of the
 * server studies (postgres.ts, mariadb.ts). Study tools, not part of CI.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { latencyOf, scaleKey, timed } from '../scale-measure.js';

/** Writes one line to stdout (the studies print results, not logs). */
export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** The machine's load averages as /proc/loadavg has them, or as `os.loadavg()` elsewhere. */
export function loadLine(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').trim();
  } catch {
    return loadavg()
      .map((n) => n.toFixed(2))
      .join(' ');
  }
}

/** The one-minute load average, two decimals. */
export const load1 = (): string => loadavg()[0]!.toFixed(2);

/**
 * The study's `--name value` flags over `defaults`; `--help` prints `usage` and a bad flag prints
 * it on stderr, both ending the process.
 */
export function flags<K extends string>(
  defaults: Record<K, string>,
  usage: string,
): Record<K, string> {
  const options = Object.fromEntries(
    [...Object.keys(defaults), 'help'].map((name) => [
      name,
      { type: name === 'help' ? ('boolean' as const) : ('string' as const) },
    ]),
  );
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ options, strict: true, allowPositionals: false }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${usage}\n`);
    process.exit(2);
  }
  if (values.help === true) {
    say(usage);
    process.exit(0);
  }
  return { ...defaults, ...(values as Partial<Record<K, string>>) };
}

/** `value` as a number of at least `min`, or a usage error naming `--name`. */
export function numberFlag(value: string, name: string, min = 1): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min)
    throw new Error(`--${name} takes a number of at least ${min}`);
  return n;
}

/**
 * A pick of session numbers below `below`, the same sequence on every run (a linear
 * congruential generator from `seed`), so that two variants read alike.
 */
export function picker(seed: number): (below: number) => number {
  let state = seed;
  return (below) => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state % below;
  };
}

/**
 * Runs `cleanup` once and exits on Ctrl-C or SIGTERM, so that an interrupted study still drops
 * its table or stops its server. Answers a function that removes the handlers.
 */
export function onInterrupt(cleanup: () => Promise<unknown>): () => void {
  let cleaning = false;
  // Kept for repeats: tsx's parent process sends the signal again, which would otherwise end
  // the process before the clean-up is done.
  const handler = (signal: NodeJS.Signals) => {
    if (cleaning) return;
    cleaning = true;
    process.stderr.write(`${signal}: cleaning up\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.removeListener('SIGINT', handler);
    process.removeListener('SIGTERM', handler);
  };
}

/** Set by a prune while one of its statements is on the server. */
export interface InFlight {
  inFlight: boolean;
}

/** One server study: a store on a table of its own, and the prune variants it compares. */
export interface ServerStudy {
  /** Stores sessions `from` … `to` − 1 (expired ones when `expired`) in bulk. */
  load(from: number, to: number, expired: boolean): Promise<void>;
  /** Refreshes the planner's statistics before a try. */
  analyze(): Promise<void>;
  /** Reads live session `i` through the store. */
  read(i: number): Promise<unknown>;
  /**
   * Prunes every row expired at `now` as `variant` says, with `flag.inFlight` set while a
   * statement runs; answers the rows removed and anything more to print after the reads.
   */
  prune(variant: string, now: number, flag: InFlight): Promise<{ removed: number; note?: string }>;
}

/**
 * Loads `sessions` live sessions, then for each round tries every variant (in reverse order on
 * odd rounds), each on `sessions` / 5 expired sessions loaded just before it: the reads'
 * latency just before the prune, and during it, split into reads made while a prune statement
 * was on the server and reads made between statements. One line per try.
 */
export async function compareVariants(
  study: ServerStudy,
  sessions: number,
  variants: string[],
  rounds: number,
): Promise<void> {
  const expired = Math.floor(sessions / 5);
  const pick = picker(12_345);
  const read = () => study.read(pick(sessions));
  const started = performance.now();
  await study.load(0, sessions, false);
  say(`loaded ${sessions} in ${Math.round(performance.now() - started)} ms`);
  let expiredFrom = 0;
  for (let round = 0; round < rounds; round++) {
    for (const variant of round % 2 === 0 ? variants : [...variants].reverse()) {
      await study.load(expiredFrom, expiredFrom + expired, true);
      expiredFrom += expired;
      await study.analyze();
      await timed(1_000, read);
      const quiet = latencyOf(await timed(5_000, read));
      const flag: InFlight = { inFlight: false };
      let done = false;
      const tryStarted = performance.now();
      const pruning = study.prune(variant, Date.now(), flag).finally(() => (done = true));
      const busy: number[] = [];
      const idle: number[] = [];
      while (!done) {
        const due = performance.now();
        const was = flag.inFlight;
        await new Promise((resolve) => setImmediate(resolve));
        await read();
        (was || flag.inFlight ? busy : idle).push(performance.now() - due);
      }
      const during = latencyOf([...busy, ...idle]);
      const b = latencyOf(busy);
      const i = latencyOf(idle);
      const { removed, note } = await pruning;
      const ms = performance.now() - tryStarted;
      say(
        `${variant.padEnd(22)} round ${round} load ${load1()}: removed ${removed} in ${Math.round(ms)} ms = ${Math.round((removed / ms) * 1000)}/s; ` +
          `reads quiet p50 ${quiet.p50} p99 ${quiet.p99}; during n=${during.count} p50 ${during.p50} p99 ${during.p99} max ${during.max} ` +
          `(ratio ${(during.p99 / quiet.p99).toFixed(1)})${note === undefined ? '' : ` ${note}`}; ` +
          `in-statement n=${b.count} p99 ${b.p99}; between n=${i.count} p99 ${i.p99}`,
      );
    }
  }
}

/**
 * Splits a variant's name at `-` into parts, each a word of `words` or a prefix of `prefixes`
 * followed by a number; anything else is an error naming the variant.
 */
export function variantParts(
  name: string,
  words: readonly string[],
  prefixes: readonly string[],
): { words: Set<string>; numbers: Map<string, number> } {
  const found = { words: new Set<string>(), numbers: new Map<string, number>() };
  for (const part of name.split('-')) {
    if (words.includes(part)) {
      found.words.add(part);
      continue;
    }
    const prefix = prefixes.find(
      (p) => part.startsWith(p) && /^\d+(\.\d+)?$/.test(part.slice(p.length)),
    );
    if (prefix === undefined) {
      throw new Error(
        `variant ${name}: "${part}" is none of ${[...words, ...prefixes.map((p) => `${p}N`)].join(', ')}`,
      );
    }
    found.numbers.set(prefix, Number(part.slice(prefix.length)));
  }
  return found;
}

/** A server study's command: its file, its variants, and how it opens its table. */
export interface ServerStudyTool {
  /** The file under stress/prune-study/. */
  file: string;
  /** The parts a variant's name is made of, for the usage. */
  parts: string;
  /** The variants tried when `--variants` is not given. */
  variants: string;
  /** Throws on a variant the study does not know. */
  check(variant: string): void;
  /** Opens the study's store on a table of its own, for `sessions` live sessions. */
  open(sessions: number): Promise<OpenStudy>;
}

/** An open server study: its store (the table not yet created) and how to remove what it made. */
export interface OpenStudy extends Omit<ServerStudy, 'read'> {
  store: { createTable(): Promise<void>; get(key: string): Promise<unknown> };
  /** Closes the store and its client, drops the table or stops the server. */
  close(): Promise<void>;
}

/**
 * Parses `--sessions`, `--rounds` and `--variants`, opens the study, runs
 * {@link compareVariants}, and cleans up, also on Ctrl-C; prints the load average first and last.
 */
export async function runServerStudy(tool: ServerStudyTool): Promise<void> {
  const usage = `npx tsx stress/prune-study/${tool.file} [--sessions N] [--rounds N] [--variants LIST]
  --sessions N     live sessions (default 1000000); a fifth as many expired ones per try
  --rounds N       times each variant is tried (default 2)
  --variants LIST  comma-separated, parts joined by "-": ${tool.parts}
                   (default ${tool.variants})`;
  const args = flags({ sessions: '1000000', rounds: '2', variants: tool.variants }, usage);
  const sessions = numberFlag(args.sessions, 'sessions', 5);
  const rounds = numberFlag(args.rounds, 'rounds');
  const variants = args.variants.split(',');
  for (const variant of variants) tool.check(variant);
  say(loadLine());
  const study = await tool.open(sessions);
  // Once only: after Ctrl-C the run fails on the closed client and reaches its own clean-up.
  let closing: Promise<void> | undefined;
  const close = () => (closing ??= study.close());
  const stopWatching = onInterrupt(close);
  try {
    await study.store.createTable();
    const read = (i: number) => study.store.get(scaleKey(i));
    await compareVariants({ ...study, read }, sessions, variants, rounds);
  } finally {
    stopWatching();
    await close();
  }
  say(loadLine());
}
