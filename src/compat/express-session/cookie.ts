/**
 * The `Cookie` of express-session: the settings of one session's cookie, kept with the session in
 * the store (`req.session.cookie`).
 *
 * @packageDocumentation
 */
import { serialize } from 'cookie';

/** The `SameSite` setting: `true` means `Strict`, `false` leaves the attribute out. */
export type SameSiteOption = boolean | 'lax' | 'strict' | 'none';

/**
 * Cookie settings, as given in the `cookie` option of the middleware. The defaults are express-session's:
 * `{ path: '/', httpOnly: true, secure: false, maxAge: null }` and no `SameSite` attribute.
 */
export interface CookieOptions {
  /**
   * Milliseconds from now until the cookie expires; `null` makes a browser-session cookie.
   * A `Date` is accepted too (deprecated by express-session).
   * @defaultValue null
   */
  maxAge?: number | Date | null;
  /** An absolute expiry; prefer {@link CookieOptions.maxAge}. The last of the two given wins. */
  expires?: Date | null;
  /** @defaultValue true */
  httpOnly?: boolean;
  /**
   * `true` sets `Secure` (and the cookie is then only sent over HTTPS); `'auto'` follows the
   * request (see the middleware's `proxy` option).
   * @defaultValue false
   */
  secure?: boolean | 'auto';
  /** @defaultValue `'/'` */
  path?: string;
  /** No `Domain` by default, so the cookie stays on the exact host. */
  domain?: string;
  /**
   * `'auto'` is `'none'` on secure requests and `'lax'` on others.
   * @defaultValue false (no attribute)
   */
  sameSite?: SameSiteOption | 'auto';
  /** Adds the `Partitioned` attribute (CHIPS). @defaultValue false */
  partitioned?: boolean;
  /** The `Priority` attribute. */
  priority?: 'low' | 'medium' | 'high';
}

/** What a cookie serializes to, and what is kept in the store under `cookie`. */
export interface CookieData {
  originalMaxAge: number | null;
  partitioned: boolean | undefined;
  priority: 'low' | 'medium' | 'high' | undefined;
  expires: Date | null | undefined;
  secure: boolean | 'auto' | undefined;
  httpOnly: boolean;
  domain: string | undefined;
  path: string;
  sameSite: SameSiteOption | undefined;
}

const CLOCK = Symbol('tessera.express-session.clock');

type Clocked = { [CLOCK]?: () => number };

function nowOf(cookie: Cookie): number {
  return ((cookie as Clocked)[CLOCK] ?? Date.now)();
}

function init(cookie: Cookie, options: CookieOptions | undefined): void {
  const target = cookie as unknown as Record<string, unknown>;
  cookie.path = '/';
  cookie.maxAge = null;
  cookie.httpOnly = true;
  if (options) {
    if (typeof options !== 'object') throw new TypeError('argument options must be a object');
    for (const key in options) {
      // `data` is computed; `__proto__` from stored JSON would otherwise replace the prototype.
      if (key !== 'data' && key !== '__proto__')
        target[key] = (options as Record<string, unknown>)[key];
    }
  }
  if (cookie.originalMaxAge === undefined || cookie.originalMaxAge === null) {
    cookie.originalMaxAge = cookie.maxAge as number | null;
  }
}

/**
 * A session's cookie settings. `maxAge` counts down from when it was last set; the middleware
 * resets it to `originalMaxAge` ({@link Session.touch}) when the response goes out.
 *
 * @example
 * ```ts
 * req.session.cookie.maxAge = 7 * 24 * 3600 * 1000; // remember me for a week
 * req.session.cookie.expires = null; // or: a browser-session cookie
 * ```
 */
export class Cookie {
  declare path: string;
  declare httpOnly: boolean;
  /** The `maxAge` the cookie was given, in milliseconds, or `null` for a browser-session cookie. */
  declare originalMaxAge: number | null;
  declare secure: boolean | 'auto' | undefined;
  declare domain: string | undefined;
  /** Never `'auto'` here: a new session's cookie resolves it for its request. */
  declare sameSite: SameSiteOption | undefined;
  declare partitioned: boolean | undefined;
  declare priority: 'low' | 'medium' | 'high' | undefined;
  /** @internal */
  declare _expires: Date | null | undefined;

  /** Throws a `TypeError` when `options` is not an object, or `maxAge` not a number or Date. */
  constructor(options?: CookieOptions) {
    init(this, options);
  }

  /** The absolute expiry, or `null` for a browser-session cookie. Setting it updates `originalMaxAge`. */
  get expires(): Date | null | undefined {
    return this._expires;
  }

  set expires(date: Date | null | undefined) {
    this._expires = date;
    this.originalMaxAge = this.maxAge as number | null;
  }

  /**
   * Milliseconds left until `expires`. Setting it moves `expires` to now plus the value. For a
   * browser-session cookie it reads `null`, as express-session's does; the type says
   * `number | undefined`, as @types/express-session's does, so that the two stay assignable.
   */
  get maxAge(): number | undefined {
    const expires = this._expires;
    return expires instanceof Date
      ? expires.valueOf() - nowOf(this)
      : (expires as unknown as undefined);
  }

  set maxAge(ms: number | Date | null | undefined) {
    if (ms && typeof ms !== 'number' && !(ms instanceof Date)) {
      throw new TypeError('maxAge must be a number or Date');
    }
    this.expires =
      typeof ms === 'number' ? new Date(nowOf(this) + ms) : (ms as Date | null | undefined);
  }

  /** The attributes the cookie is serialized with, and what the store keeps. */
  get data(): CookieData {
    return {
      originalMaxAge: this.originalMaxAge,
      partitioned: this.partitioned,
      priority: this.priority,
      expires: this._expires,
      secure: this.secure,
      httpOnly: this.httpOnly,
      domain: this.domain,
      path: this.path,
      sameSite: this.sameSite,
    };
  }

  /** A `Set-Cookie` value for `name=value` with these attributes (the value is URL-encoded). */
  serialize(name: string, value: string): string {
    return serializeCookie(name, value, this.data);
  }

  /** What `JSON.stringify` stores: {@link Cookie.data}. */
  toJSON(): CookieData {
    return this.data;
  }
}

/**
 * A Set-Cookie value. Throws `TypeError('option expires is invalid')` for an expiry that is not a
 * valid Date, and the `cookie` package's errors for an invalid name, path or domain.
 * @internal
 */
export function serializeCookie(name: string, value: string, data: CookieData): string {
  const expires = data.expires as unknown;
  if (expires && !(expires instanceof Date && Number.isFinite(expires.valueOf()))) {
    throw new TypeError('option expires is invalid');
  }
  return serialize(name, value, {
    path: data.path,
    domain: data.domain,
    expires: expires ? (expires as Date) : undefined,
    httpOnly: data.httpOnly,
    secure: Boolean(data.secure),
    partitioned: data.partitioned,
    priority: data.priority,
    // An unresolved 'auto' is refused by the serializer, as express-session's is.
    sameSite: data.sameSite as SameSiteOption | undefined,
  });
}

/** A cookie that reads time from `clock` rather than `Date.now`. @internal */
export function makeCookie(options: CookieOptions | undefined, clock: () => number): Cookie {
  const cookie = Object.create(Cookie.prototype) as Cookie;
  Object.defineProperty(cookie, CLOCK, { value: clock });
  init(cookie, options);
  return cookie;
}
