/**
 * How the session a browser last held ended, as the sign-in page tells it: signed out, expired,
 * ended on another device, or a cookie the server could not accept.
 *
 * Stores drop expired records, so a cookie whose session expired and one whose session was
 * revoked both find nothing. The demo's own cookie, {@link DEADLINE_COOKIE}, holds when the
 * session ends if unused, as the session page last saw it; that deadline tells the two apart.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { parseCookie } from 'cookie';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { RejectReason, SessionManager } from '../../src/index.js';
import type { Notice } from './views.js';

/**
 * The demo's own cookie: when the session ends if unused (epoch ms), as the session page last
 * saw it. It grants nothing.
 */
export const DEADLINE_COOKIE = 'demo_ends';

const DAY = 86_400_000;

/** Why the cookie a request carried led to no session: the manager's `expired` or `rejected`. */
export type CookieFate = 'expired' | RejectReason;

/** The sign-in page's message for each way a session ends. */
export const ENDINGS = {
  'signed-out': {
    kind: 'signed-out',
    text: 'You signed out. The server deleted your session and your browser dropped its cookie.',
  },
  expired: {
    kind: 'expired',
    text: 'Your session expired. Sign in again to continue.',
    problem: true,
  },
  'ended-elsewhere': {
    kind: 'ended-elsewhere',
    text: 'Your session was ended on another device. Sign in again to continue.',
    problem: true,
  },
  invalid: {
    kind: 'invalid',
    text: 'Your browser sent a session cookie the server could not accept, so it was ignored. Sign in again.',
    problem: true,
  },
  ended: {
    kind: 'ended',
    text: 'Your session has ended. Sign in again to continue.',
    problem: true,
  },
} as const satisfies Record<string, Notice>;

/** The request's cookies by name. */
export function cookiesOf(req: Request): Record<string, string | undefined> {
  const header = req.headers.cookie;
  return header === undefined ? {} : parseCookie(header);
}

/** The deadline in the demo's own cookie, when it holds one. */
export function deadlineOf(req: Request): number | undefined {
  const value = cookiesOf(req)[DEADLINE_COOKIE];
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/**
 * How the session a visitor's browser last held ended, from what this request's cookies led to
 * (`fate`), the deadline the browser was last told, and the redirect's `notice` parameter.
 */
export function endingOf(
  fate: CookieFate | undefined,
  deadline: number | undefined,
  now: number,
  notice: unknown,
): Notice | undefined {
  switch (fate) {
    case undefined:
      break;
    case 'expired':
      return ENDINGS.expired;
    case 'unknown':
      // The store has no such session: it expired (stores drop expired records) or was revoked.
      if (deadline === undefined) return ENDINGS.ended;
      return now >= deadline ? ENDINGS.expired : ENDINGS['ended-elsewhere'];
    default:
      return ENDINGS.invalid;
  }
  // No session cookie: past the deadline, the browser dropped it with the session's end.
  if (deadline !== undefined && now >= deadline) return ENDINGS.expired;
  return notice === 'signed-out' ? ENDINGS['signed-out'] : undefined;
}

const DEADLINE_ATTRIBUTES = { httpOnly: true, sameSite: 'lax', path: '/' } as const;

/** Tells the browser the session's idle deadline, unless its cookie holds it already. */
export function rememberDeadline(req: Request, res: Response, deadline: number, now: number) {
  if (deadlineOf(req) === deadline) return;
  res.cookie(DEADLINE_COOKIE, String(deadline), {
    ...DEADLINE_ATTRIBUTES,
    secure: req.secure,
    // Outlives the session cookie, so that a browser which dropped it is told why.
    maxAge: req.session.absoluteExpiresAt - now + DAY,
  });
}

/** Clears the deadline cookie, when the browser holds one. */
export function forgetDeadline(req: Request, res: Response) {
  if (deadlineOf(req) === undefined) return;
  res.clearCookie(DEADLINE_COOKIE, { ...DEADLINE_ATTRIBUTES, secure: req.secure });
}

/** Where the manager's events for one request are written down (the request's `res.locals`). */
interface FateRecord {
  sessionFate?: CookieFate;
}

/**
 * Wraps the session middleware so that each request's fate (what became of its cookie) can be
 * read with `fateOf`. The manager's events carry no request; running each request's session load
 * inside its own async context lets a listener write down what became of that request's cookie.
 */
export function trackFates(
  manager: SessionManager<any>,
  sessions: RequestHandler,
): { middleware: RequestHandler; fateOf(res: Response): CookieFate | undefined } {
  const fates = new AsyncLocalStorage<FateRecord>();
  const record = (fate: CookieFate) => {
    const current = fates.getStore();
    if (current !== undefined) current.sessionFate ??= fate;
  };
  manager.on('expired', () => record('expired'));
  manager.on('rejected', ({ reason }) => record(reason));
  return {
    middleware: (req: Request, res: Response, next: NextFunction) =>
      fates.run(res.locals as FateRecord, () => sessions(req, res, next)),
    fateOf: (res) => (res.locals as FateRecord).sessionFate,
  };
}
