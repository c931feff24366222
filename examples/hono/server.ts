/**
 * Tessera on Hono (served on Node by @hono/node-server): sign in and out, a page and a JSON
 * route only signed-in users reach, and flash messages shown once on the next page.
 *
 * Run: `npx tsx examples/hono/server.ts` (PORT, default 3004; SESSION_SECRET). Sign in as
 * `alice` / `wonderland`. In an application, import from `tessera-session`,
 * `tessera-session/hono`, `tessera-session/flash` and `tessera-session/stores/memory`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { serve } from '@hono/node-server';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { SessionManager } from '../../src/index.js';
import { session, type SessionEnv } from '../../src/adapters/hono.js';
import { flash, takeFlash, type FlashMessage } from '../../src/flash.js';
import { MemoryStore } from '../../src/stores/memory.js';

/** The one account. A real application keeps password hashes (scrypt, Argon2), never passwords. */
export const DEMO_USER = 'alice';
export const DEMO_PASSWORD = 'wonderland';
const DEVELOPMENT_SECRET = 'tessera-example-development-secret-not-for-production';

/** What this app keeps in a session: `SessionEnv<AppData>` types `c.get('session')` with it. */
interface AppData {
  username: string;
}

type Env = SessionEnv<AppData>;

const digest = (text: string) => createHash('sha256').update(text).digest();
const PASSWORD_DIGEST = digest(DEMO_PASSWORD);

/** Compares digests, which have one length, so the time taken tells nothing about the password. */
function passwordMatches(username: unknown, password: unknown): boolean {
  if (typeof username !== 'string' || typeof password !== 'string') return false;
  return timingSafeEqual(digest(password), PASSWORD_DIGEST) && username === DEMO_USER;
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(c: Context<Env>, notices: FlashMessage[], body: string): Response {
  const list = notices
    .map((n) => `<p class="flash ${escapeHtml(n.type)}">${escapeHtml(n.message)}</p>`)
    .join('');
  return c.html(
    `<!doctype html><meta charset="utf-8"><title>Tessera on Hono</title>${list}${body}`,
  );
}

const LOGIN_FORM = `<form method="post" action="/login">
<input name="username" autocomplete="username" value="${DEMO_USER}">
<input name="password" type="password" autocomplete="current-password">
<button>Sign in</button></form>`;

/** Signed-in users pass; others are sent to the sign-in page, or get a 401 from the JSON API. */
const requireUser: MiddlewareHandler<Env> = async (c, next) => {
  if (c.get('session').userId !== null) return next();
  if (c.req.path.startsWith('/api/')) return c.json({ error: 'sign in first' }, 401);
  return c.redirect('/', 303);
};

/** The session manager: sessions in memory, signed with SESSION_SECRET. */
export function createManager(now?: () => number): SessionManager<AppData> {
  return new SessionManager<AppData>({
    store: new MemoryStore({ now }),
    secrets: [process.env.SESSION_SECRET || DEVELOPMENT_SECRET],
    now,
  });
}

/** Builds the Hono application; serve `app.fetch`. */
export function createApp(manager: SessionManager<AppData> = createManager()): Hono<Env> {
  const app = new Hono<Env>();
  // The session layer also refuses form posts made from other sites (login CSRF included).
  app.use(session(manager));

  app.get('/', (c) => {
    const s = c.get('session');
    const notices = takeFlash(s);
    const username = s.get('username');
    return page(
      c,
      notices,
      username === undefined
        ? LOGIN_FORM
        : `<p>Signed in as ${escapeHtml(username)}. <a href="/account">Account</a></p>
<form method="post" action="/logout"><button>Sign out</button></form>`,
    );
  });

  app.post('/login', bodyLimit({ maxSize: 2048 }), async (c) => {
    const s = c.get('session');
    const form = await c.req.parseBody();
    if (!passwordMatches(form.username, form.password)) {
      flash(s, 'error', 'Wrong password');
      return c.redirect('/', 303);
    }
    await s.login(DEMO_USER); // a new session ID: the one from before sign-in is dead
    s.set('username', DEMO_USER);
    flash(s, 'info', 'Signed in');
    return c.redirect('/', 303);
  });

  app.post('/logout', async (c) => {
    const s = c.get('session');
    // The old record is deleted now; a new, empty anonymous session carries the message.
    await s.regenerate();
    s.setUser(null);
    flash(s, 'info', 'Signed out');
    return c.redirect('/', 303);
  });

  app.get('/account', requireUser, (c) => {
    const username = c.get('session').get('username') ?? '';
    return page(c, [], `<p>Account of ${escapeHtml(username)}</p>`);
  });

  app.get('/api/me', requireUser, (c) => {
    const s = c.get('session');
    return c.json({ user: s.userId, username: s.get('username') });
  });

  return app;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!process.env.SESSION_SECRET) console.warn('SESSION_SECRET is not set: using a dev secret');
  const port = Number(process.env.PORT ?? 3004);
  serve({ fetch: createApp().fetch, port }, () =>
    console.log(`Hono example on http://localhost:${port}`),
  );
}
