/**
 * The header transport: the signed session token carried in a request header
 * (`Authorization: Bearer <token>` by default) instead of a cookie, for API and mobile clients.
 * The token is the cookie's value (the session ID and its signature), so signing, hashing at
 * rest, expiry and revocation are the cookie's. A request that carries the header is read from
 * it alone, never from its cookie, so it carries no authority the browser added on its own.
 *
 * @packageDocumentation
 */
import type { RequestInfo } from './loading.js';
import { invalidOption } from './options.js';

/** Options of the header transport (the manager's `headerTransport` option). */
export interface HeaderTransportOptions {
  /**
   * The request header that carries the token. `authorization` takes it as
   * `Authorization: Bearer <token>` (another scheme, such as `Basic`, is not the transport and
   * leaves the request to its cookie); any other header carries the bare token. Case-insensitive.
   * @defaultValue `'authorization'`
   */
  header?: string;
  /**
   * The response header a new token goes out in: when a request that uses the transport logs
   * in, re-authenticates or regenerates, and after `session.issueToken()`.
   * @defaultValue `'session-token'`
   */
  responseHeader?: string;
  /**
   * Whether cookies still work beside the header. `false`: no cookie is read or set, and every
   * new session's token goes out in the response header.
   * @defaultValue true
   */
  cookie?: boolean;
}

const OWNER = 'SessionManager';
/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
/** Headers whose meaning the transport must not take over. */
const RESERVED_REQUEST = new Set(['cookie', 'host', 'origin', 'sec-fetch-site', 'content-length']);
const RESERVED_RESPONSE = new Set([
  'set-cookie',
  'cache-control',
  'content-length',
  'content-type',
  'transfer-encoding',
  'location',
]);
/** Longer than any token Tessera signs; a longer header value is refused without more reading. */
const MAX_TOKEN = 512;

function headerName(value: unknown, fallback: string, reserved: Set<string>, name: string): string {
  if (value === undefined) return fallback;
  const lower = typeof value === 'string' ? value.toLowerCase() : '';
  if (!HEADER_NAME.test(lower) || reserved.has(lower)) {
    invalidOption(OWNER, `headerTransport.${name} must be a header name of its own`);
  }
  return lower;
}

/**
 * The token of an `Authorization` value: the token for `Bearer <token>`, `null` for a Bearer
 * value without a usable token, `undefined` for another scheme (not this transport). The scheme
 * is case-insensitive; spaces and tabs around the token are dropped. One pass.
 */
export function bearerToken(value: string): string | null | undefined {
  let i = 0;
  while (i < value.length && isBlank(value[i])) i++;
  if (value.length - i < 6 || value.slice(i, i + 6).toLowerCase() !== 'bearer') return undefined;
  i += 6;
  if (i < value.length && !isBlank(value[i])) return undefined;
  return bareToken(value, i);
}

function isBlank(char: string | undefined): boolean {
  return char === ' ' || char === '\t';
}

/**
 * A bare token: trimmed of spaces and tabs, `null` when empty, too long or holding white space
 * or a comma (two values joined). One pass.
 */
function bareToken(value: string, from = 0): string | null {
  let start = from;
  let end = value.length;
  while (start < end && isBlank(value[start])) start++;
  while (end > start && isBlank(value[end - 1])) end--;
  if (start === end || end - start > MAX_TOKEN) return null;
  for (let i = start; i < end; i++) {
    const code = value.charCodeAt(i);
    if (code <= 0x20 || code === 0x2c || code === 0x7f) return null;
  }
  return value.slice(start, end);
}

/** The header transport's checked settings, as `SessionManager.headerTransport` shows them. */
export interface HeaderTransportSettings {
  /** The request header read, lower-cased. */
  readonly header: string;
  /** The response header a new token goes out in, lower-cased. */
  readonly responseHeader: string;
  /** Whether cookies still work beside the header. */
  readonly cookie: boolean;
}

/** The header transport as configured. */
export class HeaderTransport implements HeaderTransportSettings {
  /** The request header read, lower-cased. */
  readonly header: string;
  /** The response header a new token goes out in, lower-cased. */
  readonly responseHeader: string;
  /** Whether cookies still work beside the header. */
  readonly cookie: boolean;
  readonly #bearer: boolean;

  /** Checks the options; a bad one throws `SessionError` with code `INVALID_OPTION`. */
  constructor(options: HeaderTransportOptions) {
    this.header = headerName(options.header, 'authorization', RESERVED_REQUEST, 'header');
    this.responseHeader = headerName(
      options.responseHeader,
      'session-token',
      RESERVED_RESPONSE,
      'responseHeader',
    );
    if (options.cookie !== undefined && typeof options.cookie !== 'boolean') {
      invalidOption(OWNER, 'headerTransport.cookie must be a boolean');
    }
    this.cookie = options.cookie ?? true;
    this.#bearer = this.header === 'authorization';
  }

  /**
   * What the request carries for this transport: `undefined` when it does not use it (no
   * header, an empty one, or another `Authorization` scheme), `null` when it does without a
   * usable token, else the token.
   */
  tokenOf(info: RequestInfo): string | null | undefined {
    const value = info.header?.(this.header);
    if (typeof value !== 'string' || value === '') return undefined;
    return this.#bearer ? bearerToken(value) : bareToken(value);
  }
}

/** The transport an option asks for: `undefined` (off), `true` (the defaults) or options. */
export function headerTransportOf(
  option: HeaderTransportOptions | boolean | undefined,
): HeaderTransport | undefined {
  if (option === undefined || option === false) return undefined;
  if (option === true) return new HeaderTransport({});
  if (typeof option !== 'object' || option === null) {
    invalidOption(OWNER, 'headerTransport must be a boolean or an options object');
  }
  return new HeaderTransport(option);
}
