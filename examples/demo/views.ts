/**
 * The demo's HTML pages. Every value that comes from a request or from the store is escaped
 * here; no page carries inline script or style, so the strict Content-Security-Policy holds: the
 * scripts are files under `/static`.
 */
import { deviceName } from './device.js';

/** Escapes text for HTML element content and quoted attribute values. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const RELATIVE = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
const UNITS: ReadonlyArray<readonly [Intl.RelativeTimeFormatUnit, number]> = [
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
  ['second', 1_000],
];

/** A time relative to `now`: "3 minutes ago", "in 30 minutes", "now". */
function relativeTime(at: number, now: number): string {
  const delta = at - now;
  const [unit, size] = UNITS.find(([, ms]) => Math.abs(delta) >= ms) ?? UNITS[UNITS.length - 1]!;
  return RELATIVE.format(Math.round(delta / size), unit);
}

/** A time as "2026-01-01 12:30:00 UTC". */
function utcTime(at: number): string {
  return `${new Date(at).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** A `<time>` showing `at` relative to `now`, with the exact time in its attributes. */
function timeElement(at: number, now: number): string {
  const iso = new Date(at).toISOString();
  return `<time datetime="${iso}" title="${utcTime(at)}">${relativeTime(at, now)}</time>`;
}

/** A duration in words: "30 minutes", "12 hours", "90 seconds". */
function duration(ms: number): string {
  const [unit, size] = UNITS.find(([, s]) => ms >= s && ms % s === 0) ?? ['millisecond', 1];
  const count = ms / size;
  return `${count} ${unit}${count === 1 ? '' : 's'}`;
}

/**
 * A deadline that the page's script counts down (`/static/countdown.js`, every second from the
 * page's load); without script it stays as the server wrote it.
 */
function countdown(at: number, now: number): string {
  return `<strong class="countdown" data-remaining-ms="${Math.max(0, at - now)}">${relativeTime(at, now)}</strong> <span class="muted">(${utcTime(at)})</span>`;
}

function page(
  title: string,
  body: string,
  theme?: string,
  scripts: readonly string[] = [],
): string {
  const themeAttribute = theme === 'dark' ? ' data-theme="dark"' : '';
  const extra = scripts.map((name) => `\n<script src="/static/${name}" defer></script>`).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Tessera demo</title>
<link rel="stylesheet" href="/static/demo.css">
<script src="/static/countdown.js" defer></script>${extra}
</head>
<body${themeAttribute}>
<main>
${body}
</main>
</body>
</html>`;
}

/** A message shown above a page's content; `kind` names it for tests and styles. */
export interface Notice {
  kind: string;
  text: string;
  /** Whether it reports a problem (an alert) rather than news (a status). */
  problem?: boolean;
}

function noticeBlock(notice: Notice | undefined): string {
  if (notice === undefined) return '';
  const role = notice.problem === true ? 'alert' : 'status';
  return `<p class="notice${notice.problem === true ? ' problem' : ''}" role="${role}" data-notice="${escapeHtml(notice.kind)}">${escapeHtml(notice.text)}</p>`;
}

/** What the sign-in page shows. */
export interface LoginView {
  /** The username to put back in the form, after a wrong password. */
  username?: string;
  notice?: Notice;
}

/** The sign-in page. */
export function loginPage(view: LoginView = {}): string {
  const username = view.username ?? '';
  // After a wrong password the cursor goes where the next keystroke belongs.
  const focusPassword = username !== '';
  return page(
    'Sign in',
    `<h1>Sign in</h1>
${noticeBlock(view.notice)}
<form method="post" action="/login">
  <label>Username <input name="username" value="${escapeHtml(username)}" autocomplete="username" required${focusPassword ? '' : ' autofocus'}></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required${focusPassword ? ' autofocus' : ''}></label>
  <button type="submit">Sign in</button>
</form>
<p class="muted">Demo users: alice / wonderland, bob / builder. Sign in from two browsers to see both sessions listed.</p>`,
  );
}

/** The session cookie as the browser holds it, without its value. */
export interface CookieView {
  name: string;
  /** Its attributes as set, such as `Path=/` and `HttpOnly`. */
  attributes: readonly string[];
  /** Whether it carries a Max-Age (the absolute deadline) or lasts as long as the browser runs. */
  persistent: boolean;
  /** The demo's own cookie that remembers the session's deadline. */
  deadlineCookie: string;
}

/** One of the user's sessions in the list. */
export interface SessionRow {
  handle: string;
  userAgent: string | undefined;
  ip: string | undefined;
  createdAt: number;
  lastSeenAt: number;
  current: boolean;
}

/** What the signed-in page shows. */
export interface HomeView {
  user: string;
  now: number;
  notice?: Notice;
  prefs: Readonly<Record<string, string>>;
  cookie: CookieView;
  session: {
    authenticatedAt: number;
    lastSeenAt: number;
    idleEndsAt: number;
    absoluteEndsAt: number;
    idleTimeout: number;
    absoluteTimeout: number;
  };
  sessions: readonly SessionRow[];
  /** Signing out the other sessions needs a sign-in at most `maxAge` ms old. */
  stepUp: { maxAge: number; needsPassword: boolean };
}

const THEMES = [
  ['light', 'Light'],
  ['dark', 'Dark'],
] as const;
const LANGUAGES = [
  ['en', 'English'],
  ['fr', 'Français'],
  ['de', 'Deutsch'],
  ['es', 'Español'],
] as const;

function select(name: string, options: ReadonlyArray<readonly [string, string]>, value?: string) {
  const items = options
    .map(
      ([option, label]) =>
        `<option value="${option}"${option === value ? ' selected' : ''}>${label}</option>`,
    )
    .join('');
  return `<select name="${name}">${items}</select>`;
}

/** Shows a client address without the IPv4-mapped IPv6 prefix Node gives IPv4 clients. */
function plainIp(ip: string | undefined): string {
  return ip === undefined ? 'unknown' : ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

function sessionRow(row: SessionRow, now: number): string {
  const action = row.current
    ? '<strong>This browser</strong>'
    : `<form method="post" action="/sessions/revoke"><input type="hidden" name="handle" value="${escapeHtml(row.handle)}"><button type="submit">Sign out</button></form>`;
  return `<tr${row.current ? ' class="current"' : ''}>
  <td>${escapeHtml(deviceName(row.userAgent))}</td>
  <td>${escapeHtml(plainIp(row.ip))}</td>
  <td>${timeElement(row.createdAt, now)}</td>
  <td>${timeElement(row.lastSeenAt, now)}</td>
  <td>${action}</td>
</tr>`;
}

/**
 * "Sign out all other sessions": a form that carries the password when the sign-in is older than
 * the step-up window. The page's script (`/static/step-up.js`) posts it through the JSON API
 * instead, and shows the password field when the server asks for it.
 */
function revokeOthersForm(stepUp: HomeView['stepUp']): string {
  const hidden = stepUp.needsPassword ? '' : ' hidden';
  const disabled = stepUp.needsPassword ? '' : ' disabled';
  return `<form method="post" action="/sessions/revoke-others" id="revoke-others" class="inline">
    <label id="reauth"${hidden}>Your password, to confirm <input name="password" type="password" autocomplete="current-password" required${disabled}></label>
    <button type="submit">Sign out all other sessions</button>
    <span id="reauth-message" class="notice problem" role="alert" hidden></span>
  </form>
  <p class="muted">Signing out your other sessions asks for your password unless you signed in or confirmed it within the last ${duration(stepUp.maxAge)}; confirming it moves this browser to a new session ID.</p>`;
}

/** The signed-in page: the two halves of the session, its deadlines, its data and its siblings. */
export function homePage(view: HomeView): string {
  const { now, session, cookie } = view;
  const prefEntries = Object.entries(view.prefs);
  const prefs = prefEntries.length
    ? `<ul class="prefs">${prefEntries.map(([name, value]) => `<li><code>${escapeHtml(name)}</code> = <code>${escapeHtml(value)}</code></li>`).join('')}</ul>`
    : '<span class="muted">none yet</span>';
  const others = view.sessions.some((s) => !s.current);
  return page(
    'Your session',
    `<header class="top">
  <h1>Welcome, ${escapeHtml(view.user)}</h1>
  <form method="post" action="/logout"><button type="submit">Sign out</button></form>
</header>
${noticeBlock(view.notice)}
<p class="lead">You are signed in. Your session lives on the server; your browser holds only a key to it, a signed random ID that means nothing by itself.</p>
<div class="halves">
<section id="browser-holds">
  <h2>What your browser holds</h2>
  <dl>
    <dt>Cookie</dt><dd><code>${escapeHtml(cookie.name)}</code></dd>
    <dt>Value</dt><dd>An opaque 256-bit ID and its signature. This page cannot read it (<code>HttpOnly</code>), and the server stores only a hash of the ID.</dd>
    <dt>Attributes</dt><dd>${cookie.attributes.map((a) => `<code>${escapeHtml(a)}</code>`).join(' ')}</dd>
    <dt>Kept until</dt><dd>${cookie.persistent ? 'the session&#39;s absolute deadline (<code>Max-Age</code>)' : 'the browser closes'}; the server may end the session sooner.</dd>
  </dl>
  <p class="muted">The demo adds a cookie of its own, <code>${escapeHtml(cookie.deadlineCookie)}</code>: the time this session ends if unused, so that the sign-in page can later say whether it expired or was ended from another device. It grants nothing.</p>
</section>
<section id="server-holds">
  <h2>What the server holds</h2>
  <dl>
    <dt>User</dt><dd>${escapeHtml(view.user)}</dd>
    <dt>Signed in</dt><dd>${timeElement(session.authenticatedAt, now)}</dd>
    <dt>Last seen</dt><dd>${timeElement(session.lastSeenAt, now)}</dd>
    <dt>Preferences</dt><dd id="prefs">${prefs}</dd>
  </dl>
  <form method="post" action="/prefs" class="inline" id="prefs-form">
    <label>Theme ${select('theme', THEMES, view.prefs.theme)}</label>
    <label>Language ${select('language', LANGUAGES, view.prefs.language)}</label>
    <button type="submit">Save preferences</button>
  </form>
  <p class="muted">Each preference is a key in the session&#39;s data. Scripts may also POST a JSON object of strings to <code>/api/prefs</code>.</p>
</section>
</div>
<section id="deadlines">
  <h2>When this session ends</h2>
  <dl>
    <dt>If unused</dt><dd id="idle-deadline">${countdown(session.idleEndsAt, now)}</dd>
    <dd class="muted">Each request from this browser moves it to ${duration(session.idleTimeout)} after that request.</dd>
    <dt>At the latest</dt><dd id="absolute-deadline">${countdown(session.absoluteEndsAt, now)}</dd>
    <dd class="muted">${duration(session.absoluteTimeout)} after the session began, however active you are.</dd>
  </dl>
  <p class="muted">The server enforces both from its own records, whatever the cookie says. The countdowns run from when this page loaded.</p>
</section>
<section id="sessions">
  <h2>Your sessions</h2>
  <div class="scroll"><table>
    <thead><tr><th>Device</th><th>IP address</th><th>Started</th><th>Last active</th><th></th></tr></thead>
    <tbody>
${view.sessions.map((row) => sessionRow(row, now)).join('\n')}
    </tbody>
  </table></div>
  ${others ? revokeOthersForm(view.stepUp) : ''}
  <p class="muted">Scripts and apps sign in with <code>POST /api/token</code> and send <code>Authorization: Bearer &lt;token&gt;</code>; their sessions are listed here too. Forms and scripts posted from another site are refused.</p>
</section>`,
    view.prefs.theme,
    ['step-up.js'],
  );
}
