/**
 * Tessera on Fastify: sign in and out, a page and a JSON route only signed-in users reach, and
 * flash messages shown once on the next page.
 *
 * Run: `npx tsx examples/fastify/server.ts` (PORT, default 3002; SESSION_SECRET). Sign in as
 * `alice` / `wonderland`. In an application, import from `tessera-session`,
 * `tessera-session/fastify`, `tessera-session/flash` and `tessera-session/stores/memory`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { SessionManager, type Session } from '../../src/index.js';
import { fastifySession } from '../../src/adapters/fastify.js';
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

const sessionOf = (request: FastifyRequest) => request.session as unknown as Session<AppData>;

const digest = (text: string) => createHash('sha256').update(text).digest();
const PASSWORD_DIGEST = digest(DEMO_PASSWORD);

/** Compares digests, which have one length, so the time taken tells nothing about the password. */
function passwordMatches(username: unknown, password: unknown): boolean {
  if (typeof username !== 'string' || typeof password !== 'string') return false;
  return timingSafeEqual(digest(password), PASSWORD_DIGEST) && username === DEMO_USER;
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(reply: FastifyReply, notices: FlashMessage[], body: string): string {
  const list = notices
    .map((n) => `<p class="flash ${escapeHtml(n.type)}">${escapeHtml(n.message)}</p>`)
    .join('');
  reply.type('text/html; charset=utf-8');
  return `<!doctype html><meta charset="utf-8"><title>Tessera on Fastify</title>${list}${body}`;
}

const LOGIN_FORM = `<form method="post" action="/login">
<input name="username" autocomplete="username" value="${DEMO_USER}">
<input name="password" type="password" autocomplete="current-password">
<button>Sign in</button></form>`;

/** Signed-in users pass; others are sent to the sign-in page, or get a 401 from the JSON API. */
async function requireUser(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.session.userId !== null) return;
  if (request.url.startsWith('/api/')) await reply.code(401).send({ error: 'sign in first' });
  else await reply.redirect('/', 303);
}

/** The session manager: sessions in memory, signed with SESSION_SECRET. */
export function createManager(now?: () => number): SessionManager<AppData> {
  return new SessionManager<AppData>({
    store: new MemoryStore({ now }),
    secrets: [process.env.SESSION_SECRET || DEVELOPMENT_SECRET],
    now,
  });
}

/** Builds the Fastify application. */
export async function createApp(
  manager: SessionManager<AppData> = createManager(),
): Promise<FastifyInstance> {
  const app = Fastify();
  // Forms without a plugin: small bodies, read as plain key/value pairs.
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 2048 },
    (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );
  // The session plugin also refuses form posts made from other sites (login CSRF included).
  await app.register(fastifySession, { manager });

  app.get('/', async (request, reply) => {
    const s = sessionOf(request);
    const notices = takeFlash(s);
    const username = s.get('username');
    return page(
      reply,
      notices,
      username === undefined
        ? LOGIN_FORM
        : `<p>Signed in as ${escapeHtml(username)}. <a href="/account">Account</a></p>
<form method="post" action="/logout"><button>Sign out</button></form>`,
    );
  });

  app.post('/login', async (request, reply) => {
    const s = sessionOf(request);
    const { username, password } = (request.body ?? {}) as Record<string, unknown>;
    if (!passwordMatches(username, password)) {
      flash(s, 'error', 'Wrong password');
      return reply.redirect('/', 303);
    }
    await s.login(DEMO_USER); // a new session ID: the one from before sign-in is dead
    s.set('username', DEMO_USER);
    flash(s, 'info', 'Signed in');
    return reply.redirect('/', 303);
  });

  app.post('/logout', async (request, reply) => {
    const s = sessionOf(request);
    // The old record is deleted now; a new, empty anonymous session carries the message.
    await s.regenerate();
    s.setUser(null);
    flash(s, 'info', 'Signed out');
    return reply.redirect('/', 303);
  });

  app.get('/account', { preHandler: requireUser }, async (request, reply) => {
    const username = sessionOf(request).get('username') ?? '';
    return page(reply, [], `<p>Account of ${escapeHtml(username)}</p>`);
  });

  app.get('/api/me', { preHandler: requireUser }, async (request) => ({
    user: request.session.userId,
    username: sessionOf(request).get('username'),
  }));

  return app;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!process.env.SESSION_SECRET) console.warn('SESSION_SECRET is not set: using a dev secret');
  const port = Number(process.env.PORT ?? 3002);
  const app = await createApp();
  await app.listen({ port });
  console.log(`Fastify example on http://localhost:${port}`);
}
