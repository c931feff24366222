/**
 * Hole 8 (safer defaults: a warning for an untrusted HTTPS proxy, browser-session cookies with a
 * per-session "remember me") and hole 9 (`Cache-Control: no-store` whenever the session holds
 * something).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SessionManager } from '../../src/index.js';
import { cookiePair, setup } from '../support/fixtures.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function maxAgeOf(setCookie: readonly string[]): number | undefined {
  const match = /; Max-Age=(\d+)/.exec(setCookie[0] ?? '');
  return match === null ? undefined : Number(match[1]);
}

describe('X-Forwarded-Proto: https while trustProxy is off', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('warns once per manager, by event and process warning naming trustProxy', async () => {
    const emitWarning = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const { manager } = setup();
    const warnings: { code: string; message: string }[] = [];
    manager.on('warning', (warning) => warnings.push(warning));
    for (let i = 0; i < 3; i++) {
      const session = await manager.load({ forwardedProto: 'https' });
      session.set('a', 1);
      const { setCookie } = await manager.commit(session);
      // The cookie still goes out as the configuration says: not Secure, no __Host- prefix.
      expect(setCookie[0]).toMatch(/^sid=/);
      expect(setCookie[0]).not.toMatch(/Secure/);
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.code).toBe('UNTRUSTED_FORWARDED_PROTO');
    expect(warnings[0]!.message).toMatch(/trustProxy/);
    expect(emitWarning).toHaveBeenCalledTimes(1);
    expect(String(emitWarning.mock.calls[0]![0])).toMatch(/trustProxy/);

    const second = setup().manager;
    await second.load({ forwardedProto: 'HTTPS, http' });
    expect(emitWarning).toHaveBeenCalledTimes(2);
  });

  it('stays quiet for plain HTTP, real TLS, a trusted proxy, and a cookie that is always Secure', async () => {
    const emitWarning = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const quiet = setup().manager;
    const trusted = setup({ trustProxy: true }).manager;
    const alwaysSecure = setup({ cookie: { secure: true } }).manager;
    const events: unknown[] = [];
    for (const manager of [quiet, trusted, alwaysSecure]) {
      manager.on('warning', (w) => events.push(w));
    }
    await quiet.load({ forwardedProto: 'http' });
    await quiet.load({ https: true, forwardedProto: 'https' });
    await quiet.load({});
    await trusted.load({ forwardedProto: 'https' });
    await alwaysSecure.load({ forwardedProto: 'https' });
    expect(events).toEqual([]);
    expect(emitWarning).not.toHaveBeenCalled();
  });
});

describe('browser-session cookies by default, "remember me" per session', () => {
  async function signedIn(manager: SessionManager<any>) {
    const session = await manager.load({});
    await session.login('alice');
    return { session, headers: await manager.commit(session) };
  }

  it('sends the session cookie without Max-Age by default', async () => {
    const { manager } = setup();
    const { headers } = await signedIn(manager);
    expect(headers.setCookie).toHaveLength(1);
    expect(maxAgeOf(headers.setCookie)).toBeUndefined();
    expect(headers.setCookie[0]).not.toMatch(/Expires=/);
  });

  it('makes one session persistent with setTimeouts, kept across later rotations and reads', async () => {
    for (const encryption of [
      undefined,
      { keys: [{ id: 'k1', key: new Uint8Array(32).fill(4) }] },
    ]) {
      const { manager, clock } = setup({ encryption });
      const { headers } = await signedIn(manager);
      const first = await manager.load({ cookie: cookiePair(headers.setCookie) });
      first.setTimeouts({ idle: 7 * DAY, absolute: 30 * DAY, persistent: true });
      const remembered = await manager.commit(first);
      expect(maxAgeOf(remembered.setCookie)).toBe(30 * 24 * 3600);

      // A later request moves the session to a new ID: its new cookie is persistent too.
      clock.advance(DAY);
      const later = await manager.load({ cookie: cookiePair(remembered.setCookie) });
      await later.regenerate({ keep: true });
      const rotated = await manager.commit(later);
      expect(maxAgeOf(rotated.setCookie)).toBe(30 * 24 * 3600);
      const again = await manager.load({ cookie: cookiePair(rotated.setCookie) });
      again.setUser('alice');
      const rebound = await manager.commit(again);
      expect(maxAgeOf(rebound.setCookie)).toBeGreaterThan(29 * 24 * 3600);

      // And it can be turned off again.
      const forget = await manager.load({ cookie: cookiePair(rebound.setCookie) });
      forget.setTimeouts({ persistent: false });
      expect(maxAgeOf((await manager.commit(forget)).setCookie)).toBeUndefined();
    }
  });

  it('keeps the cookie option: persistent: true gives every cookie a Max-Age, unless a session opts out', async () => {
    const { manager } = setup({ cookie: { persistent: true } });
    const { headers } = await signedIn(manager);
    expect(maxAgeOf(headers.setCookie)).toBe(12 * 3600);
    const session = await manager.load({ cookie: cookiePair(headers.setCookie) });
    session.setTimeouts({ persistent: false });
    expect(maxAgeOf((await manager.commit(session)).setCookie)).toBeUndefined();
  });
});

describe('Cache-Control: no-store whenever the session holds something', () => {
  it('is sent for an anonymous session holding data, on read-only requests, awaited or answered at once', async () => {
    for (const synchronous of [false, true]) {
      const { manager } = setup({}, { synchronous });
      const fresh = await manager.load({});
      fresh.set('cart', ['apple']);
      const cookie = cookiePair((await manager.commit(fresh)).setCookie);
      const viaCommit = await manager.load({ cookie });
      expect(viaCommit.userId).toBeNull();
      expect(await manager.commit(viaCommit)).toEqual({ setCookie: [], cacheControl: 'no-store' });
      // A read-only request needs no store call: the headers come at once.
      const atOnce = await manager.load({ cookie });
      expect(manager.commit(atOnce)).toEqual({ setCookie: [], cacheControl: 'no-store' });
    }
  });

  it('is not sent for a response whose session holds nothing and sets no cookie', async () => {
    const { manager } = setup();
    const empty = await manager.load({});
    empty.get('anything');
    expect(await manager.commit(empty)).toEqual({ setCookie: [], cacheControl: undefined });
  });
});
