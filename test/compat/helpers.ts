import { once } from 'node:events';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SessionRequest } from '../../src/compat/express-session/index.js';
import type { Session } from '../../src/compat/express-session/index.js';

// The tests store keys of every kind; an application declares its own (see SessionData).
declare module '../../src/compat/express-session/index.js' {
  interface SessionData {
    [key: string]: unknown;
  }
}

/** A server listening on an ephemeral loopback port. */
export interface Running {
  url: string;
  server: Server;
  close: () => Promise<void>;
}

/** Starts `listener` (an Express app or a plain handler) on 127.0.0.1, port 0. */
export async function listen(listener: RequestListener): Promise<Running> {
  const server = createServer(listener);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One Set-Cookie header, parsed. Attribute names are lower-cased; valueless ones are `true`. */
export interface SetCookie {
  name: string;
  value: string;
  attributes: Record<string, string | true>;
}

export function parseSetCookie(header: string): SetCookie {
  const [pair = '', ...rest] = header.split(';');
  const eq = pair.indexOf('=');
  const attributes: Record<string, string | true> = {};
  for (const part of rest) {
    const at = part.indexOf('=');
    if (at === -1) attributes[part.trim().toLowerCase()] = true;
    else attributes[part.slice(0, at).trim().toLowerCase()] = part.slice(at + 1).trim();
  }
  return { name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(), attributes };
}

/** The Set-Cookie headers of a response named `name`. */
export function sessionCookies(response: Response, name = 'connect.sid'): SetCookie[] {
  return response.headers
    .getSetCookie()
    .map(parseSetCookie)
    .filter((cookie) => cookie.name === name);
}

/** The session ID inside an express-session cookie value (`s%3A<id>.<signature>`). */
export function idOf(cookie: SetCookie): string {
  const value = decodeURIComponent(cookie.value);
  return value.slice(2, value.lastIndexOf('.'));
}

/** A browser stand-in: keeps the cookies a server sets and sends them back. */
export class Browser {
  readonly jar = new Map<string, string>();

  constructor(readonly base: string) {}

  get cookieHeader(): string {
    return [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  /**
   * Sends a request with the jar's cookies and keeps the cookies set. The body is read before this
   * answers: sessions are saved before a response's last byte goes out, so the next request sees them.
   */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.jar.size > 0 && !headers.has('cookie')) headers.set('cookie', this.cookieHeader);
    const streamed = await fetch(this.base + path, { redirect: 'manual', ...init, headers });
    const body = await streamed.arrayBuffer();
    const response = new Response(body, { status: streamed.status, headers: streamed.headers });
    for (const cookie of response.headers.getSetCookie().map(parseSetCookie)) {
      const expires = cookie.attributes.expires;
      const gone =
        cookie.attributes['max-age'] === '0' ||
        (typeof expires === 'string' && Date.parse(expires) <= 0);
      if (gone) this.jar.delete(cookie.name);
      else this.jar.set(cookie.name, cookie.value);
    }
    return response;
  }

  async text(path: string, init: RequestInit = {}): Promise<string> {
    return (await this.request(path, init)).text();
  }
}

/** A promise with its resolver, to hold a request at a chosen point. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/**
 * `req.session` as the drop-in sees it. (The project's `tessera-session/express` module types
 * `req.session` as Tessera's own Session for every Express app in this program.)
 */
export function sessionOf(req: unknown): Session {
  return (req as SessionRequest).session!;
}

export function requestOf(req: unknown): SessionRequest {
  return req as SessionRequest;
}

/** A clock the test moves by hand. */
export function manualClock(start = Date.UTC(2030, 0, 1, 12, 0, 0)): {
  now: () => number;
  advance: (ms: number) => void;
} {
  let time = start;
  return { now: () => time, advance: (ms) => void (time += ms) };
}
