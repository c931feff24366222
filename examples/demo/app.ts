/**
 * The Tessera demo: a typical site's sign-in, preferences and session list on Express. Its page
 * shows both halves of a session (what the browser holds, what the server holds), when the
 * session ends, and the user's sessions on every device, with "sign out all other sessions"
 * behind a password check when the sign-in is not recent.
 *
 * Pages: `GET /` (sign-in form, or the session page), `POST /login`, `POST /logout`,
 * `POST /prefs`, `POST /sessions/revoke`, `POST /sessions/revoke-others`; forms post these and
 * are redirected back to `/`. JSON: under `/api` (see `api.ts`), for the page's script and for
 * API clients with a bearer token. Files: `GET /static/*`.
 *
 * The manager's cross-origin protection refuses, with 403, any POST, PUT, PATCH or DELETE a
 * browser sent from another origin, `POST /login` included, before a route runs.
 */
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response } from 'express';
import { SessionError, type SessionManager } from '../../src/index.js';
import { session, sessionErrors } from '../../src/adapters/express.js';
import {
  fieldOf,
  MAX_PREF_LENGTH,
  MAX_PREFS,
  needsPassword,
  passwordMatches,
  prefsOf,
  recentlyAuthenticated,
  revokeOne,
  savePrefs,
} from './account.js';
import { apiRouter } from './api.js';
import {
  cookiesOf,
  DEADLINE_COOKIE,
  deadlineOf,
  endingOf,
  forgetDeadline,
  rememberDeadline,
  trackFates,
} from './endings.js';
import { homePage, loginPage, type CookieView, type Notice } from './views.js';

export { DEMO_USERS } from './account.js';
export { DEADLINE_COOKIE } from './endings.js';

/** How recent a sign-in "sign out all other sessions" needs by default: five minutes. */
export const DEFAULT_REAUTH_MS = 300_000;

/** Options of {@link createDemoApp}. */
export interface DemoAppOptions {
  /**
   * The clock for the times the pages show and for telling an expired session from a revoked
   * one; give the manager's own clock. @defaultValue `Date.now`
   */
  now?: () => number;
  /**
   * How recent (ms) a sign-in or password check must be to sign out the user's other sessions.
   * @defaultValue {@link DEFAULT_REAUTH_MS}
   */
  reauthMaxAge?: number;
}

const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));

const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  // The page's script calls the JSON API.
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

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
  [
    'reauth-needed',
    {
      kind: 'reauth-needed',
      text: 'Enter your password to sign out your other sessions.',
      problem: true,
    },
  ],
  [
    'reauth-failed',
    {
      kind: 'reauth-failed',
      text: 'Wrong password: your other sessions are still signed in.',
      problem: true,
    },
  ],
]);

const WRONG_PASSWORD: Notice = {
  kind: 'wrong-password',
  text: 'Wrong username or password.',
  problem: true,
};

/** Whether a request carries its session as `Authorization: Bearer <token>` rather than a cookie. */
function usesToken(req: Request): boolean {
  return /^[ \t]*bearer(?:[ \t]|$)/i.test(req.get('authorization') ?? '');
}

function wantsJson(req: Request): boolean {
  return (
    usesToken(req) ||
    req.is('application/json') === 'application/json' ||
    (req.get('accept') ?? '').includes('application/json')
  );
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

/**
 * Builds the demo application on a session manager. Give the manager `headerTransport: true`
 * for `POST /api/token` (without it that route answers 404); its cross-origin protection is on
 * unless the manager turned it off.
 */
export function createDemoApp(
  manager: SessionManager<any>,
  options: DemoAppOptions = {},
): express.Express {
  const clock = options.now ?? Date.now;
  const reauthMaxAge = options.reauthMaxAge ?? DEFAULT_REAUTH_MS;
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
  const fates = trackFates(manager, session(manager));
  app.use(fates.middleware);

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
      const fate = req.session.isEnded ? 'unknown' : fates.fateOf(res);
      const notice = endingOf(fate, deadlineOf(req), now, req.query.notice);
      res.type('html').send(loginPage(notice === undefined ? {} : { notice }));
      return;
    }
    const list = await manager.listUserSessions(user, req.session);
    const idleEndsAt = req.session.expiresAt;
    // A token's client holds no cookie to tell later how its session ended.
    if (!usesToken(req)) rememberDeadline(req, res, idleEndsAt, now);
    const notice =
      typeof req.query.notice === 'string' ? HOME_NOTICES.get(req.query.notice) : undefined;
    res.type('html').send(
      homePage({
        user,
        now,
        ...(notice === undefined ? {} : { notice }),
        prefs: prefsOf(req.session),
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
        stepUp: {
          maxAge: reauthMaxAge,
          needsPassword: needsPassword(req.session, reauthMaxAge, now),
        },
      }),
    );
  });

  app.post('/login', async (req, res) => {
    const username = fieldOf(req.body, 'username');
    if (!passwordMatches(username, fieldOf(req.body, 'password'))) {
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
    // A token that leads to no session is refused, as on the API.
    if (usesToken(req) && req.session.userId === null) {
      res.status(401).json({ error: 'not signed in' });
      return;
    }
    await req.session.destroy();
    forgetDeadline(req, res);
    if (wantsJson(req)) res.json({ ok: true });
    else res.redirect(303, '/?notice=signed-out');
  });

  app.post('/prefs', requireUserPage, (req, res) => {
    const saved = savePrefs(req.session, req.body);
    res.redirect(303, saved ? '/?notice=prefs-saved' : '/?notice=prefs-invalid');
  });

  app.post('/sessions/revoke', requireUserPage, async (req, res) => {
    const outcome = await revokeOne(manager, req.session, fieldOf(req.body, 'handle'));
    res.redirect(303, `/?notice=${outcome}`);
  });

  // Without the page's script: the password comes with the form, on the page that asks for it.
  app.post('/sessions/revoke-others', requireUserPage, async (req, res) => {
    const password = fieldOf(req.body, 'password');
    if (password !== '') {
      if (!passwordMatches(req.session.userId, password)) {
        res.redirect(303, '/?notice=reauth-failed');
        return;
      }
      await req.session.reauthenticate();
    }
    if (!recentlyAuthenticated(req.session, reauthMaxAge)) {
      res.redirect(303, '/?notice=reauth-needed');
      return;
    }
    await manager.revokeUserSessions(req.session.userId!, { except: req.session });
    res.redirect(303, '/?notice=revoked-others');
  });

  app.use('/api', apiRouter(manager, reauthMaxAge));

  // REAUTH_REQUIRED thrown by a route: 401 with a JSON body carrying the code.
  app.use(sessionErrors());
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const clientError = (error as { status?: unknown }).status;
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
