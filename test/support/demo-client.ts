/**
 * The demo (examples/demo/app.ts) on 127.0.0.1 for tests, on the memory store with a clock the
 * test moves, and the clients that talk to it over real HTTP: plain requests, and a browser's
 * cookie jar.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import { SessionManager, type SessionEvents } from '../../src/index.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { createDemoApp, DEMO_USERS } from '../../examples/demo/app.js';
import { FakeClock, SECRET } from './fixtures.js';

export const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
export const CHROME_LINUX =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
export const FIREFOX_WINDOWS =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0';
export const SAFARI_IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

/** A request's options: `cookie` and `json` (sent as the body, POST by default) beside fetch's. */
export type CallInit = RequestInit & { cookie?: string; json?: unknown };

/** A running demo: its address, manager and clock, the events it emitted, and how to stop it. */
export interface RunningDemo {
  readonly base: string;
  readonly manager: SessionManager;
  readonly clock: FakeClock;
  /** Every audit event, in order, as `[name, payload]`. */
  readonly events: [keyof SessionEvents, unknown][];
  close(): Promise<void>;
}

/** Starts the demo as `npm start` configures it (header transport on), with a fake clock. */
export async function serveDemo(): Promise<RunningDemo> {
  const clock = new FakeClock();
  const manager = new SessionManager({
    store: new MemoryStore({ now: clock.now }),
    secrets: [SECRET],
    now: clock.now,
    headerTransport: true,
  });
  const events: [keyof SessionEvents, unknown][] = [];
  for (const name of [
    'login',
    'logout',
    'revoked',
    'crossOriginRefused',
    'reauthRequired',
  ] as const)
    manager.on(name, (payload) => events.push([name, payload]));
  const server: Server = createDemoApp(manager, { now: clock.now }).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    manager,
    clock,
    events,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Sends one request to the demo, following no redirect. */
export function request(base: string, path: string, init: CallInit = {}): Promise<Response> {
  return fetch(base + path, {
    method: init.method ?? (init.json !== undefined || init.body !== undefined ? 'POST' : 'GET'),
    redirect: 'manual',
    body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
    headers: {
      ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(init.cookie ? { cookie: init.cookie } : {}),
      ...(init.headers as object),
    },
  });
}

/** Signs in with JSON and answers the session cookie as `name=value`. */
export async function signInAt(
  base: string,
  username = 'alice',
  password = 'wonderland',
  agent = 'test-agent',
): Promise<string> {
  const response = await request(base, '/login', {
    json: { username, password },
    headers: { 'user-agent': agent },
  });
  expect(response.status).toBe(200);
  return response.headers.getSetCookie()[0]!.split(';')[0]!;
}

/** A browser's cookie jar and user agent: keeps what Set-Cookie gives, drops what it clears. */
export class Browser {
  readonly cookies = new Map<string, string>();
  constructor(
    readonly base: string,
    readonly agent = CHROME_LINUX,
  ) {}

  get cookie(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  async request(path: string, init: CallInit = {}): Promise<Response> {
    const response = await request(this.base, path, {
      ...init,
      cookie: this.cookie,
      headers: {
        'user-agent': this.agent,
        ...(init.body !== undefined ? FORM : {}),
        ...(init.headers as object),
      },
    });
    for (const line of response.headers.getSetCookie()) {
      const pair = line.split(';')[0]!;
      const name = pair.slice(0, pair.indexOf('='));
      // A cleared cookie comes back empty (with Max-Age=0 or an Expires in the past).
      if (pair.length === name.length + 1) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(name.length + 1));
    }
    return response;
  }

  /** Signs in with the form and loads the page it is sent to. */
  async signIn(username = 'alice', password = DEMO_USERS[username]!): Promise<string> {
    const response = await this.request('/login', {
      body: new URLSearchParams({ username, password }).toString(),
    });
    expect(response.status).toBe(303);
    return this.page('/');
  }

  async page(path: string): Promise<string> {
    const response = await this.request(path);
    expect(response.status).toBe(200);
    return response.text();
  }

  /** The handle of the user's session on `device` (`'current'`: this browser's), from the list. */
  async handleOf(device: string): Promise<string> {
    const { sessions } = await (await this.request('/api/sessions')).json();
    const found = sessions.find((s: { device: string; current: boolean }) =>
      device === 'current' ? s.current : s.device === device && !s.current,
    );
    if (found === undefined) throw new Error(`no session on ${device}`);
    return found.handle;
  }
}

/** The `data-notice` of a page, or undefined when it shows none. */
export function noticeOf(html: string): string | undefined {
  return /data-notice="([^"]*)"/.exec(html)?.[1];
}
