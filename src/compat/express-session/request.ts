/**
 * What the middleware reads from a request: whether it is secure, its path, and the session IDs
 * its cookies carry.
 *
 * @packageDocumentation
 */
import type { TLSSocket } from 'node:tls';
import { readCookieValues } from '../../cookie.js';
import type { SessionRequest } from './context.js';
import { unsignValue } from './signature.js';

/** Whether the request came over HTTPS, as the `proxy` option says to judge it. @internal */
export function isSecure(req: SessionRequest, proxy: boolean | undefined): boolean {
  if ((req.socket as TLSSocket | undefined)?.encrypted === true) return true;
  if (proxy === false) return false;
  if (proxy !== true) return req.secure === true;
  const header = req.headers['x-forwarded-proto'];
  const value = (Array.isArray(header) ? header[0] : header) ?? '';
  return value.split(',')[0]!.trim().toLowerCase() === 'https';
}

/** The path of the URL the client asked for (before a mounted router took its prefix). @internal */
export function originalPathname(req: SessionRequest): string {
  const url = typeof req.originalUrl === 'string' ? req.originalUrl : req.url;
  if (typeof url !== 'string' || url.length === 0) return '/';
  let path = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    try {
      path = new URL(url).pathname;
    } catch {
      path = url;
    }
  }
  const cut = path.search(/[?#]/);
  if (cut >= 0) path = path.slice(0, cut);
  return path.length > 0 ? path : '/';
}

/** A cookie value as cookie-parser reads it: quotes dropped, percent-decoded when valid. */
function decodeCookieValue(raw: string): string {
  let value = raw;
  if (
    value.length >= 2 &&
    value.charCodeAt(0) === 34 &&
    value.charCodeAt(value.length - 1) === 34
  ) {
    value = value.slice(1, -1);
  }
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** `record[name]` when it is the record's own non-empty string. */
function ownString(record: Record<string, unknown> | undefined, name: string): string | undefined {
  if (
    typeof record !== 'object' ||
    record === null ||
    !Object.prototype.hasOwnProperty.call(record, name)
  )
    return undefined;
  const value = record[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/**
 * The distinct session IDs whose signature verifies among the request's cookies of this name:
 * every value in the Cookie header, in order; when none verifies, cookie-parser's
 * `req.signedCookies`, else a signed value in its `req.cookies`. Unsigned values are never used.
 * @internal
 */
export function readSessionIds(
  req: SessionRequest,
  name: string,
  keys: readonly Uint8Array[],
): string[] {
  const ids = new Set<string>();
  const header = req.headers.cookie;
  if (typeof header === 'string') {
    for (const raw of readCookieValues(header, name)) {
      const value = decodeCookieValue(raw);
      if (!value.startsWith('s:')) continue;
      const id = unsignValue(value.slice(2), keys);
      if (id !== false && id.length > 0) ids.add(id);
    }
  }
  if (ids.size > 0) return [...ids];
  const signed = ownString(req.signedCookies, name);
  if (signed !== undefined) return [signed];
  const raw = ownString(req.cookies, name);
  if (raw !== undefined && raw.startsWith('s:')) {
    const id = unsignValue(raw.slice(2), keys);
    if (id !== false && id.length > 0) return [id];
  }
  return [];
}
