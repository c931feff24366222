/**
 * The rule every user ID meets before a session or a store sees it.
 *
 * @packageDocumentation
 */
import { SessionError } from './errors.js';

/** The longest user ID, in UTF-16 code units. */
const MAX_USER_ID_LENGTH = 255;

/**
 * Answers `userId` when it is a user ID Tessera accepts: a string of 1 to
 * {@link MAX_USER_ID_LENGTH} UTF-16 code units, well-formed (no lone surrogate, which UTF-8
 * cannot carry), without control characters U+0000 to U+001F and U+007F. Otherwise throws
 * `SessionError` with code `INVALID_USER_ID`, before any store sees it. One pass over the text.
 * @internal
 */
export function checkUserId(userId: unknown): string {
  const fail = (why: string): never => {
    throw new SessionError('INVALID_USER_ID', `a user ID ${why}`);
  };
  if (typeof userId !== 'string') return fail('must be a string');
  if (userId.length === 0 || userId.length > MAX_USER_ID_LENGTH) {
    fail(`must have 1 to ${MAX_USER_ID_LENGTH} characters`);
  }
  for (let i = 0; i < userId.length; i++) {
    const code = userId.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) fail('must not hold control characters');
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = userId.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) fail('must not hold lone surrogates');
      i++;
    } else if (code >= 0xdc00 && code <= 0xdfff) fail('must not hold lone surrogates');
  }
  return userId;
}
