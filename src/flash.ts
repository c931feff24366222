/**
 * Flash messages: one-time notices ("Signed in", "Wrong password") kept in the session until the
 * next page shows them. They work on Tessera's {@link Session}, so every adapter has them.
 *
 * Each message is stored under a key of its own, `tessera:flash:<seq>:<nonce>`: the manager
 * merges concurrent saves key by key, so two requests that each add a message both keep theirs,
 * where a single shared list would lose one of them.
 *
 * @packageDocumentation
 */
import { SessionError } from './errors.js';
import type { Session } from './session.js';

/** The prefix of the session keys that hold flash messages; applications must not use it. */
export const FLASH_KEY_PREFIX = 'tessera:flash:';

/** The most messages a session holds; older ones beyond it are dropped, oldest first. */
export const MAX_FLASH_MESSAGES = 20;

/** The longest message, in UTF-16 code units. */
export const MAX_FLASH_MESSAGE_LENGTH = 1_000;

/** The longest type, in UTF-16 code units. */
export const MAX_FLASH_TYPE_LENGTH = 32;

/**
 * A message's type. Any string of 1 to {@link MAX_FLASH_TYPE_LENGTH} characters; the usual ones
 * are listed so editors offer them.
 */
export type FlashType = 'info' | 'success' | 'warning' | 'error' | (string & {});

/** One flash message, as {@link takeFlash} answers it. */
export interface FlashMessage {
  /** The message's type, such as `'info'` or `'error'`. */
  readonly type: string;
  /** The text. Escape it before putting it in HTML. */
  readonly message: string;
}

/** A stored message's key, split into its parts. */
interface FlashKey {
  readonly key: string;
  readonly seq: number;
  readonly nonce: string;
}

/** The session's flash keys, oldest first. Keys under the prefix in any other form are dropped. */
function flashKeys(session: Session<any>): FlashKey[] {
  const found: FlashKey[] = [];
  for (const key of session.keys()) {
    if (!key.startsWith(FLASH_KEY_PREFIX)) continue;
    const rest = key.slice(FLASH_KEY_PREFIX.length);
    const colon = rest.indexOf(':');
    const seq = Number(rest.slice(0, colon));
    if (colon <= 0 || !Number.isSafeInteger(seq) || seq < 0) {
      session.delete(key);
      continue;
    }
    found.push({ key, seq, nonce: rest.slice(colon + 1) });
  }
  // Two requests that added a message at once share a seq; the nonce orders them.
  return found.sort((a, b) =>
    a.seq !== b.seq ? a.seq - b.seq : a.nonce < b.nonce ? -1 : a.nonce > b.nonce ? 1 : 0,
  );
}

/** Deletes all but the newest {@link MAX_FLASH_MESSAGES} keys and answers those. */
function trim(session: Session<any>, keys: FlashKey[]): FlashKey[] {
  const excess = keys.length - MAX_FLASH_MESSAGES;
  if (excess <= 0) return keys;
  for (const { key } of keys.slice(0, excess)) session.delete(key);
  return keys.slice(excess);
}

/** Eight hex digits from the CSPRNG: tells apart messages added by concurrent requests. */
function nonce(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(4));
  let hex = '';
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

function invalid(why: string): never {
  throw new SessionError('INVALID_DATA', `a flash ${why}`);
}

/**
 * Adds a one-time message to the session, to be shown by the next page that calls
 * {@link takeFlash}. The session keeps at most {@link MAX_FLASH_MESSAGES} (20) messages: adding
 * one more drops the oldest.
 *
 * `type` must be a string of 1 to {@link MAX_FLASH_TYPE_LENGTH} (32) characters and `message` a
 * string of at most {@link MAX_FLASH_MESSAGE_LENGTH} (1,000) characters; anything else throws
 * `SessionError` with code `INVALID_DATA` and changes nothing. On a destroyed session it throws
 * `SESSION_ENDED`, as {@link Session.set} does: to show a message after logout, end the user's
 * session with `regenerate()` and `setUser(null)` instead of `destroy()`.
 *
 * @example
 * ```ts
 * import { flash, takeFlash } from 'tessera-session/flash';
 *
 * app.post('/login', async (req, res) => {
 *   if (!passwordMatches(req.body.password)) {
 *     flash(req.session, 'error', 'Wrong password');
 *     return res.redirect(303, '/');
 *   }
 *   await req.session.login('alice');
 *   flash(req.session, 'info', 'Signed in');
 *   res.redirect(303, '/');
 * });
 *
 * app.get('/', (req, res) => {
 *   const notices = takeFlash(req.session); // [{ type: 'info', message: 'Signed in' }], once
 *   res.send(render(notices));
 * });
 * ```
 */
export function flash(session: Session<any>, type: FlashType, message: string): void {
  if (typeof type !== 'string' || type.length === 0 || type.length > MAX_FLASH_TYPE_LENGTH) {
    invalid(`type must be a string of 1 to ${MAX_FLASH_TYPE_LENGTH} characters`);
  }
  if (typeof message !== 'string' || message.length > MAX_FLASH_MESSAGE_LENGTH) {
    invalid(`message must be a string of at most ${MAX_FLASH_MESSAGE_LENGTH} characters`);
  }
  const keys = flashKeys(session);
  const seq = keys.length === 0 ? 0 : keys[keys.length - 1]!.seq + 1;
  const key = `${FLASH_KEY_PREFIX}${seq}:${nonce()}`;
  session.set(key, { type, message });
  keys.push({ key, seq, nonce: '' });
  trim(session, keys);
}

/**
 * Answers the session's flash messages, oldest first, and removes them: the next call answers
 * none of them. With `type`, only messages of that type are answered and removed; the others
 * stay for a later call. At most the newest {@link MAX_FLASH_MESSAGES} (20) are answered; any
 * older ones (left by concurrent requests) are removed unseen.
 *
 * A session without flash messages is left untouched, so reading an empty flash on every page
 * costs no store write. On a destroyed session it answers `[]`.
 *
 * Two concurrent requests that both take the same messages both answer them: a message is
 * shown at most once per request, not once in all. Messages added concurrently are never lost.
 *
 * @example
 * ```ts
 * const errors = takeFlash(session, 'error').map((m) => m.message);
 * const all = takeFlash(session); // [{ type: 'info', message: 'Signed in' }, ...]
 * ```
 */
export function takeFlash(session: Session<any>, type?: FlashType): FlashMessage[] {
  const taken: FlashMessage[] = [];
  for (const { key } of trim(session, flashKeys(session))) {
    const stored: unknown = session.get(key);
    const message = messageOf(stored);
    if (message === undefined) {
      session.delete(key);
    } else if (type === undefined || message.type === type) {
      session.delete(key);
      taken.push(message);
    }
  }
  return taken;
}

/** The message a stored value holds, as a fresh object, or undefined when it is not one. */
function messageOf(value: unknown): FlashMessage | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { type, message } = value as Record<string, unknown>;
  return typeof type === 'string' && typeof message === 'string' ? { type, message } : undefined;
}
