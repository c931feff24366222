/**
 * Flash messages through the public API: each "request" loads the session from its cookie,
 * works on it and commits, on the memory store with an injected clock.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SessionError, type Session, type SessionManager } from '../src/index.js';
import {
  FLASH_KEY_PREFIX,
  MAX_FLASH_MESSAGES,
  MAX_FLASH_MESSAGE_LENGTH,
  flash,
  takeFlash,
  type FlashMessage,
} from '../src/flash.js';
import { cookiePair, setup } from './support/fixtures.js';

type Manager = SessionManager<Record<string, unknown>>;

/** One request: loads the session of `cookie`, runs `work`, commits; answers the cookie to send next. */
async function request<T>(
  manager: Manager,
  cookie: string | undefined,
  work: (session: Session<Record<string, unknown>>) => T | Promise<T>,
): Promise<{ result: T; cookie: string | undefined; setCookie: readonly string[] }> {
  const session = await manager.load({ cookie });
  const result = await work(session);
  const { setCookie } = await manager.commit(session);
  return { result, cookie: setCookie.length > 0 ? cookiePair(setCookie) : cookie, setCookie };
}

/** A stored session holding `data`; answers its cookie. */
async function storedSession(manager: Manager, data: Record<string, unknown> = { user: 'x' }) {
  const { cookie } = await request(manager, undefined, (s) => {
    for (const [key, value] of Object.entries(data)) s.set(key, value);
  });
  return cookie!;
}

function expectInvalid(run: () => unknown): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(SessionError);
  expect((caught as SessionError).code).toBe('INVALID_DATA');
}

describe('flash messages', () => {
  it('shows a message on the next request once, then never again', async () => {
    const { manager } = setup();
    const first = await request(manager, undefined, (s) => flash(s, 'info', 'Signed in'));
    expect(first.setCookie).toHaveLength(1);
    const next = await request(manager, first.cookie, (s) => takeFlash(s));
    expect(next.result).toEqual([{ type: 'info', message: 'Signed in' }]);
    const after = await request(manager, next.cookie, (s) => takeFlash(s));
    expect(after.result).toEqual([]);
  });

  it('keeps messages in the order they were added, across requests', async () => {
    const { manager } = setup();
    let { cookie } = await request(manager, undefined, (s) => {
      flash(s, 'info', 'one');
      flash(s, 'error', 'two');
    });
    ({ cookie } = await request(manager, cookie, (s) => flash(s, 'info', 'three')));
    const { result } = await request(manager, cookie, (s) => takeFlash(s));
    expect(result).toEqual([
      { type: 'info', message: 'one' },
      { type: 'error', message: 'two' },
      { type: 'info', message: 'three' },
    ]);
  });

  it('takes one type and leaves the others for later', async () => {
    const { manager } = setup();
    let { cookie } = await request(manager, undefined, (s) => {
      flash(s, 'info', 'a');
      flash(s, 'error', 'b');
      flash(s, 'info', 'c');
    });
    const errors = await request(manager, cookie, (s) => takeFlash(s, 'error'));
    expect(errors.result).toEqual([{ type: 'error', message: 'b' }]);
    cookie = errors.cookie;
    const rest = await request(manager, cookie, (s) => takeFlash(s));
    expect(rest.result.map((m) => m.message)).toEqual(['a', 'c']);
  });

  it('writes nothing to the store when there is nothing to flash', async () => {
    const { manager, store } = setup();
    const cookie = await storedSession(manager);
    store.reset();
    const read = await request(manager, cookie, (s) => takeFlash(s));
    expect(read.result).toEqual([]);
    expect(read.setCookie).toEqual([]);
    expect(store.count('update') + store.count('create') + store.count('touch')).toBe(0);

    // A visitor without a session gets no session and no cookie from reading the flash.
    const fresh = await request(manager, undefined, (s) => takeFlash(s, 'error'));
    expect(fresh.setCookie).toEqual([]);
    expect(store.count('create')).toBe(0);
  });

  it('leaves the rest of the session alone', async () => {
    const { manager } = setup();
    const cookie = await storedSession(manager, { user: 'alice', theme: 'dark' });
    const added = await request(manager, cookie, (s) => flash(s, 'info', 'hi'));
    const taken = await request(manager, added.cookie, (s) => {
      takeFlash(s);
      return s.toJSON();
    });
    expect(taken.result).toEqual({ user: 'alice', theme: 'dark' });
  });

  it('stores each message under its own key with the reserved prefix', async () => {
    const { manager } = setup();
    const { result } = await request(manager, undefined, (s) => {
      flash(s, 'info', 'a');
      flash(s, 'info', 'b');
      return s.keys();
    });
    expect(result).toHaveLength(2);
    for (const key of result) expect(key).toMatch(/^tessera:flash:\d+:[0-9a-f]{8}$/);
    expect(FLASH_KEY_PREFIX).toBe('tessera:flash:');
  });

  it('ends with the session: messages are gone once it expires (injected clock)', async () => {
    const { manager, clock } = setup({ idleTimeout: 60_000 });
    const { cookie } = await request(manager, undefined, (s) => flash(s, 'info', 'later'));
    clock.advance(59_000);
    const kept = await request(manager, cookie, (s) => takeFlash(s, 'error'));
    expect(kept.result).toEqual([]);
    clock.advance(61_000);
    const expired = await request(manager, kept.cookie, (s) => takeFlash(s));
    expect(expired.result).toEqual([]);
  });
});

describe('flash messages and concurrent requests', () => {
  it('merges per key: two requests rewriting one shared list lose a message (why flash does not use one)', async () => {
    const { manager } = setup();
    const cookie = await storedSession(manager, { list: [] });
    const a = await manager.load({ cookie });
    const b = await manager.load({ cookie });
    a.set('list', [...(a.get('list') as string[]), 'from a']);
    b.set('list', [...(b.get('list') as string[]), 'from b']);
    await manager.commit(a);
    await manager.commit(b);
    const { result } = await request(manager, cookie, (s) => s.get('list'));
    expect(result).toEqual(['from b']);
  });

  it('loses nothing when two requests each add a message at once', async () => {
    const { manager } = setup();
    const cookie = await storedSession(manager);
    const a = await manager.load({ cookie });
    const b = await manager.load({ cookie });
    flash(a, 'info', 'from a');
    flash(b, 'error', 'from b');
    await Promise.all([manager.commit(a), manager.commit(b)]);
    const { result } = await request(manager, cookie, (s) => takeFlash(s));
    expect(result.map((m) => m.message).sort()).toEqual(['from a', 'from b']);
  });

  it('keeps a message added while another request takes the earlier ones', async () => {
    const { manager } = setup();
    const cookie = await storedSession(manager);
    await request(manager, cookie, (s) => flash(s, 'info', 'old'));
    const reader = await manager.load({ cookie });
    const writer = await manager.load({ cookie });
    expect(takeFlash(reader)).toEqual([{ type: 'info', message: 'old' }]);
    flash(writer, 'info', 'new');
    await manager.commit(reader);
    await manager.commit(writer);
    const { result } = await request(manager, cookie, (s) => takeFlash(s));
    expect(result).toEqual([{ type: 'info', message: 'new' }]);
  });

  it('bounds messages that concurrent adds pushed past the limit', async () => {
    const { manager } = setup();
    const cookie = await storedSession(manager);
    await request(manager, cookie, (s) => {
      for (let i = 0; i < MAX_FLASH_MESSAGES - 1; i++) flash(s, 'info', `m${i}`);
    });
    const a = await manager.load({ cookie });
    const b = await manager.load({ cookie });
    flash(a, 'info', 'a');
    flash(b, 'info', 'b');
    await manager.commit(a);
    await manager.commit(b);
    const { result } = await request(manager, cookie, (s) => {
      const flashKeys = s.keys().filter((key) => key.startsWith(FLASH_KEY_PREFIX));
      expect(flashKeys).toHaveLength(MAX_FLASH_MESSAGES + 1);
      return takeFlash(s);
    });
    expect(result).toHaveLength(MAX_FLASH_MESSAGES);
    expect(result[0]!.message).toBe('m1');
    expect(
      result
        .slice(-2)
        .map((m) => m.message)
        .sort(),
    ).toEqual(['a', 'b']);
    const { result: empty } = await request(manager, cookie, (s) => s.keys());
    expect(empty).toEqual(['user']);
  });
});

describe('flash bounds and hostile values', () => {
  it('keeps the newest 20 messages, dropping the oldest first', async () => {
    const { manager } = setup();
    const { cookie, result } = await request(manager, undefined, (s) => {
      for (let i = 0; i < 25; i++) flash(s, 'info', `m${i}`);
      return s.keys().length;
    });
    expect(result).toBe(MAX_FLASH_MESSAGES);
    const taken = await request(manager, cookie, (s) => takeFlash(s));
    expect(taken.result.map((m) => m.message)).toEqual(
      Array.from({ length: 20 }, (_, i) => `m${i + 5}`),
    );
  });

  it('accepts a message of 1,000 characters and refuses 1,001', async () => {
    const { manager } = setup();
    const session = await manager.load({});
    flash(session, 'info', 'x'.repeat(MAX_FLASH_MESSAGE_LENGTH));
    expectInvalid(() => flash(session, 'info', 'x'.repeat(MAX_FLASH_MESSAGE_LENGTH + 1)));
    expect(takeFlash(session)).toHaveLength(1);
  });

  it('refuses non-string messages and bad types with INVALID_DATA, changing nothing', async () => {
    const { manager } = setup();
    const session = await manager.load({});
    const hostile: unknown[] = [
      undefined,
      null,
      42,
      true,
      { toString: () => 'sneaky' },
      ['a'],
      Object('boxed'),
      Symbol('s'),
      () => 'f',
      10n,
    ];
    for (const value of hostile) {
      expectInvalid(() => flash(session, 'info', value as string));
      expectInvalid(() => flash(session, value as string, 'message'));
    }
    expectInvalid(() => flash(session, '', 'message'));
    expectInvalid(() => flash(session, 'x'.repeat(33), 'message'));
    expect(session.keys()).toEqual([]);
    const { setCookie } = await manager.commit(session);
    expect(setCookie).toEqual([]);
  });

  it('keeps messages that look like markup or JSON exactly as given', async () => {
    const { manager } = setup();
    const text = '<script>alert(1)</script> "}]\u0000\u2028 \ud83d\ude00 \ud800';
    const { cookie } = await request(manager, undefined, (s) => flash(s, '__proto__', text));
    const { result } = await request(manager, cookie, (s) => takeFlash(s));
    expect(result).toEqual([{ type: '__proto__', message: text }]);
  });

  it('drops malformed entries under the reserved prefix without answering them', async () => {
    const { manager } = setup();
    const cookie = await storedSession(manager, {
      [`${FLASH_KEY_PREFIX}x:1`]: { type: 'info', message: 'bad seq' },
      [`${FLASH_KEY_PREFIX}0:1`]: 'not an object',
      [`${FLASH_KEY_PREFIX}1:1`]: { type: 1, message: 'bad type' },
      [`${FLASH_KEY_PREFIX}2:1`]: { type: 'info', message: 'good' },
    });
    const { result, cookie: next } = await request(manager, cookie, (s) => takeFlash(s));
    expect(result).toEqual([{ type: 'info', message: 'good' }]);
    const { result: keys } = await request(manager, next, (s) => s.keys());
    expect(keys).toEqual([]);
  });

  it('throws SESSION_ENDED when adding to a destroyed session, and takes nothing from it', async () => {
    const { manager } = setup();
    const cookie = await storedSession(manager);
    const session = await manager.load({ cookie });
    flash(session, 'info', 'lost with the session');
    await session.destroy();
    expect(takeFlash(session)).toEqual([]);
    expect(() => flash(session, 'info', 'x')).toThrow(
      expect.objectContaining({ code: 'SESSION_ENDED' }),
    );
  });

  it('shows "Signed out" after a logout by regenerate + setUser(null); the old cookie gets nothing', async () => {
    const { manager } = setup();
    const signedIn = await request(manager, undefined, async (s) => {
      await s.login('alice');
      s.set('user', 'alice');
    });
    const out = await request(manager, signedIn.cookie, async (s) => {
      await s.regenerate();
      s.setUser(null);
      flash(s, 'info', 'Signed out');
    });
    expect(out.cookie).not.toBe(signedIn.cookie);
    const next = await request(manager, out.cookie, (s) => ({
      user: s.userId,
      flash: takeFlash(s),
    }));
    expect(next.result).toEqual({ user: null, flash: [{ type: 'info', message: 'Signed out' }] });
    const replay = await request(manager, signedIn.cookie, (s) => ({
      isNew: s.isNew,
      user: s.userId,
      flash: takeFlash(s),
    }));
    expect(replay.result).toEqual({ isNew: true, user: null, flash: [] });
  });
});

describe('flash property', () => {
  const add = fc.record({
    type: fc.constantFrom('info', 'error', 'success', 't'),
    message: fc.string({ maxLength: 40, unit: 'binary' }),
    // Whether the request ends (commit, new load) after this add.
    endRequest: fc.boolean(),
  });

  it('answers the last ≤20 messages added, in order, whatever the requests in between', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(add, { maxLength: 45 }), async (adds) => {
        const { manager } = setup();
        let session = await manager.load({});
        let cookie: string | undefined;
        for (const { type, message, endRequest } of adds) {
          flash(session, type, message);
          if (endRequest) {
            const { setCookie } = await manager.commit(session);
            if (setCookie.length > 0) cookie = cookiePair(setCookie);
            session = await manager.load({ cookie });
          }
        }
        const { setCookie } = await manager.commit(session);
        if (setCookie.length > 0) cookie = cookiePair(setCookie);
        const { result } = await request(manager, cookie, (s) => takeFlash(s));
        const expected: FlashMessage[] = adds
          .slice(-MAX_FLASH_MESSAGES)
          .map(({ type, message }) => ({ type, message }));
        expect(result).toEqual(expected);
        const again = await request(manager, cookie, (s) => takeFlash(s));
        expect(again.result).toEqual([]);
      }),
      { numRuns: 150, seed: 20_261_215 },
    );
  });
});
