/**
 * Heap bytes per session held by the memory store, and the longest its expiry sweep holds the
 * event loop.
 *
 * Each measurement runs in a fresh child process. The size lines make their sessions through the
 * manager, so the store holds what an application's sessions leave there (the encoded record, its
 * key, its entry in the maps and, signed in, in the user index), and read the heap in use plus
 * ArrayBuffer memory after forced collections, before and after, with the store kept alive.
 * Every session holds three small keys (`theme`, `locale`, `cart`); a signed-in one is bound to
 * its own user with `setUser`; another line keeps the user ID as a data key instead, not bound,
 * for the like-for-like comparison. express-session's MemoryStore gets the same data, with the user
 * as a data key, in the shape express-session hands its store.
 *
 * The sweep line fills a store with sessions (half of them signed in), moves its clock past their
 * expiry, collects the garbage the filling left, and times `prune()` while a `setImmediate` loop
 * records the most CPU time spent between two of its turns: the longest the sweep kept other work
 * waiting. It runs with V8's `--single-threaded`, so that the process's CPU time is the main
 * thread's, garbage collection included, and other processes on a busy machine do not count.
 *
 * @example
 * ```sh
 * node --expose-gc --import tsx bench/memory-store-size.ts
 * node --expose-gc --import tsx bench/memory-store-size.ts --sessions 100000 --sweep-sessions 1000000
 * ```
 *
 * @packageDocumentation
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import session from 'express-session';
import { SessionManager } from '../src/manager.js';
import { MemoryStore } from '../src/stores/memory.js';

const SECRET = 'bench-memory-secret-that-is-at-least-32-bytes';
const DATA = { theme: 'dark', locale: 'en-GB', cart: 3 } as const;

type Mode = 'anonymous' | 'signed-in' | 'user-in-data' | 'express-session' | 'sweep';
/** How a Tessera session carries its user: not at all, bound with `setUser`, or as a data key. */
type User = 'none' | 'setUser' | 'data';
const MODES: Record<Mode, string> = {
  anonymous: 'Tessera MemoryStore, anonymous session',
  'signed-in': 'Tessera MemoryStore, signed-in session (`setUser`)',
  'user-in-data': 'Tessera MemoryStore, user ID as a data key (no `setUser`)',
  'express-session': "express-session's MemoryStore (user ID as a data key)",
  sweep: 'Tessera MemoryStore, sweep of expired sessions',
};

interface Result {
  mode: Mode;
  sessions: number;
  /** Heap and ArrayBuffer growth per session held. */
  bytesPerSession?: number;
  /** The most CPU time between two turns of the event loop during the sweep, in ms. */
  longestHoldMs?: number;
  /** The CPU time of the whole sweep, in ms. */
  sweepMs?: number;
  removed?: number;
}

function heap(): number {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run with node --expose-gc --import tsx');
  for (let i = 0; i < 3; i++) collect();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

async function fillTessera(manager: SessionManager, from: number, to: number, user: User) {
  for (let i = from; i < to; i++) {
    const s = await manager.load({});
    if (user === 'setUser') s.setUser(`user-${i}`);
    if (user === 'data') s.set('userId', `user-${i}`);
    for (const [key, value] of Object.entries(DATA)) s.set(key, value);
    await manager.commit(s);
  }
}

async function sizeOfTessera(sessions: number, user: User): Promise<number> {
  const store = new MemoryStore({ maxSessions: sessions + 100, sweepInterval: 0 });
  const manager = new SessionManager({ store, secrets: [SECRET] });
  // Warm-up sessions first, so that one-time allocations stay out of the difference.
  await fillTessera(manager, 0, 100, user);
  const before = heap();
  await fillTessera(manager, 100, sessions + 100, user);
  const after = heap();
  if (store.size !== sessions + 100) throw new Error(`the store holds ${store.size}`);
  return (after - before) / sessions;
}

async function sizeOfExpressSession(sessions: number): Promise<number> {
  const store = new session.MemoryStore();
  const set = (sid: string, value: session.SessionData) =>
    new Promise<void>((resolve, reject) =>
      store.set(sid, value, (error?: unknown) => (error ? reject(error) : resolve())),
    );
  const before = heap();
  for (let i = 0; i < sessions; i++) {
    const value = { cookie: new session.Cookie(), userId: `user-${i}`, ...DATA };
    await set(randomBytes(24).toString('base64url'), value as unknown as session.SessionData);
  }
  const after = heap();
  const held = await new Promise<number>((resolve) =>
    store.length((_error, count) => resolve(count ?? 0)),
  );
  if (held !== sessions) throw new Error(`the store holds ${held}`);
  return (after - before) / sessions;
}

/** User plus system CPU time of this process so far, in ms. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

async function sweep(sessions: number): Promise<Required<Omit<Result, 'bytesPerSession'>>> {
  let time = Date.now();
  const store = new MemoryStore({ maxSessions: sessions, sweepInterval: 0, now: () => time });
  const data = JSON.stringify(['envelope', DATA, time]);
  for (let i = 0; i < sessions; i++) {
    const userId = i % 2 === 0 ? null : `user-${i % 50_000}`;
    store.create(randomBytes(32).toString('base64url'), { data, expiresAt: time + 60_000, userId });
  }
  time += 120_000;
  // The filling's garbage is collected first, so that its collection is not counted as a hold.
  heap();
  let longest = 0;
  let last = cpuMs();
  let running = true;
  const tick = () => {
    const now = cpuMs();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  const started = cpuMs();
  last = started;
  const removed = await store.prune();
  const sweepMs = cpuMs() - started;
  running = false;
  if (store.size !== 0) throw new Error(`the sweep left ${store.size} sessions`);
  return { mode: 'sweep', sessions, longestHoldMs: longest, sweepMs, removed };
}

async function measure(mode: Mode, sessions: number): Promise<Result> {
  switch (mode) {
    case 'anonymous':
      return { mode, sessions, bytesPerSession: await sizeOfTessera(sessions, 'none') };
    case 'signed-in':
      return { mode, sessions, bytesPerSession: await sizeOfTessera(sessions, 'setUser') };
    case 'user-in-data':
      return { mode, sessions, bytesPerSession: await sizeOfTessera(sessions, 'data') };
    case 'express-session':
      return { mode, sessions, bytesPerSession: await sizeOfExpressSession(sessions) };
    case 'sweep':
      return sweep(sessions);
  }
}

/** Runs `mode` in a fresh process with this process's flags and answers what it measured. */
function inChild(mode: Mode, sessions: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = fork(process.argv[1]!, ['--only', mode, '--sessions', String(sessions)], {
      execArgv: mode === 'sweep' ? [...process.execArgv, '--single-threaded'] : process.execArgv,
    });
    child.once('message', (message) => resolve(message as Result));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`${mode}: the child exited with ${code}`));
    });
  });
}

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    sessions: { type: 'string', default: '100000' },
    'sweep-sessions': { type: 'string', default: '1000000' },
  },
});
const sessions = Number(values.sessions);

if (values.only !== undefined) {
  const result = await measure(values.only as Mode, sessions);
  process.send!(result, () => process.exit(0));
} else {
  heap(); // fails early without --expose-gc
  console.log(`Node ${process.version}`);
  console.log('| Store | sessions | bytes per session (heap and ArrayBuffers) |');
  console.log('|---|--:|--:|');
  for (const mode of ['anonymous', 'signed-in', 'user-in-data', 'express-session'] as const) {
    const result = await inChild(mode, sessions);
    const bytes = Math.round(result.bytesPerSession!);
    console.log(`| ${MODES[mode]} | ${sessions.toLocaleString('en')} | ${bytes} |`);
  }
  const swept = await inChild('sweep', Number(values['sweep-sessions']));
  console.log('');
  console.log(
    '| Sweep | sessions removed | CPU time of the sweep | longest hold of the event loop (CPU) |',
  );
  console.log('|---|--:|--:|--:|');
  console.log(
    `| ${MODES.sweep} | ${swept.removed!.toLocaleString('en')} | ${Math.round(swept.sweepMs!)} ms | ${swept.longestHoldMs!.toFixed(1)} ms |`,
  );
}
