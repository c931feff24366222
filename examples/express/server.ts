/**
 * Tessera on Express: sign in and out, a page and a JSON route only signed-in users reach, and
 * flash messages shown once on the next page.
 *
 * Run: `npx tsx examples/express/server.ts` (PORT, default 3001; SESSION_SECRET). Sign in as
 * `alice` / `wonderland`. In an application, import from `tessera-session`,
 * `tessera-session/express`, `tessera-session/flash` and `tessera-session/stores/memory`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import express, { type NextFunction, type Request, type Response } from 'express';
import { SessionManager, type Session } from '../../src/index.js';
import { session } from '../../src/adapters/express.js';
import { flash, takeFlash, type FlashMessage } from '../../src/flash.js';
import { MemoryStore } from '../../src/stores/memory.js';

/** The one account. A real application keeps password hashes (scrypt, Argon2), never passwords. */
export const DEMO_USER = 'alice';
export const DEMO_PASSWORD = 'wonderland';
const DEVELOPMENT_SECRET = 'tessera-example-development-secret-not-for-production';

/**
 * What this app keeps in a session. An application declares it once for every session with
 * `declare module 'tessera-session' { interface SessionData { username: string } }`; these
 * examples share one type-check with Tessera's tests (where sessions stay untyped), so they
 * cast the request's session instead.
 */
interface AppData {
  username: string;
}

const sessionOf = (req: Request) => req.session as unknown as Session<AppData>;

const digest = (text: string) => createHash('sha256').update(text).digest();
const PASSWORD_DIGEST = digest(DEMO_PASSWORD);

/** Compares digests, which have one length, so the time taken tells nothing about the password. */
function passwordMatches(username: unknown, password: unknown): boolean {
  if (typeof username !== 'string' || typeof password !== 'string') return false;
  return timingSafeEqual(digest(password), PASSWORD_DIGEST) && username === DEMO_USER;
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(notices: FlashMessage[], body: string): string {
  const list = notices
    .map((n) => `<p class="flash ${escapeHtml(n.type)}">${escapeHtml(n.message)}</p>`)
    .join('');
  return `<!doctype html><meta charset="utf-8"><title>Tessera on Express</title>${list}${body}`;
}

const LOGIN_FORM = `<form method="post" action="/login">
<input name="username" autocomplete="username" value="${DEMO_USER}">
<input name="password" type="password" autocomplete="current-password">
<button>Sign in</button></form>`;

/** Signed-in users pass; others are sent to the sign-in page, or get a 401 from the JSON API. */
function requireUser(req: Request, res: Response, next: NextFunction): void {
  if (req.session.userId !== null) return next();
  if (req.path.startsWith('/api/')) res.status(401).json({ error: 'sign in first' });
  else res.redirect(303, '/');
}

/** The session manager: sessions in memory, signed with SESSION_SECRET. */
export function createManager(now?: () => number): SessionManager<AppData> {
  return new SessionManager<AppData>({
    store: new MemoryStore({ now }),
    secrets: [process.env.SESSION_SECRET || DEVELOPMENT_SECRET],
    now,
  });
}

/** Builds the Express application. */
export function createApp(manager: SessionManager<AppData> = createManager()): express.Express {
  const app = express();
  // The session layer also refuses form posts made from other sites (login CSRF included).
  app.use(session(manager));
  app.use(express.urlencoded({ extended: false, limit: '2kb' }));

  app.get('/', (req, res) => {
    const s = sessionOf(req);
    const notices = takeFlash(s);
    const username = s.get('username');
    res.type('html').send(
      page(
        notices,
        username === undefined
          ? LOGIN_FORM
          : `<p>Signed in as ${escapeHtml(username)}. <a href="/account">Account</a></p>
<form method="post" action="/logout"><button>Sign out</button></form>`,
      ),
    );
  });

  app.post('/login', async (req, res) => {
    const s = sessionOf(req);
    const { username, password } = (req.body ?? {}) as Record<string, unknown>;
    if (!passwordMatches(username, password)) {
      flash(s, 'error', 'Wrong password');
      return res.redirect(303, '/');
    }
    await s.login(DEMO_USER); // a new session ID: the one from before sign-in is dead
    s.set('username', DEMO_USER);
    flash(s, 'info', 'Signed in');
    res.redirect(303, '/');
  });

  app.post('/logout', async (req, res) => {
    const s = sessionOf(req);
    // The old record is deleted now; a new, empty anonymous session carries the message.
    await s.regenerate();
    s.setUser(null);
    flash(s, 'info', 'Signed out');
    res.redirect(303, '/');
  });

  app.get('/account', requireUser, (req, res) => {
    const username = sessionOf(req).get('username') ?? '';
    res.type('html').send(page([], `<p>Account of ${escapeHtml(username)}</p>`));
  });

  app.get('/api/me', requireUser, (req, res) => {
    res.json({ user: req.session.userId, username: sessionOf(req).get('username') });
  });

  return app;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!process.env.SESSION_SECRET) console.warn('SESSION_SECRET is not set: using a dev secret');
  const port = Number(process.env.PORT ?? 3001);
  createApp().listen(port, () => console.log(`Express example on http://localhost:${port}`));
}
