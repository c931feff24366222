import { connect } from 'node:net';

/** Whether a TCP server answers at host:port within the timeout. */
export function probeTcp(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Whether this run is CI, where a missing service fails the run instead of skipping. */
export const inCI = process.env.CI === 'true' || process.env.CI === '1';

export interface ServiceGate {
  available: boolean;
  /** Why the tests are skipped; empty when they run. */
  reason: string;
  /** A describe-title suffix stating the skip reason, or nothing. */
  label: string;
}

/**
 * Decides whether the tests of a real service run. Outside CI a missing service skips them
 * with the reason in the test title and on stderr; in CI it throws, failing the run.
 */
export async function requireService(
  name: string,
  check: () => Promise<boolean | string>,
): Promise<ServiceGate> {
  let result: boolean | string;
  try {
    result = await check();
  } catch (error) {
    result = error instanceof Error ? error.message : String(error);
  }
  if (result === true) return { available: true, reason: '', label: '' };
  const reason = `${name} is not available${typeof result === 'string' ? `: ${result}` : ''}`;
  if (inCI) throw new Error(`CI needs ${reason}`);
  console.warn(`[tessera tests] skipping: ${reason}`);
  return { available: false, reason, label: ` [skipped: ${reason}]` };
}

/**
 * Calls `run` until it resolves, pausing `pauseMs` between failed tries, and answers its value;
 * rethrows the last failure once `timeoutMs` has passed. For a store whose client reconnects to
 * a real server after an outage, which takes real time (no clock to inject).
 */
export async function eventually<T>(
  run: () => T | Promise<T>,
  timeoutMs = 10_000,
  pauseMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await run();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }
}

/**
 * Waits until `check` answers true, asking again every `pauseMs`; a check that throws counts as
 * false. Rejects, naming `what`, once `timeoutMs` has passed. For a private server the tests
 * start, pause or restart.
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  pauseMs = 50,
): Promise<void> {
  await eventually(
    async () => {
      const holds = await check().catch(() => false);
      if (!holds) throw new Error(`timed out waiting for ${what}`);
    },
    timeoutMs,
    pauseMs,
  );
}
