/**
 * Hole 5: every numeric option refuses what is not a finite number in range, with
 * `INVALID_OPTION`; booleans are checked too.
 */
import { describe, expect, it } from 'vitest';
import { SessionError, type SessionManagerOptions } from '../../src/index.js';
import { cookiePair, setup } from '../support/fixtures.js';

const NUMERIC = [
  'idleTimeout',
  'absoluteTimeout',
  'touchInterval',
  'storeTimeout',
  'maxRetries',
  'maxSessionsPerUser',
  'maxDataBytes',
] as const;

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return error instanceof SessionError ? error.code : `not a SessionError: ${String(error)}`;
  }
  return undefined;
}

describe('manager options', () => {
  it('refuses Infinity, NaN, negative numbers and non-numbers for every numeric option', () => {
    const bad: unknown[] = [Infinity, -Infinity, Number.NaN, -1, '1000', null, {}, 1e300];
    for (const name of NUMERIC) {
      for (const value of bad) {
        const options = { [name]: value } as Partial<SessionManagerOptions>;
        expect(
          codeOf(() => setup(options)),
          `${name}: ${String(value)}`,
        ).toBe('INVALID_OPTION');
      }
    }
  });

  it('refuses counts that are not whole numbers, and a cap below one', () => {
    for (const options of [
      { maxRetries: 1.5 },
      { maxSessionsPerUser: 0 },
      { maxSessionsPerUser: 2.5 },
      { idleTimeout: 0 },
      { absoluteTimeout: 0 },
      { storeTimeout: 0 },
    ]) {
      expect(
        codeOf(() => setup(options)),
        JSON.stringify(options),
      ).toBe('INVALID_OPTION');
    }
  });

  it('refuses a trustProxy that is not a boolean, and a clock that is not a function', () => {
    for (const trustProxy of ['yes', 1, 'false', null]) {
      expect(
        codeOf(() => setup({ trustProxy } as never)),
        String(trustProxy),
      ).toBe('INVALID_OPTION');
    }
    expect(codeOf(() => setup({ now: 5 } as never))).toBe('INVALID_OPTION');
  });

  it('accepts finite values in range, and leaves the sessions per user unlimited when omitted', async () => {
    const { manager } = setup({
      idleTimeout: 1_000,
      absoluteTimeout: 2_000,
      touchInterval: 0,
      storeTimeout: 1,
      maxRetries: 0,
      maxDataBytes: 10,
      trustProxy: true,
    });
    expect(manager.idleTimeout).toBe(1_000);
    const unlimited = setup().manager;
    for (let i = 0; i < 30; i++) {
      const session = await unlimited.load({});
      await session.login('alice');
      await unlimited.commit(session);
    }
    expect(await unlimited.listUserSessions('alice')).toHaveLength(30);
  });

  it('keeps sessions working with the largest accepted timeouts', async () => {
    const { manager, clock } = setup({ idleTimeout: 2 ** 40, absoluteTimeout: 2 ** 41 });
    const session = await manager.load({});
    session.set('k', 1);
    const cookie = cookiePair((await manager.commit(session)).setCookie);
    clock.advance(365 * 24 * 3_600_000);
    const again = await manager.load({ cookie });
    expect(again.get('k')).toBe(1);
    await manager.commit(again);
  });

  it('refuses Infinity and NaN in per-session timeouts, and a persistent flag that is not a boolean', async () => {
    const { manager } = setup();
    const session = await manager.load({});
    for (const timeouts of [
      { idle: Infinity },
      { absolute: Infinity },
      { idle: Number.NaN },
      { absolute: -1 },
      { idle: '60000' },
      { persistent: 'yes' },
    ]) {
      expect(
        codeOf(() => session.setTimeouts(timeouts as never)),
        JSON.stringify(timeouts),
      ).toBe('INVALID_OPTION');
    }
  });
});
