/**
 * The Tessera demo: the login/logout flow of a typical site on Express.
 *
 * Routes: GET / (login form or welcome page), POST /login, POST /logout, GET /api/me,
 * POST /api/prefs, GET /api/sessions, POST /api/sessions/revoke-others.
 */
import { timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { SessionError, type SessionManager } from '../../src/index.js';
import { session } from '../../src/adapters/express.js';

/** The demo's users. Real applications store password hashes, never passwords. */
export const DEMO_USERS: Readonly<Record<string, string>> = { alice: 'wonderland', bob: 'builder' };

const PREF_PREFIX = 'pref:';
const MAX_PREFS = 20;
const MAX_PREF_LENGTH = 200;

function passwordMatches(username: string, password: string): boolean {
  const expected = Object.prototype.hasOwnProperty.call(DEMO_USERS, username)
    ? DEMO_USERS[username]!
    : '';
  const a = Buffer.from(password);
  const b = Buffer.from(expected);
  return expected !== '' && a.length === b.length && timingSafeEqual(a, b);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function prefsOf(req: Request): Record<string, string> {
  const prefs: Record<string, string> = {};
  for (const key of req.session.keys()) {
    if (key.startsWith(PREF_PREFIX))
      prefs[key.slice(PREF_PREFIX.length)] = String(req.session.get(key));
  }
  return prefs;
}

function wantsJson(req: Request): boolean {
  return (
    req.is('application/json') === 'application/json' ||
    (req.get('accept') ?? '').includes('application/json')
  );
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Tessera demo</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem; color: #1f2430; }
  h1 { font-size: 1.6rem; } form { margin: 1rem 0; } label { display: block; margin: .5rem 0; }
  input { font: inherit; padding: .35rem .5rem; } button { font: inherit; padding: .4rem 1rem; cursor: pointer; }
  table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #dde; }
  .error { color: #a4001d; } .muted { color: #667; font-size: .9rem; } .current { font-weight: 600; }
</style>
</head>
<body>
${body}
</body>
</html>`;
}

function loginPage(error?: string): string {
  return page(
    'Sign in',
    `<h1>Sign in</h1>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/login">
  <label>Username <input name="username" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>
<p class="muted">Demo users: alice / wonderland, bob / builder.</p>`,
  );
}

/** Builds the demo application on a session manager. */
export function createDemoApp(manager: SessionManager<any>): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    res.setHeader(
      'Content-Security-Policy',
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    );
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    next();
  });
  app.use(express.urlencoded({ extended: false, limit: '8kb' }));
  app.use(express.json({ limit: '16kb' }));
  app.use(session(manager));

  const requireUser = (req: Request, res: Response, next: NextFunction) => {
    if (req.session.userId === null) res.status(401).json({ error: 'not signed in' });
    else next();
  };

  app.get('/', async (req, res) => {
    const user = req.session.userId;
    if (user === null) {
      res.type('html').send(loginPage());
      return;
    }
    const prefs = prefsOf(req);
    const sessions = await manager.listUserSessions(user, req.session);
    const prefRows = Object.entries(prefs)
      .map(([name, value]) => `<tr><td>${escapeHtml(name)}</td><td>${escapeHtml(value)}</td></tr>`)
      .join('');
    const sessionRows = sessions
      .map(
        (s) =>
          `<tr${s.current ? ' class="current"' : ''}><td>${new Date(s.createdAt).toISOString()}</td><td>${new Date(s.lastSeenAt).toISOString()}</td><td>${escapeHtml(s.userAgent ?? 'unknown')}</td><td>${s.current ? 'this one' : ''}</td></tr>`,
      )
      .join('');
    res.type('html').send(
      page(
        'Welcome',
        `<h1>Welcome, ${escapeHtml(user)}</h1>
<h2>Your preferences</h2>
${prefRows ? `<table><tr><th>Name</th><th>Value</th></tr>${prefRows}</table>` : '<p class="muted">None yet. POST a JSON object of strings to /api/prefs.</p>'}
<h2>Your active sessions</h2>
<table id="sessions"><tr><th>Created</th><th>Last seen</th><th>Browser</th><th></th></tr>${sessionRows}</table>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>`,
      ),
    );
  });

  app.post('/login', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const username = typeof body.username === 'string' ? body.username : '';
    const password = typeof body.password === 'string' ? body.password : '';
    if (!passwordMatches(username, password)) {
      if (wantsJson(req)) res.status(401).json({ error: 'wrong username or password' });
      else res.status(401).type('html').send(loginPage('Wrong username or password.'));
      return;
    }
    await req.session.login(username);
    if (wantsJson(req)) res.json({ user: username });
    else res.redirect(303, '/');
  });

  app.post('/logout', async (req, res) => {
    await req.session.destroy();
    if (wantsJson(req)) res.json({ ok: true });
    else res.redirect(303, '/');
  });

  app.get('/api/me', requireUser, (req, res) => {
    res.json({
      user: req.session.userId,
      prefs: prefsOf(req),
      session: { createdAt: req.session.createdAt, expiresAt: req.session.expiresAt },
    });
  });

  app.post('/api/prefs', requireUser, (req, res) => {
    const body: unknown = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      res.status(400).json({ error: 'send a JSON object of string values' });
      return;
    }
    const entries = Object.entries(body as Record<string, unknown>);
    const valid =
      entries.length <= MAX_PREFS &&
      entries.every(
        ([name, value]) =>
          /^[A-Za-z0-9_-]{1,40}$/.test(name) &&
          typeof value === 'string' &&
          value.length <= MAX_PREF_LENGTH,
      );
    if (!valid) {
      res
        .status(400)
        .json({ error: `up to ${MAX_PREFS} names of [A-Za-z0-9_-] with string values` });
      return;
    }
    for (const [name, value] of entries) req.session.set(PREF_PREFIX + name, value);
    res.json({ prefs: prefsOf(req) });
  });

  app.get('/api/sessions', requireUser, async (req, res) => {
    const sessions = await manager.listUserSessions(req.session.userId!, req.session);
    res.json({
      sessions: sessions.map((s) => ({
        createdAt: s.createdAt,
        lastSeenAt: s.lastSeenAt,
        expiresAt: s.expiresAt,
        userAgent: s.userAgent ?? null,
        current: s.current,
      })),
    });
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
