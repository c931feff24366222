/**
 * Several application instances on one store: separate processes (or separate managers in one
 * process, for the short test), each with its own store client and its own manager, and so its
 * own cache of verified cookies. Checked, while concurrent writers keep every instance busy:
 *
 * - a revocation (`revokeUserSessions`) made on one instance ends the session on the next
 *   request on every instance, including those that served it a moment before;
 * - a logout on one instance likewise;
 * - `maxSessionsPerUser` enforced at a sign-in on one instance ends the oldest session on every
 *   instance;
 * - writers on different instances, each incrementing its own key of one shared session, lose
 *   no increment (compare-and-set with rebase).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MemcachedServer } from '../test/support/memcached-server.js';
import { RedisServerProcess } from '../test/support/redis-server.js';
import { Browser, newAgent, type Exchange } from './client.js';
import type { Violation } from './faults.js';
import { serveInstance, type InstanceConfig } from './instance.js';
import { openStore, runName, type Endpoint, type Profile, type StoreKind } from './stores.js';

/** Options of {@link runInstances}. */
export interface InstancesOptions {
  /** Application instances on the store. @defaultValue 3 */
  instances?: number;
  /** Each instance in its own process (`false`: separate managers in this process). @defaultValue true */
  processes?: boolean;
  /** Users for each of the revoke, logout and cap checks. @defaultValue 8 */
  users?: number;
  /** Shared sessions written concurrently. @defaultValue 3 */
  sessions?: number;
  /** Writers per shared session, spread over the instances. @defaultValue 6 */
  writers?: number;
  /** Increments each writer sends. @defaultValue 25 */
  increments?: number;
  /** Client settings. @defaultValue 'docs' */
  profile?: Profile;
}

/** How many checks of one kind passed. */
export interface CheckCount {
  checked: number;
  passed: number;
}

/** What the instances run found. */
export interface InstancesResult {
  store: StoreKind;
  instances: number;
  processes: boolean;
  revoke: CheckCount;
  logout: CheckCount;
  cap: CheckCount;
  writers: {
    writers: number;
    increments: number;
    /** Increments answered 200. */
    acknowledged: number;
    /** Increments answered otherwise (503 after WRITE_CONFLICT, say). */
    failed: number;
    /** The sum of the writers' keys as read at the end. */
    final: number;
    /** Acknowledged increments missing at the end (a violation when above 0). */
    lost: number;
  };
  violations: Violation[];
}

/** The cap every instance enforces, for the cap check. */
const CAP = 2;
const SECRET = 'stress-instances-secret-at-least-32-bytes';
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Instance {
  base: string;
  stop(): Promise<void>;
}

/** Starts one instance as a child process (node --import tsx stress/instance.ts). */
async function spawnInstance(config: InstanceConfig): Promise<Instance> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'stress', 'instance.ts')],
    {
      cwd: ROOT,
      env: { ...process.env, STRESS_INSTANCE: JSON.stringify(config) },
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(
      () => reject(new Error('an instance did not start within 60 s')),
      60_000,
    );
    lines.on('line', (line) => {
      if (!line.startsWith('listening ')) return;
      clearTimeout(timer);
      resolve(line.slice('listening '.length));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`an instance exited with ${code} before listening`));
    });
  });
  return {
    base,
    async stop() {
      child.stdin?.end();
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** The store's server (private where the tool starts one) and how to stop it. */
async function prepareStore(
  kind: StoreKind,
): Promise<{ endpoint: Endpoint; stop(): Promise<void> }> {
  if (kind === 'redis') {
    const server = await RedisServerProcess.start();
    return { endpoint: { host: '127.0.0.1', port: server.port }, stop: () => server.stop() };
  }
  if (kind === 'memcached') {
    const server = await MemcachedServer.start();
    return { endpoint: { host: '127.0.0.1', port: server.port }, stop: () => server.stop() };
  }
  if (kind === 'sqlite') {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-stress-sqlite-'));
    return {
      endpoint: { file: join(dir, 'sessions.db') },
      stop: () => rm(dir, { recursive: true, force: true }),
    };
  }
  return { endpoint: {}, stop: async () => undefined };
}

class Tally {
  readonly violations = new Map<string, Violation>();
  readonly counts = { revoke: count(), logout: count(), cap: count() };

  /** Records one check; answers whether it held. */
  check(
    kind: 'revoke' | 'logout' | 'cap',
    held: boolean,
    rule: string,
    example: () => string,
  ): boolean {
    this.counts[kind].checked++;
    if (held) this.counts[kind].passed++;
    else this.violate(rule, example());
    return held;
  }

  violate(rule: string, example: string): void {
    const found = this.violations.get(rule);
    if (found !== undefined) found.count++;
    else this.violations.set(rule, { rule, count: 1, example });
  }
}

function count(): CheckCount {
  return { checked: 0, passed: 0 };
}

function describe(exchange: Exchange): string {
  return `${exchange.method} ${exchange.path} -> ${exchange.status} ${JSON.stringify(exchange.body ?? exchange.error ?? '')}`;
}

/** Whether an answer shows a signed-out, empty session. */
function signedOut(exchange: Exchange): boolean {
  return (
    exchange.status === 200 && exchange.body?.user === null && exchange.body.data.n === undefined
  );
}

/** Whether an answer shows the session signed in as `user`, with its counter. */
function signedIn(exchange: Exchange, user: string): boolean {
  return exchange.status === 200 && exchange.body?.user === user && exchange.body.data.n === 1;
}

/** Signs a new browser in as `user` on `base`, with a counter of 1 in its session. */
async function signIn(
  browser: Browser,
  base: string,
  user: string,
  tally: Tally,
): Promise<boolean> {
  const inc = await browser.send('POST', '/inc', base);
  const login = await browser.send('POST', `/login?u=${encodeURIComponent(user)}`, base);
  const ok = inc.status === 200 && signedIn(login, user);
  if (!ok) tally.violate('sign-in works', `${describe(inc)}; ${describe(login)}`);
  return ok;
}

/** A revocation, or a logout, on one instance ends the session on every instance at once. */
async function endEverywhere(
  kind: 'revoke' | 'logout',
  bases: string[],
  users: number,
  agent: Agent,
  clock: () => number,
  tally: Tally,
): Promise<void> {
  await Promise.all(
    Array.from({ length: users }, async (_, u) => {
      const user = `${kind}-${u}`;
      const home = bases[u % bases.length]!;
      const browser = new Browser(home, agent, clock);
      if (!(await signIn(browser, home, user, tally))) return;
      // Every instance serves the session first, so each has verified its cookie.
      for (const base of bases) {
        const seen = await browser.send('GET', '/', base);
        if (!signedIn(seen, user))
          tally.violate('every instance serves a signed-in session', describe(seen));
      }
      const ender = bases[(u + 1) % bases.length]!;
      if (kind === 'revoke') {
        const admin = new Browser(ender, agent, clock);
        const revoked = await admin.send('POST', `/revoke?u=${encodeURIComponent(user)}`);
        if (revoked.status !== 200 || revoked.body?.removed !== 1) {
          tally.violate('revocation answers 200 with one session ended', describe(revoked));
          return;
        }
      } else {
        const cookie = browser.cookie;
        const out = await browser.send('POST', '/logout', ender);
        if (out.status !== 200) {
          tally.violate('logout answers 200', describe(out));
          return;
        }
        // Replay the old cookie, as a copy of it elsewhere would (the browser dropped it).
        browser.cookie = cookie;
      }
      for (const base of bases) {
        const after = await browser.send('GET', '/', base);
        tally.check(
          kind,
          signedOut(after),
          `a ${kind} ends the session on every instance`,
          () => `${base}: ${describe(after)}`,
        );
      }
    }),
  );
}

/** A sign-in past the cap, on one instance, ends the oldest session on every instance. */
async function capEverywhere(
  bases: string[],
  users: number,
  agent: Agent,
  clock: () => number,
  tally: Tally,
): Promise<void> {
  await Promise.all(
    Array.from({ length: users }, async (_, u) => {
      const user = `cap-${u}`;
      const browsers: Browser[] = [];
      // CAP + 1 sign-ins, each on the next instance; every instance serves each session first.
      for (let s = 0; s <= CAP; s++) {
        const home = bases[(u + s) % bases.length]!;
        const browser = new Browser(home, agent, clock);
        if (!(await signIn(browser, home, user, tally))) return;
        browsers.push(browser);
        if (s < CAP) {
          for (const base of bases) {
            const seen = await browser.send('GET', '/', base);
            if (!signedIn(seen, user))
              tally.violate('every instance serves a signed-in session', describe(seen));
          }
        }
      }
      for (const base of bases) {
        const oldest = await browsers[0]!.send('GET', '/', base);
        tally.check(
          'cap',
          signedOut(oldest),
          'the cap ends the oldest session on every instance',
          () => `${base}: ${describe(oldest)}`,
        );
        for (const kept of browsers.slice(1)) {
          const seen = await kept.send('GET', '/', base);
          tally.check(
            'cap',
            signedIn(seen, user),
            'the cap keeps the newest sessions',
            () => `${base}: ${describe(seen)}`,
          );
        }
      }
    }),
  );
}

/** Writers on different instances, each incrementing its own key of one shared session. */
async function concurrentWriters(
  bases: string[],
  sessions: number,
  writers: number,
  increments: number,
  agent: Agent,
  clock: () => number,
  tally: Tally,
): Promise<InstancesResult['writers']> {
  let acknowledged = 0;
  let failed = 0;
  let final = 0;
  let lost = 0;
  await Promise.all(
    Array.from({ length: sessions }, async () => {
      const owner = new Browser(bases[0]!, agent, clock);
      const start = await owner.send('POST', '/inc?k=start');
      if (start.status !== 200 || owner.cookie === undefined) {
        tally.violate('a shared session is created', describe(start));
        return;
      }
      const acked = new Array<number>(writers).fill(0);
      await Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          const writer = new Browser(bases[w % bases.length]!, agent, clock);
          writer.cookie = owner.cookie;
          for (let i = 0; i < increments; i++) {
            const answer = await writer.send('POST', `/inc?k=w${w}`);
            if (answer.status === 200) {
              acknowledged++;
              // More than one step only when an increment that failed was stored after all.
              const seen = answer.body?.data[`w${w}`] ?? 0;
              if (seen <= acked[w]! || seen > i + 1) {
                tally.violate(
                  'each increment adds to what was acknowledged',
                  `writer ${w}: ${describe(answer)} after ${acked[w]} acknowledged, ${i + 1} sent`,
                );
              }
              acked[w] = seen;
            } else {
              failed++;
              if (answer.status !== 503) tally.violate('200 or 503', describe(answer));
            }
          }
        }),
      );
      const end = await owner.send('GET', '/');
      if (end.status !== 200) {
        tally.violate('the shared session reads back', describe(end));
        return;
      }
      for (let w = 0; w < writers; w++) {
        const value = end.body?.data[`w${w}`] ?? 0;
        final += value;
        if (value < acked[w]!) {
          lost += acked[w]! - value;
          tally.violate(
            'no acknowledged increment lost',
            `writer ${w}: ${value} stored, ${acked[w]} acknowledged`,
          );
        }
      }
    }),
  );
  return { writers: sessions * writers, increments, acknowledged, failed, final, lost };
}

/** Runs every check on `instances` instances of the application over one store. */
export async function runInstances(
  kind: StoreKind,
  options: InstancesOptions = {},
): Promise<InstancesResult> {
  const n = options.instances ?? 3;
  const processes = options.processes ?? true;
  const users = options.users ?? 8;
  const prepared = await prepareStore(kind);
  const spec = {
    kind,
    endpoint: prepared.endpoint,
    name: runName(),
    profile: options.profile ?? 'docs',
  };
  // The first open creates the table, so the instances never race to create it.
  const first = await openStore(spec);
  await first.close();
  const config: InstanceConfig = { spec, maxSessionsPerUser: CAP, secret: SECRET };
  const instances: Instance[] = [];
  const agent = newAgent();
  try {
    for (let i = 0; i < n; i++) {
      instances.push(processes ? await spawnInstance(config) : await serveInstance(config));
    }
    const bases = instances.map((instance) => instance.base);
    const t0 = performance.now();
    const clock = () => performance.now() - t0;
    const tally = new Tally();
    const [writers] = await Promise.all([
      concurrentWriters(
        bases,
        options.sessions ?? 3,
        options.writers ?? 6,
        options.increments ?? 25,
        agent,
        clock,
        tally,
      ),
      endEverywhere('revoke', bases, users, agent, clock, tally),
      endEverywhere('logout', bases, users, agent, clock, tally),
      capEverywhere(bases, users, agent, clock, tally),
    ]);
    return {
      store: kind,
      instances: n,
      processes,
      ...tally.counts,
      writers,
      violations: [...tally.violations.values()],
    };
  } finally {
    agent.destroy();
    await Promise.all(instances.map((instance) => instance.stop().catch(() => undefined)));
    const cleanup = await openStore(spec).catch(() => undefined);
    await cleanup?.drop().catch(() => undefined);
    await cleanup?.close().catch(() => undefined);
    await prepared.stop();
  }
}
