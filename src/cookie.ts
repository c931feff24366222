/**
 * Pure cookie utilities: option validation, reading the session cookie from a Cookie header,
 * and writing Set-Cookie values. No framework, no I/O.
 *
 * @packageDocumentation
 */
import { serialize } from 'cookie';
import { SessionError } from './errors.js';

/** How the session cookie is written. */
export interface CookieOptions {
  /**
   * The cookie name. When the cookie is Secure, has no Domain and Path is `/`, the `__Host-`
   * prefix is added (see {@link CookieOptions.hostPrefix}).
   * @defaultValue `'sid'`
   */
  name?: string;
  /** @defaultValue `'/'` */
  path?: string;
  /** No Domain by default, so the cookie stays on the exact host. */
  domain?: string;
  /**
   * Never left to the browser's default. `'none'` requires `secure: true`.
   * @defaultValue `'lax'`
   */
  sameSite?: 'lax' | 'strict' | 'none';
  /**
   * `'auto'` marks the cookie Secure when the request is HTTPS (see the manager's `trustProxy`).
   * @defaultValue `'auto'`
   */
  secure?: 'auto' | boolean;
  /** @defaultValue true */
  httpOnly?: boolean;
  /**
   * Adds the `__Host-` prefix to Secure cookies that have no Domain and Path `/`.
   * @defaultValue true
   */
  hostPrefix?: boolean;
  /**
   * Gives the cookie a Max-Age reaching the session's absolute deadline. With `false` it is a
   * browser-session cookie. Either way the server enforces expiry: Max-Age is never trusted.
   * @defaultValue true
   */
  persistent?: boolean;
  /** Adds the `Partitioned` attribute (CHIPS); requires `secure: true`. @defaultValue false */
  partitioned?: boolean;
}

/** Cookie options after defaults and validation. */
export interface ResolvedCookieOptions {
  readonly name: string;
  readonly path: string;
  readonly domain: string | undefined;
  readonly sameSite: 'lax' | 'strict' | 'none';
  readonly secure: 'auto' | boolean;
  readonly httpOnly: boolean;
  readonly hostPrefix: boolean;
  readonly persistent: boolean;
  readonly partitioned: boolean;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PATH = /^\/[\u0021-\u002B\u002D-\u003A\u003C-\u007E]*$/;
const DOMAIN = /^\.?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

function invalid(message: string): never {
  throw new SessionError('INVALID_OPTION', `cookie: ${message}`);
}

/**
 * Applies defaults and rejects unsafe or impossible combinations with an `INVALID_OPTION`
 * error: SameSite=None without Secure, a `__Host-` name with a Domain or another Path, a
 * `__Secure-` name that is not always Secure, and any control character, `;`, `,` or white
 * space in the name, path or domain.
 */
export function resolveCookieOptions(options: CookieOptions = {}): ResolvedCookieOptions {
  const name = options.name ?? 'sid';
  const path = options.path ?? '/';
  const domain = options.domain;
  const sameSite = options.sameSite ?? 'lax';
  const secure = options.secure ?? 'auto';
  if (typeof name !== 'string' || !TOKEN.test(name))
    invalid(`invalid name ${JSON.stringify(name)}`);
  if (typeof path !== 'string' || !PATH.test(path)) invalid(`invalid path ${JSON.stringify(path)}`);
  if (domain !== undefined && (typeof domain !== 'string' || !DOMAIN.test(domain))) {
    invalid(`invalid domain ${JSON.stringify(domain)}`);
  }
  if (!['lax', 'strict', 'none'].includes(sameSite))
    invalid(`sameSite must be 'lax', 'strict' or 'none'`);
  if (secure !== 'auto' && typeof secure !== 'boolean')
    invalid(`secure must be 'auto', true or false`);
  if (sameSite === 'none' && secure !== true) invalid('SameSite=None requires secure: true');
  if (options.partitioned === true && secure !== true) invalid('partitioned requires secure: true');
  const lower = name.toLowerCase();
  if (lower.startsWith('__host-')) {
    if (domain !== undefined) invalid('a __Host- cookie cannot have a Domain');
    if (path !== '/') invalid('a __Host- cookie must have Path=/');
    if (secure !== true) invalid('a __Host- cookie requires secure: true');
  }
  if (lower.startsWith('__secure-') && secure !== true)
    invalid('a __Secure- cookie requires secure: true');
  return {
    name,
    path,
    domain,
    sameSite,
    secure,
    httpOnly: options.httpOnly ?? true,
    hostPrefix: options.hostPrefix ?? true,
    persistent: options.persistent ?? true,
    partitioned: options.partitioned ?? false,
  };
}

/** Whether the cookie carries the Secure attribute on a request that is (or is not) HTTPS. */
export function isSecureCookie(options: ResolvedCookieOptions, httpsRequest: boolean): boolean {
  return options.secure === 'auto' ? httpsRequest : options.secure;
}

/** The cookie name on a request that is (or is not) HTTPS: `__Host-` is added where it applies. */
export function cookieNameFor(options: ResolvedCookieOptions, httpsRequest: boolean): string {
  const prefixed =
    options.hostPrefix &&
    isSecureCookie(options, httpsRequest) &&
    options.domain === undefined &&
    options.path === '/' &&
    !options.name.startsWith('__');
  return prefixed ? `__Host-${options.name}` : options.name;
}

/**
 * Every value of the cookie named exactly `name` (case-sensitive) in a Cookie header, in the
 * order sent: all of them, however many, since a cookie tossed in from a sibling subdomain must
 * not push the real one out of reach. Never throws; a missing or empty header gives `[]`.
 *
 * The header is read as pairs separated by `;`. In each pair, everything before its first `=`,
 * less leading white space (what `String.prototype.trim` removes), must equal `name`; the value
 * is everything after that `=` up to the next `;`, with white space trimmed from both ends. A
 * pair without `=` is ignored. Values are returned as sent: no percent-decoding, quotes kept.
 * `name` is a cookie-name token, as {@link resolveCookieOptions} accepts.
 *
 * One forward pass, linear in the header's length whatever it holds: each step searches from
 * where the last one ended for the next occurrence of `name`, decides from the white space just
 * before it whether it begins its pair, and ends after that pair.
 */
export function readCookieValues(header: string | null | undefined, name: string): string[] {
  if (typeof header !== 'string') return [];
  // Nearly every request carries the cookie once: its value goes into an array of one, which
  // costs less than growing an empty array (this runs on every request).
  let values: string[] | undefined;
  // Where the unread part starts: 0 or just after a `;`, so always where a pair starts.
  let from = 0;
  while (from <= header.length) {
    const at = header.indexOf(name, from);
    if (at === -1) break;
    let end = header.indexOf(';', at);
    if (end === -1) end = header.length;
    // Only white space back to a `;` (or to `from`) when the name begins its pair; a name that
    // does not begin its pair cannot match anywhere in it, so the pair is passed either way.
    const before = header.slice(from, at).trimEnd();
    const equals = at + name.length;
    if ((before === '' || before.endsWith(';')) && header.charCodeAt(equals) === 61 /* = */) {
      const value = header.slice(equals + 1, end).trim();
      if (values === undefined) values = [value];
      else values.push(value);
    }
    from = end + 1;
  }
  return values ?? [];
}

/** What a session cookie's value is made of: base64url and the signature's dot. */
const PLAIN_VALUE = /^[A-Za-z0-9_.-]*$/;

/**
 * The attributes after `name=value` (Path, Domain, SameSite, Secure, HttpOnly, Partitioned),
 * formatted once per options, name and scheme by the `cookie` library and then reused.
 */
const attributeCache = new WeakMap<ResolvedCookieOptions, Map<string, string>>();

/** The attributes as the `cookie` library takes them. */
function libraryOptions(options: ResolvedCookieOptions, secure: boolean) {
  return {
    path: options.path,
    domain: options.domain,
    sameSite: options.sameSite,
    secure,
    httpOnly: options.httpOnly,
    partitioned: options.partitioned,
  };
}

function attributesOf(options: ResolvedCookieOptions, name: string, secure: boolean): string {
  let byName = attributeCache.get(options);
  if (byName === undefined) attributeCache.set(options, (byName = new Map()));
  const cacheKey = `${secure ? 's' : 'p'}${name}`;
  let attributes = byName.get(cacheKey);
  if (attributes === undefined) {
    const formatted = serialize(name, '', libraryOptions(options, secure));
    attributes = formatted.slice(name.length + 1);
    byName.set(cacheKey, attributes);
  }
  return attributes;
}

/** A Set-Cookie value that stores `value`, with Max-Age in seconds when given. */
export function serializeCookie(
  options: ResolvedCookieOptions,
  name: string,
  value: string,
  httpsRequest: boolean,
  maxAgeSeconds: number | undefined,
): string {
  const secure = isSecureCookie(options, httpsRequest);
  if (
    !PLAIN_VALUE.test(value) ||
    (maxAgeSeconds !== undefined && !Number.isInteger(maxAgeSeconds))
  ) {
    return serialize(name, value, { ...libraryOptions(options, secure), maxAge: maxAgeSeconds });
  }
  const maxAge = maxAgeSeconds === undefined ? '' : `; Max-Age=${maxAgeSeconds}`;
  return `${name}=${value}${maxAge}${attributesOf(options, name, secure)}`;
}

/** A Set-Cookie value that removes the cookie: same Name, Path and Domain, expired. */
export function serializeClearingCookie(
  options: ResolvedCookieOptions,
  name: string,
  httpsRequest: boolean,
): string {
  return serialize(name, '', {
    ...libraryOptions(options, isSecureCookie(options, httpsRequest)),
    expires: new Date(0),
    maxAge: 0,
  });
}
