/**
 * The Tessera demo: a typical site's sign-in, preferences and session list on Express. Its page
 * shows both halves of a session (what the browser holds, what the server holds) and when the
 * session ends.
 *
 * Pages: `GET /` (sign-in form, or the session page), `POST /login`, `POST /logout`,
 * `POST /prefs`, `POST /sessions/revoke`, `POST /sessions/revoke-others`; forms post these and
 * are redirected back to `/`. JSON: `GET /api/me`, `POST /api/prefs`, `GET /api/sessions`,
 * `POST /api/sessions/revoke`, `POST /api/sessions/revoke-others`. Files: `GET /static/*`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { timingSafeEqual } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseCookie } from 'cookie';
import express, { type NextFunction, type Request, type Response } from 'express';
import { SessionError, type RejectReason, type SessionManager } from '../../src/index.js';
import { session } from '../../src/adapters/express.js';
import { deviceName } from './device.js';
import { homePage, loginPage, type CookieView, type Notice } from './views.js';

/** The demo's users. Real applications store password hashes, never passwords. */
export const DEMO_USERS: Readonly<Record<string, string>> = { alice: 'wonderland', bob: 'builder' };

/** Options of {@link createDemoApp}. */
export interface DemoAppOptions {
  /**
   * The clock for the times the pages show and for telling an expired session from a revoked
   * one; give the manager's own clock. @defaultValue `Date.now`
   */
  now?: () => number;
}

/**
 * The demo's own cookie: when the session ends if unused (epoch ms), as the session page last
 * saw it. Stores drop expired records, so a cookie whose session expired and one whose session
 * was revoked both find nothing; this deadline tells the two apart. It grants nothing.
 */
export const DEADLINE_COOKIE = 'demo_ends';

const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));
const PREF_PREFIX = 'pref:';
const MAX_PREFS = 20;
const MAX_PREF_LENGTH = 200;
const MAX_HANDLE_LENGTH = 200;
const DAY = 86_400_000;

const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** Why the cookie a request carried led to no session: the manager's `expired` or `rejected`. */
type CookieFate = 'expired' | RejectReason;

/** Where the manager's events for one request are written down (the request's `res.locals`). */
interface FateRecord {
  sessionFate?: CookieFate;
}

/** How the last session ended, as the sign-in page tells it. */
const ENDINGS = {
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

/** The session page's messages after a form, named by the redirect's `notice` parameter. */
const HOME_NOTICES = new Map<string, Notice>([
  ['prefs-saved', { kind: 'prefs-saved', text: 'Preferences saved in your session.' }],
  [
    'prefs-invalid',
    {
      kind: 'prefs-invalid',
      text: `Preferences not saved: up to ${MAX_PREFS} names of letters, digits, _ and -, with values up to ${MAX_PREF_LENGTH} characters.`,
      problem: true,
    },
  ],
  [
    'revoked',
    { kind: 'revoked', text: 'That session is signed out: its browser must sign in again.' },
  ],
  ['revoked-others', { kind: 'revoked-others', text: 'All your other sessions are signed out.' }],
  [
    'not-found',
    { kind: 'not-found', text: 'No such session: it has ended already.', problem: true },
  ],
  [
    'current',
    { kind: 'current', text: 'To end this browser’s session, use Sign out.', problem: true },
  ],
]);

const WRONG_PASSWORD: Notice = {
  kind: 'wrong-password',
  text: 'Wrong username or password.',
  problem: true,
};

function passwordMatches(username: string, password: string): boolean {
  const expected = Object.hasOwn(DEMO_USERS, username) ? DEMO_USERS[username]! : '';
  const a = Buffer.from(password);
  const b = Buffer.from(expected);
  return expected !== '' && a.length === b.length && timingSafeEqual(a, b);
}

function prefsOf(req: Request): Record<string, string> {
  const prefs: Record<string, string> = {};
  for (const key of req.session.keys()) {
    if (key.startsWith(PREF_PREFIX))
      prefs[key.slice(PREF_PREFIX.length)] = String(req.session.get(key));
  }
  return prefs;
}

/** Stores each entry of a JSON or form body as a preference; false, storing none, when invalid. */
function savePrefs(req: Request, body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const entries = Object.entries(body as Record<string, unknown>);
  const valid =
    entries.length <= MAX_PREFS &&
    entries.every(
      ([name, value]) =>
        /^[A-Za-z0-9_-]{1,40}$/.test(name) &&
        typeof value === 'string' &&
        value.length <= MAX_PREF_LENGTH,
    );
  if (!valid) return false;
  for (const [name, value] of entries) req.session.set(PREF_PREFIX + name, value);
  return true;
}

function wantsJson(req: Request): boolean {
  return (
    req.is('application/json') === 'application/json' ||
    (req.get('accept') ?? '').includes('application/json')
  );
}

function cookiesOf(req: Request): Record<string, string | undefined> {
  const header = req.headers.cookie;
  return header === undefined ? {} : parseCookie(header);
}

/** The deadline in the demo's own cookie, when it holds one. */
function deadlineOf(req: Request): number | undefined {
  const value = cookiesOf(req)[DEADLINE_COOKIE];
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/**
 * How the session a visitor's browser last held ended, from what this request's cookies led to
 * (`fate`), the deadline the browser was last told, and the redirect's `notice` parameter.
 */
function endingOf(
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

/** The session cookie as this request's browser holds it: its name and attributes. */
function cookieViewOf(manager: SessionManager<any>, req: Request): CookieView {
  const options = manager.cookie;
  const hostName = `__Host-${options.name}`;
  const name = cookiesOf(req)[hostName] !== undefined ? hostName : options.name;
  const secure =
    name === hostName || options.secure === true || (options.secure === 'auto' && req.secure);
  const sameSite = options.sameSite[0]!.toUpperCase() + options.sameSite.slice(1);
  const attributes = [`Path=${options.path}`];
  if (options.domain !== undefined) attributes.push(`Domain=${options.domain}`);
  if (options.httpOnly) attributes.push('HttpOnly');
  attributes.push(`SameSite=${sameSite}`);
  if (secure) attributes.push('Secure');
  if (options.partitioned) attributes.push('Partitioned');
  return { name, attributes, persistent: options.persistent, deadlineCookie: DEADLINE_COOKIE };
}

/** Builds the demo application on a session manager. */
export function createDemoApp(
  manager: SessionManager<any>,
  options: DemoAppOptions = {},
): express.Express {
  const clock = options.now ?? Date.now;
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    next();
  });
  app.use('/static', express.static(STATIC_DIR, { index: false }));
  app.use(express.urlencoded({ extended: false, limit: '8kb' }));
  app.use(express.json({ limit: '16kb' }));

  // The manager's events carry no request; running each request's session load inside its own
  // async context lets a listener write down what became of that request's cookie.
  const fates = new AsyncLocalStorage<FateRecord>();
  const recordFate = (fate: CookieFate) => {
    const record = fates.getStore();
    if (record !== undefined) record.sessionFate ??= fate;
  };
  manager.on('expired', () => recordFate('expired'));
  manager.on('rejected', ({ reason }) => recordFate(reason));
  const sessions = session(manager);
  app.use((req, res, next) => fates.run(res.locals as FateRecord, () => sessions(req, res, next)));

  const rememberDeadline = (req: Request, res: Response, deadline: number, now: number) => {
    if (deadlineOf(req) === deadline) return;
    res.cookie(DEADLINE_COOKIE, String(deadline), {
      httpOnly: true,
      sameSite: 'lax',
      secure: req.secure,
      path: '/',
      // Outlives the session cookie, so that a browser which dropped it is told why.
      maxAge: req.session.absoluteExpiresAt - now + DAY,
    });
  };
  const forgetDeadline = (req: Request, res: Response) => {
    if (deadlineOf(req) === undefined) return;
    res.clearCookie(DEADLINE_COOKIE, {
      httpOnly: true,
      sameSite: 'lax',
      secure: req.secure,
      path: '/',
    });
  };

  const requireUser = (req: Request, res: Response, next: NextFunction) => {
    if (req.session.userId === null) res.status(401).json({ error: 'not signed in' });
    else next();
  };
  // A form posted by a browser whose session has gone: the page it lands on says why.
  const requireUserPage = (req: Request, res: Response, next: NextFunction) => {
    if (req.session.userId === null) res.redirect(303, '/');
    else next();
  };

  app.get('/', async (req, res) => {
    const now = clock();
    // Saved first (a touch, when one is due), so that the deadlines shown are those stored.
    if (req.session.userId !== null) await req.session.save();
    const user = req.session.userId;
    if (user === null || req.session.isEnded) {
      const fate = req.session.isEnded ? 'unknown' : (res.locals as FateRecord).sessionFate;
      const notice = endingOf(fate, deadlineOf(req), now, req.query.notice);
      res.type('html').send(loginPage(notice === undefined ? {} : { notice }));
      return;
    }
    const list = await manager.listUserSessions(user, req.session);
    const idleEndsAt = req.session.expiresAt;
    rememberDeadline(req, res, idleEndsAt, now);
    const notice =
      typeof req.query.notice === 'string' ? HOME_NOTICES.get(req.query.notice) : undefined;
    res.type('html').send(
      homePage({
        user,
        now,
        ...(notice === undefined ? {} : { notice }),
        prefs: prefsOf(req),
        cookie: cookieViewOf(manager, req),
        session: {
          authenticatedAt: req.session.authenticatedAt ?? req.session.createdAt,
          lastSeenAt: list.find((s) => s.current)?.lastSeenAt ?? now,
          idleEndsAt,
          absoluteEndsAt: req.session.absoluteExpiresAt,
          idleTimeout: manager.idleTimeout,
          absoluteTimeout: manager.absoluteTimeout,
        },
        sessions: list,
      }),
    );
  });

  app.post('/login', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const username = typeof body.username === 'string' ? body.username : '';
    const password = typeof body.password === 'string' ? body.password : '';
    if (!passwordMatches(username, password)) {
      if (wantsJson(req)) res.status(401).json({ error: 'wrong username or password' });
      else
        res
          .status(401)
          .type('html')
          .send(loginPage({ username: username.slice(0, 100), notice: WRONG_PASSWORD }));
      return;
    }
    await req.session.login(username);
    if (wantsJson(req)) res.json({ user: username });
    else res.redirect(303, '/');
  });

  app.post('/logout', async (req, res) => {
    await req.session.destroy();
    forgetDeadline(req, res);
    if (wantsJson(req)) res.json({ ok: true });
    else res.redirect(303, '/?notice=signed-out');
  });

  app.post('/prefs', requireUserPage, (req, res) => {
    res.redirect(303, savePrefs(req, req.body) ? '/?notice=prefs-saved' : '/?notice=prefs-invalid');
  });

  app.post('/api/prefs', requireUser, (req, res) => {
    if (savePrefs(req, req.body)) res.json({ prefs: prefsOf(req) });
    else
      res
        .status(400)
        .json({ error: `up to ${MAX_PREFS} names of [A-Za-z0-9_-] with string values` });
  });

  app.get('/api/me', requireUser, (req, res) => {
    res.json({
      user: req.session.userId,
      prefs: prefsOf(req),
      session: {
        createdAt: req.session.createdAt,
        expiresAt: req.session.expiresAt,
        absoluteExpiresAt: req.session.absoluteExpiresAt,
      },
    });
  });

  app.get('/api/sessions', requireUser, async (req, res) => {
    const list = await manager.listUserSessions(req.session.userId!, req.session);
    res.json({
      sessions: list.map((s) => ({
        handle: s.handle,
        device: deviceName(s.userAgent),
        userAgent: s.userAgent ?? null,
        ip: s.ip ?? null,
        createdAt: s.createdAt,
        lastSeenAt: s.lastSeenAt,
        expiresAt: s.expiresAt,
        current: s.current,
      })),
    });
  });

  /** Ends one of the user's other sessions by its handle from the session list. */
  const revokeOne = async (
    req: Request,
    handle: unknown,
  ): Promise<'revoked' | 'not-found' | 'current'> => {
    if (typeof handle !== 'string' || handle === '' || handle.length > MAX_HANDLE_LENGTH)
      return 'not-found';
    const user = req.session.userId!;
    const target = (await manager.listUserSessions(user, req.session)).find(
      (s) => s.handle === handle,
    );
    if (target === undefined) return 'not-found';
    // This browser's own session ends with Sign out, which also clears its cookie.
    if (target.current) return 'current';
    return (await manager.revokeUserSession(user, handle)) ? 'revoked' : 'not-found';
  };

  app.post('/sessions/revoke', requireUserPage, async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    res.redirect(303, `/?notice=${await revokeOne(req, body.handle)}`);
  });

  app.post('/api/sessions/revoke', requireUser, async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const outcome = await revokeOne(req, body.handle);
    if (outcome === 'revoked') res.json({ revoked: true });
    else if (outcome === 'current')
      res.status(400).json({ error: 'this is the current session: POST /logout' });
    else res.status(404).json({ error: 'no such session' });
  });

  app.post('/sessions/revoke-others', requireUserPage, async (req, res) => {
    await manager.revokeUserSessions(req.session.userId!, { except: req.session });
    res.redirect(303, '/?notice=revoked-others');
  });

  app.post('/api/sessions/revoke-others', requireUser, async (req, res) => {
    const revoked = await manager.revokeUserSessions(req.session.userId!, { except: req.session });
    res.json({ revoked });
  });

  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const clientError = (error as { status?: unknown; expose?: unknown }).status;
    if (typeof clientError === 'number' && clientError >= 400 && clientError < 500) {
      res.status(clientError).json({ error: 'bad request' });
      return;
    }
    const status = error instanceof SessionError ? error.status : 500;
    if (!res.headersSent)
      res.status(status).json({ error: status === 503 ? 'try again shortly' : 'internal error' });
  });

  return app;
}
