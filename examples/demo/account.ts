/**
 * The demo's accounts, apart from HTTP: its users and their passwords, the preferences each keeps
 * in the session's data, and what a user may do to their own sessions.
 */
import { timingSafeEqual } from 'node:crypto';
import { isSessionError, type Session, type SessionManager } from '../../src/index.js';

/** The demo's users. Real applications store password hashes, never passwords. */
export const DEMO_USERS: Readonly<Record<string, string>> = { alice: 'wonderland', bob: 'builder' };

/** How many preferences a session keeps, and how long each value may be. */
export const MAX_PREFS = 20;
export const MAX_PREF_LENGTH = 200;

const PREF_PREFIX = 'pref:';
const MAX_HANDLE_LENGTH = 200;

type AnySession = Session<any>;

/** Whether `password` is `username`'s, compared in constant time; false for anything else. */
export function passwordMatches(username: unknown, password: unknown): boolean {
  if (typeof username !== 'string' || typeof password !== 'string') return false;
  const expected = Object.hasOwn(DEMO_USERS, username) ? DEMO_USERS[username]! : '';
  const a = Buffer.from(password);
  const b = Buffer.from(expected);
  return expected !== '' && a.length === b.length && timingSafeEqual(a, b);
}

/** The string value of a field of a parsed JSON or form body, or `''`. */
export function fieldOf(body: unknown, name: string): string {
  if (typeof body !== 'object' || body === null || !Object.hasOwn(body, name)) return '';
  const value = (body as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : '';
}

/** The session's preferences, by name. */
export function prefsOf(session: AnySession): Record<string, string> {
  const prefs: Record<string, string> = {};
  for (const key of session.keys()) {
    if (key.startsWith(PREF_PREFIX))
      prefs[key.slice(PREF_PREFIX.length)] = String(session.get(key));
  }
  return prefs;
}

/** Stores each entry of a JSON or form body as a preference; false, storing none, when invalid. */
export function savePrefs(session: AnySession, body: unknown): boolean {
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
  for (const [name, value] of entries) session.set(PREF_PREFIX + name, value);
  return true;
}

/** Ends one of the signed-in user's other sessions by its handle from the session list. */
export async function revokeOne(
  manager: SessionManager<any>,
  session: AnySession,
  handle: unknown,
): Promise<'revoked' | 'not-found' | 'current'> {
  if (typeof handle !== 'string' || handle === '' || handle.length > MAX_HANDLE_LENGTH)
    return 'not-found';
  const user = session.userId!;
  const target = (await manager.listUserSessions(user, session)).find((s) => s.handle === handle);
  if (target === undefined) return 'not-found';
  // This browser's own session ends with Sign out, which also clears its cookie.
  if (target.current) return 'current';
  const revoked = await manager.revokeUserSession(user, handle, { by: session });
  return revoked ? 'revoked' : 'not-found';
}

/**
 * Whether the user signed in or re-authenticated at most `maxAgeMs` ago, as a sensitive action
 * needs; the manager reports `reauthRequired` when not.
 */
export function recentlyAuthenticated(session: AnySession, maxAgeMs: number): boolean {
  try {
    session.requireRecentAuth(maxAgeMs);
    return true;
  } catch (error) {
    if (isSessionError(error, 'REAUTH_REQUIRED')) return false;
    throw error;
  }
}

/**
 * Whether the page should ask for the password with "sign out other sessions": the same rule as
 * {@link recentlyAuthenticated}, without reporting anything.
 */
export function needsPassword(session: AnySession, maxAgeMs: number, now: number): boolean {
  const at = session.authenticatedAt;
  return at === undefined || now - at > maxAgeMs;
}
