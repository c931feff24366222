/**
 * Tessera with the Fetch adapter: a `(request) => Response` handler, here served on Node by
 * @hono/node-server (Deno, Bun and Workers take the same handler). Sign in and out, a page and a
 * JSON route only signed-in users reach, and flash messages shown once on the next page.
 *
 * Run: `npx tsx examples/fetch/server.ts` (PORT, default 3005; SESSION_SECRET). Sign in as
 * `alice` / `wonderland`. In an application, import from `tessera-session`,
 * `tessera-session/fetch`, `tessera-session/flash` and `tessera-session/stores/memory`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { serve, type HttpBindings } from '@hono/node-server';
import { SessionManager, type Session } from '../../src/index.js';
import { withSession } from '../../src/adapters/fetch.js';
import { flash, takeFlash, type FlashMessage } from '../../src/flash.js';
import { MemoryStore } from '../../src/stores/memory.js';

/** The one account. A real application keeps password hashes (scrypt, Argon2), never passwords. */
export const DEMO_USER = 'alice';
export const DEMO_PASSWORD = 'wonderland';
const DEVELOPMENT_SECRET = 'tessera-example-development-secret-not-for-production';

/** What this app keeps in a session: `withSession`'s type parameter gives it to the handler. */
interface AppData {
  username: string;
}

const digest = (text: string) => createHash('sha256').update(text).digest();
const PASSWORD_DIGEST = digest(DEMO_PASSWORD);

/** Compares digests, which have one length, so the time taken tells nothing about the password. */
function passwordMatches(username: unknown, password: unknown): boolean {
  if (typeof username !== 'string' || typeof password !== 'string') return false;
  return timingSafeEqual(digest(password), PASSWORD_DIGEST) && username === DEMO_USER;
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(notices: FlashMessage[], body: string): Response {
  const list = notices
    .map((n) => `<p class="flash ${escapeHtml(n.type)}">${escapeHtml(n.message)}</p>`)
    .join('');
  const html = `<!doctype html><meta charset="utf-8"><title>Tessera on Fetch</title>${list}${body}`;
  return new Response(html, { headers: { 'Content-Type': 'text/html; charset=utf-8' } });
}

const LOGIN_FORM = `<form method="post" action="/login">
<input name="username" autocomplete="username" value="${DEMO_USER}">
<input name="password" type="password" autocomplete="current-password">
<button>Sign in</button></form>`;

const redirectHome = () => new Response(null, { status: 303, headers: { Location: '/' } });

/** Signed-in users get `answer()`; others the sign-in page, or a 401 from the JSON API. */
function requireUser(url: URL, s: Session<AppData>, answer: () => Response): Response {
  if (s.userId !== null) return answer();
  return url.pathname.startsWith('/api/')
    ? Response.json({ error: 'sign in first' }, { status: 401 })
    : redirectHome();
}

/** A small urlencoded form body; Node's HTTP parser holds the body to its Content-Length. */
async function readForm(request: Request): Promise<URLSearchParams | undefined> {
  const length = Number(request.headers.get('content-length') ?? Infinity);
  return length <= 2048 ? new URLSearchParams(await request.text()) : undefined;
}

async function route(request: Request, s: Session<AppData>): Promise<Response> {
  const url = new URL(request.url);
  switch (`${request.method} ${url.pathname}`) {
    case 'GET /': {
      const notices = takeFlash(s);
      const username = s.get('username');
      return page(
        notices,
        username === undefined
          ? LOGIN_FORM
          : `<p>Signed in as ${escapeHtml(username)}. <a href="/account">Account</a></p>
<form method="post" action="/logout"><button>Sign out</button></form>`,
      );
    }
    case 'POST /login': {
      const form = await readForm(request);
      if (form === undefined) return new Response('Payload Too Large', { status: 413 });
      if (!passwordMatches(form.get('username'), form.get('password'))) {
        flash(s, 'error', 'Wrong password');
        return redirectHome();
      }
      await s.login(DEMO_USER); // a new session ID: the one from before sign-in is dead
      s.set('username', DEMO_USER);
      flash(s, 'info', 'Signed in');
      return redirectHome();
    }
    case 'POST /logout':
      // The old record is deleted now; a new, empty anonymous session carries the message.
      await s.regenerate();
      s.setUser(null);
      flash(s, 'info', 'Signed out');
      return redirectHome();
    case 'GET /account':
      return requireUser(url, s, () =>
        page([], `<p>Account of ${escapeHtml(s.get('username') ?? '')}</p>`),
      );
    case 'GET /api/me':
      return requireUser(url, s, () =>
        Response.json({ user: s.userId, username: s.get('username') }),
      );
    default:
      return new Response('Not Found', { status: 404 });
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

/** Builds the Fetch handler; the second argument is @hono/node-server's bindings. */
export function createHandler(
  manager: SessionManager<AppData> = createManager(),
): (request: Request, env: HttpBindings) => Promise<Response> {
  // withSession also refuses form posts made from other sites (login CSRF included).
  return withSession<AppData, [HttpBindings]>(manager, route, {
    clientIp: (_request, env: HttpBindings) => env.incoming.socket.remoteAddress,
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!process.env.SESSION_SECRET) console.warn('SESSION_SECRET is not set: using a dev secret');
  const port = Number(process.env.PORT ?? 3005);
  const handler = createHandler();
  serve({ fetch: (request, env) => handler(request, env as HttpBindings), port }, () =>
    console.log(`Fetch example on http://localhost:${port}`),
  );
}
