/**
 * A browser-like HTTP client for the stress tool: it keeps one session cookie, as a browser
 * would (set on `Set-Cookie`, dropped on a clearing one), and records every exchange.
 */
import { Agent, request } from 'node:http';
import type { View } from './app.js';

/** One request and its answer, timed on the tool's clock (ms since the run began). */
export interface Exchange {
  method: string;
  path: string;
  start: number;
  end: number;
  /** The HTTP status, or 0 when no answer came (socket error or timeout). */
  status: number;
  setCookie: string[];
  retryAfter: string | undefined;
  body: View | undefined;
  /** Why there was no answer. */
  error: string | undefined;
}

/** The longest the tool waits for one answer before it counts the request as unanswered. */
export const ANSWER_TIMEOUT_MS = 30_000;

/** The clock every exchange is timed on. */
export type Clock = () => number;

/** One simulated browser. */
export class Browser {
  /** The session cookie as sent back (`name=value`), if any. */
  cookie: string | undefined;
  readonly #agent: Agent;
  readonly #clock: Clock;
  base: string;

  constructor(base: string, agent: Agent, clock: Clock) {
    this.base = base;
    this.#agent = agent;
    this.#clock = clock;
  }

  /** Sends one request to `base` (this browser's by default) and keeps the cookie it sets. */
  send(method: string, path: string, base = this.base): Promise<Exchange> {
    const start = this.#clock();
    return new Promise((resolve) => {
      const url = new URL(path, base);
      const headers: Record<string, string> = {};
      if (this.cookie !== undefined) headers.cookie = this.cookie;
      const req = request(url, { method, headers, agent: this.#agent });
      const fail = (error: string) =>
        resolve({
          method,
          path,
          start,
          end: this.#clock(),
          status: 0,
          setCookie: [],
          retryAfter: undefined,
          body: undefined,
          error,
        });
      req.setTimeout(ANSWER_TIMEOUT_MS, () => req.destroy(new Error('no answer in time')));
      req.once('error', (error) => fail(error.message));
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.once('error', (error) => fail(error.message));
        res.once('end', () => {
          const setCookie = res.headers['set-cookie'] ?? [];
          const status = res.statusCode ?? 0;
          // A browser applies Set-Cookie whatever the status; the tool checks that 503s carry none.
          for (const line of setCookie) this.#apply(line);
          let body: View | undefined;
          const text = Buffer.concat(chunks).toString('utf8');
          if (status === 200) {
            try {
              body = JSON.parse(text) as View;
            } catch {
              body = undefined;
            }
          }
          const retryAfter = res.headers['retry-after'];
          resolve({
            method,
            path,
            start,
            end: this.#clock(),
            status,
            setCookie,
            retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
            body,
            error: undefined,
          });
        });
      });
      req.end();
    });
  }

  #apply(line: string): void {
    const pair = line.split(';', 1)[0]!.trim();
    const clearing = /;\s*max-age=0(?:;|$)/i.test(line) || pair.endsWith('=');
    this.cookie = clearing ? undefined : pair;
  }
}

/** A keep-alive agent for many browsers. */
export function newAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 64 });
}
