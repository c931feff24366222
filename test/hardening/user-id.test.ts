/**
 * Hole 7: user IDs are validated once, by the manager, with a typed error, at every entry point:
 * 1 to 255 UTF-16 code units, well-formed, no control characters (U+0000 to U+001F, U+007F).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SessionError } from '../../src/index.js';
import { cookiePair, setup } from '../support/fixtures.js';

const INVALID: unknown[] = [
  '',
  'a\u0000b',
  '\u0000',
  'tab\there',
  'line\nbreak',
  'del\u007f',
  '\u001f',
  'x'.repeat(256),
  'lone \ud800 high',
  'lone \udc00 low',
  'ends high \ud83d',
  42,
  undefined,
  {},
];

const VALID = [
  'a',
  'alice',
  'alice@example.com',
  'x'.repeat(255),
  '用户',
  'emoji 😀 pair',
  'spaces inside ok',
  '\u0080 is not C0',
];

async function failure(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('user IDs', () => {
  it('refuses a bad user ID with INVALID_USER_ID at every entry point, before the store sees it', async () => {
    const { manager, store } = setup();
    const other = await manager.load({});
    await other.login('alice');
    const cookie = cookiePair((await manager.commit(other)).setCookie);
    const { handle } = (await manager.listUserSessions('alice'))[0]!;
    for (const userId of INVALID) {
      const session = await manager.load({ cookie });
      store.reset();
      const attempts: [string, () => unknown][] = [
        ['setUser', () => session.setUser(userId as string)],
        ['login', () => session.login(userId as string)],
        ['listUserSessions', () => manager.listUserSessions(userId as string)],
        ['revokeUserSessions', () => manager.revokeUserSessions(userId as string)],
        ['revokeUserSession', () => manager.revokeUserSession(userId as string, handle)],
      ];
      for (const [name, attempt] of attempts) {
        const error = await failure(attempt);
        expect(error, `${name}(${JSON.stringify(userId)})`).toBeInstanceOf(SessionError);
        expect((error as SessionError).code).toBe('INVALID_USER_ID');
      }
      // Nothing reached the store, and the session is as it was (login did not regenerate).
      expect(store.total()).toBe(0);
      expect(session.userId).toBe('alice');
      expect(session.isNew).toBe(false);
    }
  });

  it('accepts the documented form, including 255 characters and surrogate pairs', async () => {
    const { manager } = setup();
    for (const userId of VALID) {
      const session = await manager.load({});
      await session.login(userId);
      const cookie = cookiePair((await manager.commit(session)).setCookie);
      expect((await manager.load({ cookie })).userId).toBe(userId);
      expect(await manager.listUserSessions(userId)).toHaveLength(1);
      expect(await manager.revokeUserSessions(userId)).toBe(1);
    }
  });

  it('accepts exactly the strings of 1 to 255 code units, well-formed, without C0 controls or DEL', async () => {
    const { manager } = setup();
    const model = (text: string) =>
      text.length >= 1 &&
      text.length <= 255 &&
      ![...text].some((char) => char.charCodeAt(0) < 0x20 || char === '\u007f') &&
      !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
    const unit = fc.oneof(
      fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)),
      fc.constantFrom('a', '😀', '\u0000', '\u007f'),
    );
    await fc.assert(
      fc.asyncProperty(fc.string({ unit, maxLength: 300 }), async (text) => {
        const error = await failure(() => manager.listUserSessions(text));
        if (model(text)) expect(error).toBeUndefined();
        else expect((error as SessionError).code).toBe('INVALID_USER_ID');
      }),
      { numRuns: 500 },
    );
  });
});
