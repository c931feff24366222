/**
 * What the middleware keeps on each request it handles, so that the session's methods (and a
 * store's `regenerate` and `generate`) act through it.
 *
 * @packageDocumentation
 */
import type { IncomingMessage } from 'node:http';
import type { Session } from './session.js';
import type { Store } from './store.js';

/** A request as the middleware sees it (an Express request, or a plain node:http one). */
export interface SessionRequest extends IncomingMessage {
  /** The session; `undefined` when the middleware skipped the request or the session was destroyed. */
  session?: Session | null | undefined;
  /** The session ID; read-only by convention. */
  sessionID?: string | undefined;
  /** The store of the middleware that handled the request. */
  sessionStore?: Store | undefined;
  /** Set by `cookie-parser`; used as the secret when the middleware has none. */
  secret?: string | undefined;
  /** Set by Express from its "trust proxy" setting. */
  secure?: boolean | undefined;
  /** Set by Express when a router is mounted. */
  originalUrl?: string | undefined;
  /** Set by `cookie-parser`. */
  cookies?: Record<string, unknown> | undefined;
  /** Set by `cookie-parser` with a secret: values whose signature it verified. */
  signedCookies?: Record<string, unknown> | undefined;
}

/** A store callback. */
export type Callback = (err?: unknown) => void;

/** The middleware's per-request operations. @internal */
export interface RequestContext {
  /** The clock. */
  now(): number;
  /** Puts a new session with a new ID on the request (a store's `generate`). */
  generate(req: SessionRequest): void;
  save(session: Session, callback: Callback): void;
  reload(session: Session, callback: Callback): void;
  destroy(session: Session, callback: Callback): void;
  regenerate(req: SessionRequest, callback: Callback): void;
}

// Symbol.for, so that the ESM and the CommonJS builds of this module find each other's contexts.
const CONTEXT = Symbol.for('tessera.express-session.context.v1');

/** The context of a request the middleware handles. @internal */
export function contextOf(req: object | null | undefined): RequestContext | undefined {
  return req == null
    ? undefined
    : ((req as Record<symbol, RequestContext | undefined>)[CONTEXT] ?? undefined);
}

/** @internal */
export function attachContext(req: SessionRequest, context: RequestContext): void {
  Object.defineProperty(req, CONTEXT, {
    value: context,
    configurable: true,
    enumerable: false,
    writable: true,
  });
}

/** Ignores a missing callback. @internal */
export function noop(): void {}
