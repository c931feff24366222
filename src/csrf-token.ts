/**
 * Session-bound synchronizer tokens (OWASP CSRF Cheat Sheet), for what Fetch metadata cannot
 * tell apart: a sibling subdomain (same site, another origin) and browsers that send neither
 * `Sec-Fetch-Site` nor `Origin`.
 *
 * Each session holds a 32-byte secret, kept with its data under a reserved key that `get`,
 * `has`, `keys` and `toJSON` do not show. A token is a fresh 32-byte random mask followed by the
 * secret XOR the mask, in base64url: every token differs, so a compressed response (BREACH)
 * never repeats one, yet each unmasks to the same secret. The secret is dropped whenever the
 * session moves to a new ID (`regenerate`, `login`, `setUser`), so tokens issued before a login
 * are dead after it.
 *
 * @packageDocumentation
 */
import type { RequestContext } from './context.js';
import { isSafeMethod } from './cross-origin.js';
import { base64UrlDigit, fromBase64Url, toBase64Url } from './crypto.js';
import { SessionError } from './errors.js';
import type { SessionManager } from './manager.js';
import type { Session, SessionState } from './session.js';
import { hostOf, ownerOf, stateOf } from './session.js';
import { CSRF_SECRET_KEY, markChanged } from './session-data.js';

/** Where requests carry their token; see `SessionManagerOptions.csrfTokens`. */
export interface CsrfTokenOptions {
  /**
   * The form field a posted form carries the token in.
   * @defaultValue `'_csrf'`
   */
  field?: string;
  /**
   * The request header scripts send the token in, matched in any case.
   * @defaultValue `'x-csrf-token'`
   */
  header?: string;
}

/** The checked token options, as `SessionManager.csrfTokens` answers them. */
export interface CsrfSettings {
  /** The form field. */
  readonly field: string;
  /** The request header, in lower case. */
  readonly header: string;
}

/** The default form field of a token. */
export const DEFAULT_CSRF_FIELD = '_csrf';

/** The default request header of a token. */
export const DEFAULT_CSRF_HEADER = 'x-csrf-token';

const SECRET_BYTES = 32;
/** Base64url characters of the secret: 256 bits in 43 characters, the last 2 bits zero. */
const SECRET_LENGTH = 43;
/** Base64url characters of a token: mask and masked secret, 512 bits in 86, the last 4 bits zero. */
const TOKEN_LENGTH = 86;
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;
const MAX_FIELD_LENGTH = 64;

function invalidOption(message: string): never {
  throw new SessionError('INVALID_OPTION', `SessionManager: csrfTokens ${message}`);
}

/**
 * The checked `csrfTokens` option: `undefined` when off (`undefined` or `false`), the defaults
 * for `true`, and the given names otherwise. Throws `INVALID_OPTION` for anything else, a header
 * that is not an HTTP token of at most 64 characters, or a field that is not 1 to 64 characters.
 * @internal
 */
export function csrfSettingsOf(option: unknown): CsrfSettings | undefined {
  if (option === undefined || option === false) return undefined;
  if (option === true) return { field: DEFAULT_CSRF_FIELD, header: DEFAULT_CSRF_HEADER };
  if (typeof option !== 'object' || option === null) {
    invalidOption('must be true, false or { field, header }');
  }
  const { field = DEFAULT_CSRF_FIELD, header = DEFAULT_CSRF_HEADER } = option as CsrfTokenOptions;
  if (typeof field !== 'string' || field.length === 0 || field.length > MAX_FIELD_LENGTH) {
    invalidOption(`field must be a string of 1 to ${MAX_FIELD_LENGTH} characters`);
  }
  if (typeof header !== 'string' || !HEADER_NAME.test(header)) {
    invalidOption('header must be a header name of 1 to 64 characters');
  }
  return { field, header: header.toLowerCase() };
}

/**
 * Decodes exactly `length` characters of canonical base64url (unused trailing bits zero), so that
 * one byte string has one spelling; `null` otherwise. Constant work for any other length.
 */
function decodeExact(text: unknown, length: number, unusedBits: number): Uint8Array | null {
  if (typeof text !== 'string' || text.length !== length) return null;
  const last = base64UrlDigit(text.charCodeAt(length - 1));
  if (last < 0 || (last & ((1 << unusedBits) - 1)) !== 0) return null;
  return fromBase64Url(text);
}

/** A new secret from the CSPRNG, as base64url. @internal */
export function newCsrfSecret(): string {
  return toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(SECRET_BYTES)));
}

/** The secret's bytes when `value` is a secret {@link newCsrfSecret} makes; `null` otherwise. @internal */
export function csrfSecretBytes(value: unknown): Uint8Array | null {
  return decodeExact(value, SECRET_LENGTH, 2);
}

/**
 * A token for `secret` (32 bytes): `mask ‖ secret ⊕ mask` in base64url, 86 characters. The mask
 * is 32 fresh random bytes unless given (tests give one). @internal
 */
export function maskCsrfSecret(
  secret: Uint8Array,
  mask: Uint8Array = globalThis.crypto.getRandomValues(new Uint8Array(SECRET_BYTES)),
): string {
  if (secret.length !== SECRET_BYTES || mask.length !== SECRET_BYTES) {
    throw new TypeError('a token secret and its mask are 32 bytes each');
  }
  const token = new Uint8Array(2 * SECRET_BYTES);
  token.set(mask);
  for (let i = 0; i < SECRET_BYTES; i++) token[SECRET_BYTES + i] = secret[i]! ^ mask[i]!;
  return toBase64Url(token);
}

/**
 * The secret a token carries, or `null` when `token` is not a string of exactly 86 canonical
 * base64url characters. Untrusted input: the length is checked before anything is read, and
 * the rest is one pass. @internal
 */
export function unmaskCsrfToken(token: unknown): Uint8Array | null {
  const bytes = decodeExact(token, TOKEN_LENGTH, 4);
  if (bytes === null) return null;
  const secret = new Uint8Array(SECRET_BYTES);
  for (let i = 0; i < SECRET_BYTES; i++) secret[i] = bytes[i]! ^ bytes[SECRET_BYTES + i]!;
  return secret;
}

/** Whether `token` unmasks to `secret`, compared in constant time. @internal */
export function csrfTokenMatches(secret: Uint8Array, token: unknown): boolean {
  const carried = unmaskCsrfToken(token);
  if (carried === null || secret.length !== SECRET_BYTES) return false;
  let diff = 0;
  for (let i = 0; i < SECRET_BYTES; i++) diff |= carried[i]! ^ secret[i]!;
  return diff === 0;
}

/** The token settings of the manager behind a session, `undefined` when tokens are off. */
function settingsFor(owner: unknown): CsrfSettings | undefined {
  return (owner as SessionManager<any> | undefined)?.csrfTokens;
}

/**
 * A fresh token for a session's state, making its secret first if it has none (which makes an
 * anonymous session one to store). Throws `INVALID_OPTION` when the manager's `csrfTokens` is
 * off, and `SESSION_ENDED` on a destroyed session. @internal
 */
export function issueCsrfToken(state: SessionState, owner: object): string {
  if (settingsFor(owner) === undefined) {
    throw new SessionError(
      'INVALID_OPTION',
      'csrfToken() needs the manager option csrfTokens, which also turns the check on',
    );
  }
  if (state.ended) {
    throw new SessionError('SESSION_ENDED', 'the session was destroyed; it has no token');
  }
  let secret = csrfSecretBytes(state.data[CSRF_SECRET_KEY]);
  if (secret === null) {
    const text = newCsrfSecret();
    state.data[CSRF_SECRET_KEY] = text;
    markChanged(state, CSRF_SECRET_KEY);
    secret = csrfSecretBytes(text)!;
  }
  return maskCsrfSecret(secret);
}

/** Whether `submitted` is a token of the session's current secret. */
function holdsToken(session: Session<any>, submitted: unknown): boolean {
  const state = stateOf(session);
  if (state.ended || !Object.hasOwn(state.data, CSRF_SECRET_KEY)) return false;
  const secret = csrfSecretBytes(state.data[CSRF_SECRET_KEY]);
  return secret !== null && csrfTokenMatches(secret, submitted);
}

function invalidToken(): SessionError {
  return new SessionError('CSRF_TOKEN_INVALID', 'the request carries no valid CSRF token');
}

/**
 * Checks a token a request submitted against the session's secret. Throws `SessionError` with
 * code `CSRF_TOKEN_INVALID` (adapters answer 403) unless `submitted` is a token
 * `session.csrfToken()` gave, in this session since its last new ID. The adapters run this
 * check on every unsafe request themselves; call it in code that loads sessions with
 * `manager.load` directly.
 *
 * @example
 * ```ts
 * const form = new URLSearchParams(await readBody(req));
 * verifyCsrfToken(session, form.get('_csrf'));
 * ```
 */
export function verifyCsrfToken(session: Session<any>, submitted: unknown): void {
  if (!holdsToken(session, submitted)) throw invalidToken();
}

/** Whether a Content-Type is a form a browser posts, whose body may carry the field. @internal */
export function isFormContentType(contentType: string | null | undefined): boolean {
  if (typeof contentType !== 'string') return false;
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/x-www-form-urlencoded' || type === 'multipart/form-data';
}

/** The value of `field` in a parsed body: a plain object, `FormData` or `URLSearchParams`. */
function fieldOf(body: unknown, field: string): unknown {
  if (typeof body !== 'object' || body === null) return undefined;
  if (
    body instanceof URLSearchParams ||
    (typeof FormData === 'function' && body instanceof FormData)
  ) {
    return body.get(field);
  }
  return Object.hasOwn(body, field) ? (body as Record<string, unknown>)[field] : undefined;
}

/**
 * The token names when the request of `session` must carry a token: tokens on, a method other
 * than GET, HEAD and OPTIONS, and a session not read from the header transport (the browser adds
 * no such header on its own, so that request carries no ambient authority to forge). `undefined`
 * when the request needs none. @internal
 */
export function csrfCheckOf(
  session: Session<any>,
  method: string | undefined,
): CsrfSettings | undefined {
  const settings = settingsFor(ownerOf(session));
  if (settings === undefined || (method !== undefined && isSafeMethod(method))) return undefined;
  return (hostOf(session) as RequestContext).viaHeader ? undefined : settings;
}

/**
 * The check every adapter runs once the session is loaded: `undefined` for a request that
 * passes (see {@link csrfCheckOf}, or a valid token), the `CSRF_TOKEN_INVALID` error to answer
 * otherwise. The token is the header's value when the request has the header, else the form
 * field of `body`, the body as parsed by then. A header sent twice, a field sent twice, or a
 * file fails. @internal
 */
export function csrfRefusal(
  session: Session<any>,
  method: string | undefined,
  header: (name: string) => unknown,
  body: unknown,
): SessionError | undefined {
  const settings = csrfCheckOf(session, method);
  if (settings === undefined) return undefined;
  const sent = header(settings.header);
  const submitted =
    sent === undefined || sent === null || sent === '' ? fieldOf(body, settings.field) : sent;
  return holdsToken(session, submitted) ? undefined : invalidToken();
}
