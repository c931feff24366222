/**
 * Tessera on Koa: sign in and out, a page and a JSON route only signed-in users reach, and
 * flash messages shown once on the next page.
 *
 * Run: `npx tsx examples/koa/server.ts` (PORT, default 3003; SESSION_SECRET). Sign in as
 * `alice` / `wonderland`. In an application, import from `tessera-session`,
 * `tessera-session/koa`, `tessera-session/flash` and `tessera-session/stores/memory`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import Koa, { type Context } from 'koa';
import { SessionManager, type Session } from '../../src/index.js';
import { session } from '../../src/adapters/koa.js';
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

const sessionOf = (ctx: Context) => ctx.session as unknown as Session<AppData>;

const digest = (text: string) => createHash('sha256').update(text).digest();
const PASSWORD_DIGEST = digest(DEMO_PASSWORD);

/** Compares digests, which have one length, so the time taken tells nothing about the password. */
function passwordMatches(username: unknown, password: unknown): boolean {
  if (typeof username !== 'string' || typeof password !== 'string') return false;
  return timingSafeEqual(digest(password), PASSWORD_DIGEST) && username === DEMO_USER;
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(ctx: Context, notices: FlashMessage[], body: string): void {
  const list = notices
    .map((n) => `<p class="flash ${escapeHtml(n.type)}">${escapeHtml(n.message)}</p>`)
    .join('');
  ctx.type = 'html';
  ctx.body = `<!doctype html><meta charset="utf-8"><title>Tessera on Koa</title>${list}${body}`;
}

const LOGIN_FORM = `<form method="post" action="/login">
<input name="username" autocomplete="username" value="${DEMO_USER}">
<input name="password" type="password" autocomplete="current-password">
<button>Sign in</button></form>`;

/** A small urlencoded form body (Koa has no body parser of its own). */
async function readForm(ctx: Context): Promise<URLSearchParams> {
  if (!ctx.is('application/x-www-form-urlencoded')) return new URLSearchParams();
  ctx.req.setEncoding('utf8');
  let body = '';
  for await (const chunk of ctx.req) {
    body += chunk;
    if (body.length > 2048) ctx.throw(413);
  }
  return new URLSearchParams(body);
}

/** Whether a user is signed in; if not, sends a page to `/` and the JSON API a 401. */
function requireUser(ctx: Context): boolean {
  if (ctx.session.userId !== null) return true;
  if (ctx.path.startsWith('/api/')) {
    ctx.status = 401;
    ctx.body = { error: 'sign in first' };
  } else {
    ctx.status = 303;
    ctx.redirect('/');
  }
  return false;
}

async function route(ctx: Context): Promise<void> {
  const s = sessionOf(ctx);
  switch (`${ctx.method} ${ctx.path}`) {
    case 'GET /': {
      const notices = takeFlash(s);
      const username = s.get('username');
      page(
        ctx,
        notices,
        username === undefined
          ? LOGIN_FORM
          : `<p>Signed in as ${escapeHtml(username)}. <a href="/account">Account</a></p>
<form method="post" action="/logout"><button>Sign out</button></form>`,
      );
      return;
    }
    case 'POST /login': {
      const form = await readForm(ctx);
      ctx.status = 303;
      ctx.redirect('/');
      if (!passwordMatches(form.get('username'), form.get('password'))) {
        flash(s, 'error', 'Wrong password');
        return;
      }
      await s.login(DEMO_USER); // a new session ID: the one from before sign-in is dead
      s.set('username', DEMO_USER);
      flash(s, 'info', 'Signed in');
      return;
    }
    case 'POST /logout':
      // The old record is deleted now; a new, empty anonymous session carries the message.
      await s.regenerate();
      s.setUser(null);
      flash(s, 'info', 'Signed out');
      ctx.status = 303;
      ctx.redirect('/');
      return;
    case 'GET /account':
      if (requireUser(ctx))
        page(ctx, [], `<p>Account of ${escapeHtml(s.get('username') ?? '')}</p>`);
      return;
    case 'GET /api/me':
      if (requireUser(ctx)) ctx.body = { user: s.userId, username: s.get('username') };
      return;
  }
}

/** The session manager: sessions in memory, signed with SESSION_SECRET. */
export function createManager(now?: () => number): SessionManager<AppData> {
  return new SessionManager<AppData>({
    store: new MemoryStore({ now }),
    secrets: [process.env.SESSION_SECRET || DEVELOPMENT_SECRET],
    now,
  });
}

/** Builds the Koa application. */
export function createApp(manager: SessionManager<AppData> = createManager()): Koa {
  const app = new Koa();
  // The session layer also refuses form posts made from other sites (login CSRF included).
  app.use(session(manager));
  app.use(route);
  return app;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!process.env.SESSION_SECRET) console.warn('SESSION_SECRET is not set: using a dev secret');
  const port = Number(process.env.PORT ?? 3003);
  createApp().listen(port, () => console.log(`Koa example on http://localhost:${port}`));
}
