/**
 * The framework-agnostic session manager: it takes what a request carries (the Cookie header,
 * whether the request is HTTPS) and answers the session and, at the end, the headers to send.
 * The work lives in one module per step (see docs/architecture.md): `loading`, `saving`,
 * `headers`, `users`, `manager-options`, `events`, `store-calls`.
 *
 * @packageDocumentation
 */
import { Authentication } from './authentication.js';
import type { ResolvedCookieOptions } from './cookie.js';
import { contextOf } from './context.js';
import type { CsrfSettings } from './csrf-token.js';
import type { SessionEvents } from './events.js';
import { EventBus } from './events.js';
import type { HeaderTransportSettings } from './header-transport.js';
import type { RequestInfo } from './loading.js';
import { Loading } from './loading.js';
import type { SessionManagerOptions } from './manager-options.js';
import { settingsOf, toolsOf } from './manager-options.js';
import type { MaybePromise } from './maybe.js';
import { settle } from './maybe.js';
import type { Core } from './records.js';
import type { ResponseHeaders } from './headers.js';
import { Saving } from './saving.js';
import type { DefaultSessionData, Session } from './session.js';
import type { StoreCallObserver } from './store-calls.js';
import { StoreCalls } from './store-calls.js';
import type { SessionStore } from './store.js';
import type { SessionInfo } from './users.js';
import { Users } from './users.js';

export type { SessionManagerOptions } from './manager-options.js';
export type { RequestInfo } from './loading.js';
export type { ResponseHeaders } from './headers.js';
export type { SessionInfo } from './users.js';
export type { SessionEvents, RejectReason, WarningCode } from './events.js';
export type { StoreCallObserver, StoreFailure, StoreOperation } from './store-calls.js';

/**
 * Creates, finds, saves, expires and ends sessions on a {@link SessionStore}. One manager serves
 * a whole application; framework adapters wrap it.
 *
 * `load` and `commit` answer a value when nothing had to wait (the memory and SQLite stores with
 * `node:crypto`) and a promise otherwise; `await` works on both. They never throw: a failure is a
 * rejected promise.
 *
 * @typeParam Data - the session data type; see {@link SessionData}
 *
 * @example
 * ```ts
 * const manager = new SessionManager({ store: new MemoryStore(), secrets: [process.env.SESSION_SECRET!] });
 * const session = await manager.load({ cookie: req.headers.cookie, https: false });
 * session.set('visits', (session.get('visits') ?? 0) + 1);
 * const { setCookie } = await manager.commit(session);
 * ```
 */
export class SessionManager<Data extends object = DefaultSessionData> {
  /** The store sessions are kept in. */
  readonly store: SessionStore;
  /** Resolved cookie options. */
  readonly cookie: ResolvedCookieOptions;
  /**
   * The synchronizer-token field and header adapters read, or `undefined` when the
   * `csrfTokens` option is off.
   */
  readonly csrfTokens: CsrfSettings | undefined;
  /**
   * The header transport's request and response headers, or `undefined` when the
   * `headerTransport` option is off (for a CORS policy's allowed and exposed headers).
   */
  readonly headerTransport: HeaderTransportSettings | undefined;
  readonly #idle: number;
  readonly #absolute: number;
  readonly #events = new EventBus();
  readonly #loading: Loading;
  readonly #saving: Saving;
  readonly #users: Users;
  readonly #calls: StoreCalls;

  /**
   * Validates every option; a bad one throws `SessionError` with code `INVALID_OPTION`. Numbers
   * must be finite (`Infinity` and `NaN` are refused) and within their ranges.
   */
  constructor(options: SessionManagerOptions) {
    const settings = settingsOf(options);
    const tools = toolsOf(options);
    this.store = settings.store;
    this.cookie = settings.cookie;
    this.csrfTokens = settings.csrf;
    this.headerTransport = settings.transport;
    this.#idle = settings.idle;
    this.#absolute = settings.absolute;
    this.#calls = new StoreCalls(settings.storeTimeout, this.#events, settings.store.name);
    const core: Core = {
      settings,
      events: this.#events,
      calls: this.#calls,
      tools,
      owner: this,
    };
    this.#users = new Users(core);
    this.#saving = new Saving(core, this.#users);
    this.#loading = new Loading(core, this.#saving, new Authentication(core, this.#saving));
  }

  /** The idle timeout, in milliseconds. */
  get idleTimeout(): number {
    return this.#idle;
  }

  /** The absolute timeout, in milliseconds. */
  get absoluteTimeout(): number {
    return this.#absolute;
  }

  /** Subscribes to an event; answers a function that unsubscribes. A listener that throws is ignored. */
  on<E extends keyof SessionEvents>(
    event: E,
    listener: (payload: SessionEvents[E]) => void,
  ): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * Has `observer` watch every store call: told as each starts (where the call is made, in the
   * caller's context) and when it answers, fails or times out. Answers a function that stops it.
   * One observer per manager: a second throws `INVALID_OPTION`. `tessera-session/opentelemetry`
   * is built on this; without an observer, a store call costs nothing more.
   *
   * @example
   * ```ts
   * const stop = manager.observeStoreCalls({
   *   start: (operation) => ({ operation, started: performance.now() }),
   *   end: ({ operation, started }, failure) =>
   *     logger.debug({ operation, ms: performance.now() - started, code: failure?.error.code }),
   * });
   * ```
   */
  observeStoreCalls<Token>(observer: StoreCallObserver<Token>): () => void {
    return this.#calls.observe(observer);
  }

  /**
   * Finds the session a request belongs to. A missing, malformed, tampered, unknown or expired
   * cookie gives a fresh anonymous session (nothing is stored until it holds data). Every value
   * under the cookie's name is considered: those that fail verification are ignored, and when
   * more than one live session is presented none is adopted (`rejected`, reason `ambiguous`). A
   * store failure rejects with `STORE_UNAVAILABLE`, never with an empty session.
   *
   * Given the request's `method` and `header`, an unsafe request the cross-origin protection
   * refuses rejects with `CROSS_ORIGIN_REFUSED` before anything is read (see the `crossOrigin`
   * option). With the `headerTransport` option, a request carrying its header is read from the
   * header alone, never from its cookie.
   *
   * Answers the session itself when nothing had to wait, a promise otherwise.
   */
  load(info: RequestInfo): MaybePromise<Session<Data>> {
    return settle(() => this.#loading.load<Data>(info));
  }

  /**
   * Saves what the request changed (or touches a read-only session when due) and answers the
   * headers for the response. Call it once, before the response's headers go out. A stored
   * session whose user was set in this request moves to a new ID here (see `Session.setUser`).
   * With encryption, a due touch re-seals the record with its new expiry (a compare-and-set
   * update) instead of a bare touch. Rejects with `STORE_UNAVAILABLE` when the store fails: the
   * response must then not carry a session cookie.
   *
   * Answers the headers themselves when nothing had to wait, a promise otherwise.
   */
  commit(session: Session<Data>): MaybePromise<ResponseHeaders> {
    return settle(() => this.#saving.commit(contextOf(session)));
  }

  /**
   * A user's live sessions, most recently seen first, without session IDs. Pass the current
   * request's session to have it marked `current`. With encryption, a record whose columns
   * differ from what is sealed in it is left out and reported (`rejected`, reason `tampered`).
   * Throws `INVALID_USER_ID` for a user ID `setUser` would refuse, and `UNSUPPORTED` on a store
   * without a user index.
   */
  async listUserSessions(userId: string, current?: Session<Data>): Promise<SessionInfo[]> {
    const currentKey = current === undefined ? null : contextOf(current).key;
    return this.#users.list(userId, currentKey);
  }

  /**
   * Ends all of a user's sessions (logout everywhere, a password change), optionally all but
   * the `except` one. Answers how many were ended. The `revoked` event names the request of
   * `by` (default: `except`), the session of the request that asked. Throws `INVALID_USER_ID`
   * for a user ID `setUser` would refuse, and `UNSUPPORTED` on a store without a user index.
   */
  async revokeUserSessions(
    userId: string,
    options: { except?: Session<Data>; by?: Session<Data> } = {},
  ): Promise<number> {
    const { except, by = except } = options;
    return this.#users.revokeAll(
      userId,
      except === undefined ? undefined : (contextOf(except).key ?? undefined),
      by === undefined ? undefined : contextOf(by).request,
    );
  }

  /**
   * Ends one of a user's sessions by the handle from {@link SessionManager.listUserSessions}.
   * Answers `false`, ending nothing, when the handle leads to no live session of that user (with
   * encryption, the user sealed in the record decides, not the column). Throws
   * `INVALID_USER_ID` for a user ID `setUser` would refuse. Needs no user index. The `revoked`
   * event names the request of `by`, the session of the request that asked, when given.
   */
  async revokeUserSession(
    userId: string,
    handle: string,
    options: { by?: Session<Data> } = {},
  ): Promise<boolean> {
    const by = options.by;
    return this.#users.revokeOne(
      userId,
      handle,
      by === undefined ? undefined : contextOf(by).request,
    );
  }
}
