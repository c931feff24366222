/**
 * Cross-origin protection: the one decision whether an unsafe request may reach its session.
 * Browsers mark every request with where it came from (`Sec-Fetch-Site`); older ones send only
 * `Origin`, which is compared with the request's `Host`. A request with neither header comes from
 * something that is not a browser, which carries no cookie it did not choose to send, and passes.
 * Adapters hand over the request's method and headers; the decision is taken here only.
 *
 * @packageDocumentation
 */
import { SessionError } from './errors.js';
import type { RequestInfo } from './loading.js';
import { invalidOption } from './options.js';

/** Options of the cross-origin protection (the manager's `crossOrigin` option). */
export interface CrossOriginOptions {
  /**
   * Origins whose unsafe requests are allowed even when they are cross-origin, as
   * `scheme://host[:port]` (`https://app.example.com`): a front end on another origin, or this
   * application's public origin behind a proxy that rewrites `Host`. Anything with a path, a
   * query or credentials is refused at start-up.
   * @defaultValue none
   */
  trustedOrigins?: readonly string[];
  /**
   * Paths that are never refused, for callers that post from elsewhere by design (webhooks). A
   * string matches that path and every path below it (`'/webhooks'` matches `/webhooks` and
   * `/webhooks/stripe`, not `/webhooksx`); a RegExp is tested against the path without its
   * query. A path holding a dot segment, a backslash, `//` or an encoded dot, slash or backslash
   * never bypasses, so `/webhooks/../account` is checked like `/account`.
   * @defaultValue none
   */
  bypass?: readonly (string | RegExp)[];
}

/**
 * Why a request was refused.
 *
 * - `sec-fetch-site`: the browser said the request came from another origin (`cross-site`,
 *   `same-site`) or said something unknown.
 * - `origin-mismatch`: no `Sec-Fetch-Site`, and the `Origin`'s host and port differ from `Host`.
 * - `origin-invalid`: no `Sec-Fetch-Site`, and the `Origin` is `null` (a sandboxed frame, a
 *   `file:` page, a redirect across origins) or not an origin at all.
 */
export type CrossOriginReason = 'sec-fetch-site' | 'origin-mismatch' | 'origin-invalid';

/** Whether a method is safe (GET, HEAD, OPTIONS): those are never refused. */
export function isSafeMethod(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
}

/** The longest `Origin` read; a longer one is not an origin a browser sends. */
const MAX_ORIGIN = 2048;

/** An `Origin` split into its scheme and its host (with port), lower-cased. */
interface ParsedOrigin {
  scheme: string;
  host: string;
}

function isAlpha(code: number): boolean {
  return (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/**
 * Reads an `Origin` as a browser serializes it, `scheme://host[:port]` with nothing after the
 * host; answers undefined for anything else (`null` included). One pass over the text.
 */
export function parseOrigin(origin: string): ParsedOrigin | undefined {
  if (origin.length > MAX_ORIGIN) return undefined;
  const separator = origin.indexOf('://');
  if (separator < 1 || !isAlpha(origin.charCodeAt(0))) return undefined;
  for (let i = 1; i < separator; i++) {
    const code = origin.charCodeAt(i);
    // + - .
    if (!isAlpha(code) && !isDigit(code) && code !== 0x2b && code !== 0x2d && code !== 0x2e) {
      return undefined;
    }
  }
  const start = separator + 3;
  if (start === origin.length) return undefined;
  for (let i = start; i < origin.length; i++) {
    const code = origin.charCodeAt(i);
    // Controls, space, non-ASCII, and / ? # @ \ end or hide a host: not an origin.
    if (code <= 0x20 || code >= 0x7f) return undefined;
    if (code === 0x2f || code === 0x3f || code === 0x23 || code === 0x40 || code === 0x5c) {
      return undefined;
    }
  }
  return {
    scheme: origin.slice(0, separator).toLowerCase(),
    host: origin.slice(start).toLowerCase(),
  };
}

/** Whether an origin's host and port are the request's `Host`, default ports aside. */
function sameHost(origin: ParsedOrigin, host: string | null | undefined): boolean {
  if (typeof host !== 'string' || host.length === 0 || host.length > MAX_ORIGIN) return false;
  const requested = host.toLowerCase();
  if (requested === origin.host) return true;
  const port = origin.scheme === 'https' ? ':443' : origin.scheme === 'http' ? ':80' : undefined;
  return (
    port !== undefined &&
    requested.length === origin.host.length + port.length &&
    requested.startsWith(origin.host) &&
    requested.endsWith(port)
  );
}

/**
 * The decision itself, a pure function of four request facts: `undefined` to allow, or why to
 * refuse. Trusted origins and bypassed paths are the guard's business ({@link CrossOriginGuard}).
 *
 * 1. GET, HEAD and OPTIONS are allowed.
 * 2. `Sec-Fetch-Site: same-origin` or `none` (the user typed the address) is allowed; any other
 *    value is refused.
 * 3. Without `Sec-Fetch-Site`: no `Origin` is allowed (not a browser, or one that sends neither);
 *    an `Origin` whose host and port are `Host`'s is allowed; any other `Origin`, `null` and
 *    unreadable ones included, is refused.
 *
 * An empty header counts as absent. Never throws; linear in the headers' length.
 */
export function crossOriginVerdict(
  method: string,
  secFetchSite: string | null | undefined,
  origin: string | null | undefined,
  host: string | null | undefined,
): CrossOriginReason | undefined {
  if (isSafeMethod(method)) return undefined;
  if (typeof secFetchSite === 'string' && secFetchSite !== '') {
    return secFetchSite === 'same-origin' || secFetchSite === 'none' ? undefined : 'sec-fetch-site';
  }
  if (typeof origin !== 'string' || origin === '') return undefined;
  const parsed = parseOrigin(origin);
  if (parsed === undefined) return 'origin-invalid';
  return sameHost(parsed, host) ? undefined : 'origin-mismatch';
}

/** The path of a request target (`/a/b?q` or `https://host/a/b?q`), without query or fragment. */
function pathOf(url: string | null | undefined): string | undefined {
  if (typeof url !== 'string') return undefined;
  if (url.startsWith('/')) {
    const end = url.search(/[?#]/);
    return end === -1 ? url : url.slice(0, end);
  }
  try {
    return new URL(url).pathname;
  } catch {
    return undefined;
  }
}

/** A path that means what it says: no dot segment, no backslash, no `//`, no encoded dot or slash. */
function isPlainPath(path: string): boolean {
  return !/%2e|%2f|%5c|\\|\/\/|(?:^|\/)\.\.?(?:\/|$)/i.test(path);
}

function matchesPrefix(path: string, prefix: string): boolean {
  if (prefix.endsWith('/')) return path.startsWith(prefix);
  return path === prefix || (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 0x2f);
}

/** A request's header, as the adapter reads it. */
function headerOf(info: RequestInfo, name: string): string | null | undefined {
  return info.header?.(name);
}

/**
 * Cross-origin protection as configured: the decision of {@link crossOriginVerdict}, then the
 * trusted origins and the bypassed paths for a request it would refuse.
 */
export class CrossOriginGuard {
  readonly #trusted: ReadonlySet<string>;
  readonly #bypass: readonly (string | RegExp)[];

  /** Checks the options; a bad one throws `SessionError` with code `INVALID_OPTION`. */
  constructor(options: CrossOriginOptions = {}, owner = 'SessionManager') {
    if (typeof options !== 'object' || options === null) {
      invalidOption(owner, 'crossOrigin must be false, true or an options object');
    }
    const trusted = options.trustedOrigins ?? [];
    const bypass = options.bypass ?? [];
    if (!Array.isArray(trusted)) invalidOption(owner, 'crossOrigin.trustedOrigins must be a list');
    if (!Array.isArray(bypass)) invalidOption(owner, 'crossOrigin.bypass must be a list');
    this.#trusted = new Set(trusted.map((origin: unknown) => trustedOrigin(owner, origin)));
    for (const pattern of bypass as unknown[]) {
      if (!(pattern instanceof RegExp) && !(typeof pattern === 'string' && pattern[0] === '/')) {
        invalidOption(owner, 'crossOrigin.bypass holds paths starting with "/" and RegExps');
      }
    }
    this.#bypass = [...bypass];
  }

  /**
   * Why the request must be refused, or undefined. A request without a method (a caller of
   * `manager.load` that gives none) or without a way to read headers is not checked. Reads no
   * header for a safe method.
   */
  check(info: RequestInfo): CrossOriginReason | undefined {
    const method = info.method;
    if (typeof method !== 'string' || isSafeMethod(method)) return undefined;
    const origin = headerOf(info, 'origin');
    const reason = crossOriginVerdict(
      method,
      headerOf(info, 'sec-fetch-site'),
      origin,
      headerOf(info, 'host') ?? headerOf(info, ':authority'),
    );
    if (reason === undefined) return undefined;
    if (typeof origin === 'string' && this.#trusted.has(origin)) return undefined;
    if (this.#bypass.length > 0 && this.#bypassed(info)) return undefined;
    return reason;
  }

  #bypassed(info: RequestInfo): boolean {
    const path = pathOf(info.url);
    if (path === undefined || !isPlainPath(path)) return false;
    for (const pattern of this.#bypass) {
      if (typeof pattern === 'string') {
        if (matchesPrefix(path, pattern)) return true;
      } else {
        pattern.lastIndex = 0;
        if (pattern.test(path)) return true;
      }
    }
    return false;
  }
}

/** A trusted origin in the form browsers send it; throws `INVALID_OPTION` for anything else. */
function trustedOrigin(owner: string, origin: unknown): string {
  const refuse = (): never =>
    invalidOption(owner, `crossOrigin.trustedOrigins: ${String(origin)} is not an origin`);
  if (typeof origin !== 'string') return refuse();
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return refuse();
  }
  const bare =
    url.origin !== 'null' &&
    url.username === '' &&
    url.password === '' &&
    url.pathname === '/' &&
    url.search === '' &&
    url.hash === '' &&
    !/[?#]/.test(origin);
  return bare ? url.origin : refuse();
}

/** The error a refused request fails with: code `CROSS_ORIGIN_REFUSED`, status 403. */
export function crossOriginError(reason: CrossOriginReason): SessionError {
  const why =
    reason === 'sec-fetch-site'
      ? 'the browser marked it as sent from another site'
      : reason === 'origin-mismatch'
        ? 'its Origin differs from its Host'
        : 'its Origin is null or unreadable';
  return new SessionError('CROSS_ORIGIN_REFUSED', `cross-origin request refused: ${why}`);
}
