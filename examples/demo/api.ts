/**
 * The demo's JSON API under `/api`, for the page's script and for API clients. A browser sends
 * its session cookie; an API client gets a token from `POST /api/token` and sends it as
 * `Authorization: Bearer <token>` (the manager's header transport), and its responses set no
 * cookie. A missing, tampered, unknown or ended token is a visitor: 401 where a user is needed.
 *
 * - `POST /api/token` `{ username, password }` → `{ token }`
 * - `GET /api/me` → the user, preferences and session times
 * - `POST /api/prefs` `{ name: value, ... }` → `{ prefs }`
 * - `GET /api/sessions` → the user's sessions: handle, device, address, times; never an ID
 * - `POST /api/sessions/revoke` `{ handle }` → `{ revoked: true }`
 * - `POST /api/sessions/revoke-others` → `{ revoked: count }`; needs a recent authentication,
 *   else 401 `{ "code": "REAUTH_REQUIRED" }`
 * - `POST /api/reauth` `{ password }` → `{ authenticatedAt }`, under a new session ID
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { SessionManager } from '../../src/index.js';
import { fieldOf, MAX_PREFS, passwordMatches, prefsOf, revokeOne, savePrefs } from './account.js';
import { deviceName } from './device.js';

/** Answers 401 to a request without a signed-in user. */
export function requireUser(req: Request, res: Response, next: NextFunction): void {
  if (req.session.userId === null) res.status(401).json({ error: 'not signed in' });
  else next();
}

/**
 * The JSON API on `manager`; `reauthMaxAge` is how recent (ms) a sign-in must be for
 * `revoke-others`. Its `REAUTH_REQUIRED` is thrown for the application's `sessionErrors()`.
 */
export function apiRouter(manager: SessionManager<any>, reauthMaxAge: number): express.Router {
  const api = express.Router();

  api.post('/token', async (req, res) => {
    if (manager.headerTransport === undefined) {
      res.status(404).json({ error: 'tokens need the manager option headerTransport' });
      return;
    }
    const username = fieldOf(req.body, 'username');
    if (!passwordMatches(username, fieldOf(req.body, 'password'))) {
      res.status(401).json({ error: 'wrong username or password' });
      return;
    }
    await req.session.login(username);
    // Stores the session now and hands its token over; this response sets no cookie.
    res.json({ token: await req.session.issueToken() });
  });

  api.get('/me', requireUser, (req, res) => {
    res.json({
      user: req.session.userId,
      prefs: prefsOf(req.session),
      session: {
        createdAt: req.session.createdAt,
        authenticatedAt: req.session.authenticatedAt ?? null,
        expiresAt: req.session.expiresAt,
        absoluteExpiresAt: req.session.absoluteExpiresAt,
      },
    });
  });

  api.post('/prefs', requireUser, (req, res) => {
    if (savePrefs(req.session, req.body)) res.json({ prefs: prefsOf(req.session) });
    else
      res
        .status(400)
        .json({ error: `up to ${MAX_PREFS} names of [A-Za-z0-9_-] with string values` });
  });

  api.get('/sessions', requireUser, async (req, res) => {
    const list = await manager.listUserSessions(req.session.userId!, req.session);
    res.json({
      sessions: list.map((s) => ({
        handle: s.handle,
        device: deviceName(s.userAgent),
        userAgent: s.userAgent ?? null,
        ip: s.ip ?? null,
        createdAt: s.createdAt,
        lastSeenAt: s.lastSeenAt,
        authenticatedAt: s.authenticatedAt ?? null,
        expiresAt: s.expiresAt,
        current: s.current,
      })),
    });
  });

  api.post('/sessions/revoke', requireUser, async (req, res) => {
    const outcome = await revokeOne(manager, req.session, fieldOf(req.body, 'handle'));
    if (outcome === 'revoked') res.json({ revoked: true });
    else if (outcome === 'current')
      res.status(400).json({ error: 'this is the current session: POST /logout' });
    else res.status(404).json({ error: 'no such session' });
  });

  api.post('/sessions/revoke-others', requireUser, async (req, res) => {
    req.session.requireRecentAuth(reauthMaxAge);
    const revoked = await manager.revokeUserSessions(req.session.userId!, { except: req.session });
    res.json({ revoked });
  });

  api.post('/reauth', requireUser, async (req, res) => {
    if (!passwordMatches(req.session.userId, fieldOf(req.body, 'password'))) {
      res.status(401).json({ error: 'wrong password' });
      return;
    }
    // A fresh authentication time and a new session ID: the cookie or token sent is dead.
    await req.session.reauthenticate();
    res.json({ authenticatedAt: req.session.authenticatedAt });
  });

  return api;
}
