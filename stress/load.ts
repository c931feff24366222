/**
 * The load the stress tool puts on an application, and the checks of every answer: browsers in
 * a closed loop that read, add to a counter and sign in again; probe browsers that read on a
 * fixed beat whether or not earlier reads answered; and a checker that holds each browser to
 * what the store acknowledged. Shared by the fault scenarios (faults.ts) and the Redis Cluster
 * phases (cluster.ts).
 */
import type { Agent } from 'node:http';
import { Browser, type Exchange } from './client.js';

/** A broken guarantee, with one example. */
export interface Violation {
  rule: string;
  count: number;
  example: string;
}

/** Waits `ms` milliseconds. */
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What a browser expects of its session, from what the store acknowledged. */
export interface Expectation {
  /** The last counter value a 200 showed. */
  acked: number;
  /** Counter increments sent, answered or not: no value may exceed it. */
  sent: number;
  /** The user it signed in as, or null. */
  user: string | null;
  /** Whether its last login answered 503 (its old session may be gone). */
  loginFailed: boolean;
}

/** Collects exchanges and violations for one scenario. */
export class Checker {
  readonly exchanges: Exchange[] = [];
  readonly violations = new Map<string, Violation>();
  lostWrites = 0;
  signedOut = 0;
  lostAfterFailedLogin = 0;
  expectedLosses = 0;
  /** Acknowledged increments found missing, summed over every loss but those after a failed sign-in. */
  lostIncrements = 0;
  /** Browsers that found their session lowered, replaced or signed out, but not after a failed sign-in. */
  sessionsHit = 0;

  /** `durable`: whether a loss breaks a guarantee (false: it is counted as expected). */
  constructor(readonly durable: boolean) {}

  violate(rule: string, example: string): void {
    const found = this.violations.get(rule);
    if (found !== undefined) found.count++;
    else this.violations.set(rule, { rule, count: 1, example });
  }

  /**
   * Checks one exchange against the browser's expectation and updates it. Answers whether the
   * browser's session is gone (so that it signs in again).
   */
  check(exchange: Exchange, expect: Expectation, isInc: boolean, isLogin: boolean): boolean {
    this.exchanges.push(exchange);
    const what = `${exchange.method} ${exchange.path} at ${Math.round(exchange.start)} ms`;
    if (exchange.status === 0) {
      this.violate('answered', `${what}: no answer (${exchange.error})`);
      return false;
    }
    if (exchange.status === 503) {
      if (exchange.setCookie.length > 0) {
        this.violate('no cookie on 503', `${what}: Set-Cookie ${exchange.setCookie.join(' | ')}`);
      }
      if (exchange.retryAfter !== '1')
        this.violate('Retry-After on 503', `${what}: ${exchange.retryAfter}`);
      if (isLogin) expect.loginFailed = true;
      return false;
    }
    if (exchange.status !== 200 || exchange.body === undefined) {
      this.violate('200 or 503', `${what}: status ${exchange.status}`);
      return false;
    }
    const value = exchange.body.data.n ?? 0;
    const user = exchange.body.user;
    if (value > expect.sent)
      this.violate('no phantom write', `${what}: n=${value}, sent ${expect.sent}`);
    const lost = value < expect.acked;
    const signedOut = expect.user !== null && user !== expect.user && !isLogin;
    if (lost || signedOut) {
      const detail = `${what}: n=${value} (acknowledged ${expect.acked}), user ${user} (expected ${expect.user})`;
      if (!expect.loginFailed) {
        this.sessionsHit++;
        this.lostIncrements += Math.max(0, expect.acked - value);
      }
      if (expect.loginFailed) this.lostAfterFailedLogin++;
      else if (!this.durable) this.expectedLosses++;
      else {
        if (lost) {
          this.lostWrites++;
          this.violate('no acknowledged write lost', detail);
        }
        if (signedOut) {
          this.signedOut++;
          this.violate('signed-in sessions survive', detail);
        }
      }
      expect.acked = value;
      expect.sent = value;
      expect.loginFailed = false;
      const hadUser = expect.user !== null;
      expect.user = user;
      return hadUser && user === null;
    }
    if (isInc || value > expect.acked) expect.acked = value;
    if (isLogin) {
      expect.user = user;
      expect.loginFailed = false;
    }
    return false;
  }
}

/** Runs the browsers while `running()` holds; each keeps its own expectation. */
export async function drive(
  browsers: Browser[],
  expectations: Expectation[],
  checker: Checker,
  running: () => boolean,
  thinkMs: number,
  loginRate: number,
): Promise<void> {
  await Promise.all(
    browsers.map(async (browser, i) => {
      const expect = expectations[i]!;
      let relogin = false;
      while (running()) {
        const roll = Math.random();
        let method = 'GET';
        let path = '/';
        if (relogin || (expect.user !== null && roll < loginRate)) {
          method = 'POST';
          path = `/login?u=user-${i}`;
        } else if (roll < 0.4) {
          method = 'POST';
          path = '/inc';
          expect.sent++;
        }
        const isLogin = path.startsWith('/login');
        const exchange = await browser.send(method, path);
        if (isLogin && exchange.status === 200) relogin = false;
        if (checker.check(exchange, expect, path === '/inc', isLogin)) relogin = true;
        if (thinkMs > 0) await sleep(thinkMs);
      }
    }),
  );
}

/**
 * Sends a read every `everyMs` while `running()` holds, whether or not earlier ones have answered, from
 * signed-in browsers that only read: arrivals that do not wait on the store, as users clicking
 * do, so a request that starts just after the store returns is always there to be measured.
 */
export async function probe(
  probes: Browser[],
  expectations: Expectation[],
  checker: Checker,
  running: () => boolean,
  everyMs: number,
): Promise<void> {
  const pending: Promise<void>[] = [];
  if (everyMs <= 0) return;
  for (let k = 0; running(); k++) {
    const i = k % probes.length;
    pending.push(
      probes[i]!.send('GET', '/').then((exchange) => {
        checker.check(exchange, expectations[i]!, false, false);
      }),
    );
    await sleep(everyMs);
  }
  await Promise.all(pending);
}

/** The browsers of one run, each with what it expects of its session. */
export interface Crowd {
  browsers: Browser[];
  expectations: Expectation[];
  probes: Browser[];
  probed: Expectation[];
}

const fresh = (): Expectation => ({ acked: 0, sent: 0, user: null, loginFailed: false });

/**
 * Creates `clients` browsers and 4 probe browsers on the application at `base`. Every browser
 * gets a session with a counter; every other one signs in, and so does every probe. Then a
 * burst of `burst` concurrent reads, as traffic peaks do: pools grow to hold more connections
 * than the steady load needs, and those idle connections live through a fault.
 */
export async function prepareCrowd(
  base: string,
  agent: Agent,
  clock: () => number,
  checker: Checker,
  clients: number,
  burst: number,
): Promise<Crowd> {
  const browsers = Array.from({ length: clients }, () => new Browser(base, agent, clock));
  const probes = Array.from({ length: 4 }, () => new Browser(base, agent, clock));
  const crowd = { browsers, expectations: browsers.map(fresh), probes, probed: probes.map(fresh) };
  const prepare = async (browser: Browser, expect: Expectation, signIn: string | null) => {
    expect.sent++;
    checker.check(await browser.send('POST', '/inc'), expect, true, false);
    if (signIn !== null) {
      checker.check(await browser.send('POST', `/login?u=${signIn}`), expect, false, true);
    }
  };
  for (const [i, browser] of browsers.entries()) {
    await prepare(browser, crowd.expectations[i]!, i % 2 === 0 ? `user-${i}` : null);
  }
  for (const [i, browser] of probes.entries()) {
    await prepare(browser, crowd.probed[i]!, `probe-${i}`);
  }
  await Promise.all(
    Array.from({ length: burst }, async (_, j) => {
      const i = j % clients;
      checker.check(await browsers[i]!.send('GET', '/'), crowd.expectations[i]!, false, false);
    }),
  );
  return crowd;
}

/** Every browser and probe reads once more, after the load: each must find what was acknowledged. */
export async function finalReads(crowd: Crowd, checker: Checker): Promise<void> {
  for (const [i, browser] of crowd.browsers.entries()) {
    checker.check(await browser.send('GET', '/'), crowd.expectations[i]!, false, false);
  }
  for (const [i, browser] of crowd.probes.entries()) {
    checker.check(await browser.send('GET', '/'), crowd.probed[i]!, false, false);
  }
}

/** Runs the browsers and the probes while `running()` holds. */
export async function runLoad(
  crowd: Crowd,
  checker: Checker,
  running: () => boolean,
  pace: { thinkMs: number; loginRate: number; probeEvery: number },
): Promise<void> {
  await Promise.all([
    drive(crowd.browsers, crowd.expectations, checker, running, pace.thinkMs, pace.loginRate),
    probe(crowd.probes, crowd.probed, checker, running, pace.probeEvery),
  ]);
}
