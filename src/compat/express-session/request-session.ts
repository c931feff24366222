/**
 * One request's session: loading it, making a new one, and its writes to the store (each in the
 * session's lane, see lanes.ts), with express-session's rules for when to save, touch and set the
 * cookie.
 *
 * @packageDocumentation
 */
import type { ServerResponse } from 'node:http';
import type { Callback, RequestContext, SessionRequest } from './context.js';
import type { CookieOptions } from './cookie.js';
import { makeCookie } from './cookie.js';
import { destroysOf, holdSession, inLane, markDestroyed, unholdSession } from './lanes.js';
import type { Config } from './options.js';
import { isSecure } from './request.js';
import type { EndingSession } from './response.js';
import { appendSetCookie } from './response.js';
import { createSessionFrom, Session } from './session.js';
import { signValue } from './signature.js';
import type { SessionData } from './store.js';
import type { StoreAnswer } from './store-call.js';
import { callStore, withDeadline } from './store-call.js';

type Snapshot = Map<string, string>;
type StoreMethod = 'get' | 'set' | 'destroy' | 'touch';

/** Each top-level key but `cookie`, as JSON: what "modified" is measured against. */
function snapshotOf(session: object): Snapshot {
  const snapshot: Snapshot = new Map();
  for (const key of Object.keys(session)) {
    if (key === 'cookie') continue;
    const json = JSON.stringify((session as Record<string, unknown>)[key]);
    if (json !== undefined) snapshot.set(key, json);
  }
  return snapshot;
}

function sameSnapshot(a: Snapshot, b: Snapshot): boolean {
  if (a.size !== b.size) return false;
  for (const [key, json] of a) if (b.get(key) !== json) return false;
  return true;
}

/**
 * The stored session with this request's changes laid over it: keys that changed between `base`
 * (what this request last read or wrote) and `now` are taken from `session`, the others kept as
 * stored. The cookie is always this request's.
 */
function mergeData(
  stored: Record<string, unknown>,
  base: Snapshot,
  now: Snapshot,
  session: Session,
): SessionData {
  const merged: Record<string, unknown> = {};
  for (const key of Object.keys(stored)) {
    if (key !== '__proto__' && key !== 'cookie') merged[key] = stored[key];
  }
  for (const key of new Set([...base.keys(), ...now.keys()])) {
    if (base.get(key) === now.get(key)) continue;
    if (now.has(key)) merged[key] = session[key];
    else delete merged[key];
  }
  merged.cookie = session.cookie;
  return merged as unknown as SessionData;
}

/** One request's session bookkeeping. @internal */
export class RequestSession implements RequestContext, EndingSession {
  cookieId: string | undefined;
  originalId: string | undefined;
  original: Snapshot = new Map();
  saved: Snapshot | undefined;
  /** The ID loaded from the store, whose saves merge. */
  loadedId: string | undefined;
  /** What this request last read from or wrote to the store, for the merge. */
  base: Snapshot | undefined;
  touched = false;
  /** The sessions this request holds (see `holdSession`), each with the destroys known then. */
  readonly held = new Map<string, number>();
  /** Set once the response is over: the request then holds nothing. */
  finished = false;

  constructor(
    readonly config: Config,
    readonly req: SessionRequest,
    readonly res: ServerResponse,
    readonly next: (err?: unknown) => void,
    readonly cookieOptions: CookieOptions,
    readonly keys: readonly Uint8Array[],
  ) {}

  now(): number {
    return this.config.now();
  }

  /** One store call, answered once (see {@link callStore}). */
  invoke(method: StoreMethod, args: unknown[], answer: StoreAnswer): void {
    callStore(this.config.store, method, args, answer);
  }

  /** A store read, answered within the store timeout. */
  call(method: StoreMethod, args: unknown[], answer: StoreAnswer): void {
    this.invoke(method, args, withDeadline(this.config.storeTimeout, method, answer).reply);
  }

  /** Holds session `sid` until the response is over, so that a destroy meanwhile stays known. */
  hold(sid: string): void {
    if (this.finished || this.held.has(sid)) return;
    this.held.set(sid, holdSession(this.config.store, sid));
  }

  /** The response is over: lets go of every session held. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const sid of this.held.keys()) unholdSession(this.config.store, sid);
    this.held.clear();
  }

  /**
   * A save or touch of session `sid`, in its lane: after this process's earlier writes of it have
   * been answered. `callback` is answered within the store timeout. `write` runs only while the
   * write may still go ahead (`mayWrite`): not when the deadline passed while it waited, nor when
   * the session was destroyed since this request loaded or made it (the callback then gets no
   * error, as for a session found gone). `write` calls `done` once the store answered its last call.
   */
  write(
    sid: string,
    method: StoreMethod,
    callback: Callback,
    write: (mayWrite: () => boolean, done: Callback) => void,
  ): void {
    const store = this.config.store;
    const seen = this.held.get(sid) ?? destroysOf(store, sid);
    const { reply, late } = withDeadline(this.config.storeTimeout, method, callback);
    inLane(store, sid, (lane, release) => {
      const mayWrite = () => !late() && lane.destroys === seen;
      const done: Callback = (err) => {
        release();
        reply(err);
      };
      if (mayWrite()) write(mayWrite, done);
      else done();
    });
  }

  /**
   * Deletes session `sid`, in its lane: after this process's earlier writes of it have landed, and
   * before its later ones, which will not write. Counted as destroyed at once; the store call runs
   * when its turn comes, even past the deadline, since a late delete only completes the logout.
   */
  remove(sid: string, callback: Callback): void {
    const store = this.config.store;
    markDestroyed(store, sid);
    const { reply } = withDeadline(this.config.storeTimeout, 'destroy', callback);
    inLane(store, sid, (_lane, release) => {
      this.invoke('destroy', [sid], (err) => {
        release();
        reply(err);
      });
    });
  }

  /**
   * The one live session among the IDs the cookies carry: `undefined` when none is live, or when
   * more than one is (a cookie tossed in from a sibling site must not pick the session). A session
   * a destroy was asked for while it was held counts as gone.
   */
  find(
    ids: readonly string[],
    callback: (err: unknown, found?: { id: string; data: SessionData }) => void,
  ): void {
    for (const id of ids) this.hold(id);
    let found: { id: string; data: SessionData } | undefined;
    const look = (index: number): void => {
      if (index === ids.length) return callback(null, found);
      const id = ids[index]!;
      this.call('get', [id], (err, data) => {
        if (err && err.code !== 'ENOENT') return callback(err);
        if (!err && data && destroysOf(this.config.store, id) === 0) {
          if (found !== undefined) return callback(null, undefined);
          found = { id, data: data as SessionData };
        }
        look(index + 1);
      });
    };
    look(0);
  }

  /** A new session with a new ID on `req.session` (express-session's `store.generate`). */
  generate(): void {
    const req = this.req;
    req.sessionID = this.config.genid(req);
    this.hold(req.sessionID);
    const session = new Session(req);
    const cookie = makeCookie(this.cookieOptions, this.config.now);
    if (this.cookieOptions.secure === 'auto' || this.cookieOptions.sameSite === 'auto') {
      const secure = isSecure(req, this.config.proxy);
      if (this.cookieOptions.secure === 'auto') cookie.secure = secure;
      if (this.cookieOptions.sameSite === 'auto') cookie.sameSite = secure ? 'none' : 'lax';
    }
    session.cookie = cookie;
    req.session = session;
  }

  start(): void {
    this.generate();
    this.originalId = this.req.sessionID;
    this.original = snapshotOf(this.req.session!);
  }

  inflate(data: SessionData): void {
    const session = createSessionFrom(this.req, data, this.config.now);
    this.originalId = this.req.sessionID;
    this.original = snapshotOf(session);
    if (!this.config.resave) this.saved = this.original;
    this.loadedId = this.req.sessionID;
    this.base = this.original;
  }

  save(session: Session, callback: Callback): void {
    const snapshot = snapshotOf(session);
    this.saved = snapshot;
    const sid = session.id;
    const merge = this.config.mergeWrites && this.loadedId !== undefined && sid === this.loadedId;
    this.write(sid, 'set', callback, (mayWrite, done) => {
      if (!merge) {
        this.invoke('set', [sid, session], (err) => done(err));
        return;
      }
      this.invoke('get', [sid], (err, stored) => {
        if (err && err.code !== 'ENOENT') return done(err);
        // Gone since it was loaded (destroyed, or expired): writing it would bring it back.
        if (err || !stored || typeof stored !== 'object') return done();
        // Checked again right before the write: a destroy or the deadline may have come meanwhile.
        if (!mayWrite()) return done();
        const merged = mergeData(
          stored as Record<string, unknown>,
          this.base ?? new Map(),
          snapshot,
          session,
        );
        this.invoke('set', [sid, merged], (error) => {
          if (!error) this.base = snapshot;
          done(error);
        });
      });
    });
  }

  touch(sid: string, session: Session, callback: Callback): void {
    this.write(sid, 'touch', callback, (_mayWrite, done) =>
      this.invoke('touch', [sid, session], (err) => done(err)),
    );
  }

  reload(session: Session, callback: Callback): void {
    const req = this.req;
    const sid = session.id;
    const seen = this.held.get(sid) ?? destroysOf(this.config.store, sid);
    this.call('get', [sid], (err, data) => {
      if (err) return callback(err);
      if (!data || destroysOf(this.config.store, sid) !== seen) {
        return callback(new Error('failed to load session'));
      }
      try {
        const reloaded = createSessionFrom(req, data as SessionData, this.config.now);
        if (reloaded.id === this.loadedId) this.base = snapshotOf(reloaded);
      } catch (error) {
        return callback(error);
      }
      callback();
    });
  }

  destroy(session: Session, callback: Callback): void {
    delete this.req.session;
    this.remove(session.id, callback);
  }

  regenerate(req: SessionRequest, callback: Callback): void {
    this.remove(req.sessionID!, (err) => {
      try {
        this.generate();
      } catch (error) {
        return callback(error);
      }
      callback(err);
    });
  }

  isModified(session: Session): boolean {
    return this.originalId !== session.id || !sameSnapshot(this.original, snapshotOf(session));
  }

  isSaved(session: Session): boolean {
    return (
      this.originalId === session.id &&
      this.saved !== undefined &&
      sameSnapshot(this.saved, snapshotOf(session))
    );
  }

  shouldSave(session: Session): boolean {
    if (typeof this.req.sessionID !== 'string') return false;
    return !this.config.saveUninitialized &&
      this.saved === undefined &&
      this.cookieId !== this.req.sessionID
      ? this.isModified(session)
      : !this.isSaved(session);
  }

  shouldTouch(session: Session): boolean {
    if (typeof this.req.sessionID !== 'string') return false;
    return this.cookieId === this.req.sessionID && !this.shouldSave(session);
  }

  shouldSetCookie(session: Session): boolean {
    if (typeof this.req.sessionID !== 'string') return false;
    return this.cookieId !== this.req.sessionID
      ? this.config.saveUninitialized || this.isModified(session)
      : this.config.rolling || (session.cookie.expires != null && this.isModified(session));
  }

  /** The live session on the request, if it is one this middleware can work with. */
  current(): Session | undefined {
    const session = this.req.session;
    if (typeof session !== 'object' || session === null) return undefined;
    if (
      typeof session.touch !== 'function' ||
      typeof session.cookie !== 'object' ||
      session.cookie === null
    ) {
      return undefined;
    }
    return session;
  }

  /** Runs as the response's headers are written: sets the cookie when due. */
  onHeaders(): void {
    const session = this.current();
    if (session === undefined || !this.shouldSetCookie(session)) return;
    if (session.cookie.secure && !isSecure(this.req, this.config.proxy)) return;
    if (!this.touched) {
      session.touch();
      this.touched = true;
    }
    try {
      const value = `s:${signValue(this.req.sessionID!, this.keys[0]!)}`;
      appendSetCookie(this.res, session.cookie.serialize(this.config.name, value));
    } catch (error) {
      this.failedLate(error);
    }
  }

  /**
   * An error after the status and headers went out: the application hears of it through
   * `onLateError` (a process warning by default) and, as in express-session, through `next`.
   */
  failedLate(error: unknown): void {
    try {
      this.config.onLateError(error, this.req);
    } catch {
      // The report is the application's; its failure must not end the process mid-response.
    }
    setImmediate(this.next, error);
  }

  /** What must happen in the store before the response may finish, if anything. */
  endOperation(): ((done: StoreAnswer) => void) | undefined {
    const req = this.req;
    if (this.config.unsetDestroy && req.sessionID && req.session == null) {
      return (done) => this.remove(req.sessionID!, done);
    }
    const session = this.current();
    if (session === undefined) return undefined;
    if (!this.touched) {
      session.touch();
      this.touched = true;
    }
    if (this.shouldSave(session)) return (done) => session.save(done);
    if (typeof this.config.store.touch === 'function' && this.shouldTouch(session)) {
      return (done) => this.touch(req.sessionID!, session, done);
    }
    return undefined;
  }
}
