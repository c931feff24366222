/**
 * `tessera-session/node`: sessions for plain `node:http` handlers, and the node:http plumbing the
 * Express and Koa adapters share: a request's {@link RequestInfo}, and a gate that holds the
 * response's headers until the session is committed.
 *
 * @packageDocumentation
 */
import { ServerResponse as ServerResponseClass } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { RequestInfo, ResponseHeaders, SessionManager } from '../manager.js';
import type { MaybePromise } from '../maybe.js';
import { isPromiseLike, settle, andThen } from '../maybe.js';
import type { DefaultSessionData, Session } from '../session.js';
import { SessionError, errorAnswerOf } from '../errors.js';
import { csrfRefusal } from '../csrf-token.js';

/**
 * Answers a request whose session could not be loaded or saved, or that was refused (a
 * `SessionError` with code `CROSS_ORIGIN_REFUSED`, or `CSRF_TOKEN_INVALID`): branch on
 * `error.code` for a page of your own. The default is {@link sendSessionError}.
 */
export type NodeErrorHandler = (error: unknown, req: IncomingMessage, res: ServerResponse) => void;

/** Options of the node:http adapter. */
export interface NodeSessionOptions {
  /** What to answer when the store fails. @defaultValue {@link sendSessionError} */
  onError?: NodeErrorHandler;
}

/**
 * The default error answer (see `errorAnswerOf`): 401 `REAUTH_REQUIRED` and 403
 * `CROSS_ORIGIN_REFUSED` as JSON `{ error, code }`, 403 for a CSRF token, 503 with
 * `Retry-After: 1` for store trouble, 500 otherwise; every header set before is dropped, so no
 * session cookie goes out, and nothing internal is shown.
 */
export function sendSessionError(error: unknown, _req: IncomingMessage, res: ServerResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  const { status, headers, body } = errorAnswerOf(error);
  res.writeHead(status, { ...headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * A request's session inputs; its address, its target and its other headers are read only when
 * the manager asks.
 */
class NodeRequestInfo implements RequestInfo {
  readonly cookie: string | undefined;
  readonly https: boolean;
  readonly forwardedProto: string | undefined;
  readonly userAgent: string | undefined;
  readonly method: string | undefined;
  readonly #req: IncomingMessage;
  readonly #headers: IncomingMessage['headers'];
  readonly #ip: ClientAddress | undefined;

  constructor(req: IncomingMessage, ip: ClientAddress | undefined) {
    // Headers read once: reading a property of an Express request is costly.
    const headers = req.headers;
    const forwarded = headers['x-forwarded-proto'];
    this.cookie = headers.cookie;
    this.https = (req.socket as TLSSocket | undefined)?.encrypted === true;
    this.forwardedProto = Array.isArray(forwarded) ? forwarded[0] : forwarded;
    this.userAgent = headers['user-agent'];
    this.method = req.method;
    this.#req = req;
    this.#headers = headers;
    this.#ip = ip;
  }

  get ip(): string | undefined {
    const ip = this.#ip;
    return typeof ip === 'function' ? ip(this.#req) : (ip ?? this.#req.socket?.remoteAddress);
  }

  /** The target as received: Express's `originalUrl`, before a mount point is cut from `url`. */
  get url(): string | undefined {
    return (this.#req as { originalUrl?: string }).originalUrl ?? this.#req.url;
  }

  header(name: string): string | undefined {
    const value = this.#headers[name];
    return Array.isArray(value) ? value[0] : value;
  }
}

/**
 * A request's client address, or a function that works it out from the request (called only if
 * a session is created or regenerated).
 */
export type ClientAddress = string | ((req: IncomingMessage) => string | undefined);

/**
 * The parts of a node:http request that matter to its session. `ip` is the client address (the
 * socket's when not given); a function is called only if a session is created or regenerated.
 */
export function requestInfoOf(req: IncomingMessage, ip?: ClientAddress): RequestInfo {
  return new NodeRequestInfo(req, ip);
}

/** Adds the session's headers to a response that has not sent its headers yet. */
export function applyResponseHeaders(res: ServerResponse, headers: ResponseHeaders): void {
  if (headers.setCookie.length > 0) {
    const existing = res.getHeader('set-cookie');
    const list =
      existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
    res.setHeader('Set-Cookie', [...list, ...headers.setCookie]);
  }
  if (headers.cacheControl !== undefined) res.setHeader('Cache-Control', headers.cacheControl);
  if (headers.token !== undefined) res.setHeader(headers.token.header, headers.token.value);
}

/**
 * {@link applyResponseHeaders}, left out when the response's headers went out already (a call
 * that went around the gate). `headersSent` is read only when `setHeader` refuses, since reading
 * a property of an Express response is costly.
 */
function applyUnlessSent(res: ServerResponse, headers: ResponseHeaders): void {
  if (headers.setCookie.length === 0 && headers.cacheControl === undefined) return;
  try {
    applyResponseHeaders(res, headers);
  } catch (error) {
    if (!res.headersSent) throw error;
  }
}

type Method = (...args: any[]) => any;
const HELD_METHODS = ['writeHead', 'write', 'end', 'flushHeaders'] as const;
type HeldMethod = (typeof HELD_METHODS)[number];

/**
 * Holds back a response's header-sending calls until its session is committed, then adds the
 * session's headers and lets the calls through in order. When the commit fails, the held calls
 * are dropped and `fail` answers instead, so no cookie goes out for a session that was not saved.
 */
class HeaderGate {
  /** Set once the session is committed (or failed): calls then go straight through. */
  open = false;
  #committing = false;
  #held: [Method, unknown[]][] | undefined;

  constructor(
    readonly res: ServerResponse,
    readonly commit: () => MaybePromise<ResponseHeaders>,
    readonly fail: (error: unknown) => void,
  ) {}

  call(original: Method, args: unknown[], name: HeldMethod): unknown {
    const res = this.res;
    if (this.open) return original.apply(res, args);
    if (!this.#committing) {
      this.#committing = true;
      const headers = settle(this.commit);
      if (!(headers instanceof Promise)) {
        this.#open();
        applyUnlessSent(res, headers);
        return original.apply(res, args);
      }
      headers.then(
        (answer) => this.#release(answer),
        (error: unknown) => {
          this.#open();
          this.#held = undefined;
          this.fail(error);
        },
      );
    }
    (this.#held ??= []).push([original, args]);
    // What the real method would answer at once.
    return name === 'write' ? true : name === 'flushHeaders' ? undefined : res;
  }

  #release(headers: ResponseHeaders): void {
    const res = this.res;
    this.#open();
    applyUnlessSent(res, headers);
    const held = this.#held ?? [];
    this.#held = undefined;
    try {
      for (const [method, args] of held) method.apply(res, args);
    } catch (error) {
      // The caller that made the held call has moved on; a late throw can only end the response.
      res.destroy(error instanceof Error ? error : undefined);
    }
  }

  #open(): void {
    this.open = true;
    gates.delete(this.res);
  }
}

/**
 * Puts the gate in front of the named methods of the response itself. Written out name by name:
 * a property stored under a computed name takes V8's generic (megamorphic) path on every request.
 */
function gateOwnMethods(gate: HeaderGate, names: readonly HeldMethod[] = HELD_METHODS): void {
  const res = gate.res as unknown as Record<HeldMethod, Method>;
  const { writeHead, write, end, flushHeaders } = res;
  const all = names === HELD_METHODS;
  if (all || names.includes('writeHead')) {
    res.writeHead = (...args: unknown[]) => gate.call(writeHead, args, 'writeHead');
  }
  if (all || names.includes('write')) {
    res.write = (...args: unknown[]) => gate.call(write, args, 'write');
  }
  if (all || names.includes('end')) {
    res.end = (...args: unknown[]) => gate.call(end, args, 'end');
  }
  if (all || names.includes('flushHeaders')) {
    res.flushHeaders = (...args: unknown[]) => gate.call(flushHeaders, args, 'flushHeaders');
  }
}

/**
 * The gates of responses gated through an application's prototype (see {@link holdHeaders}),
 * kept beside each response until its gate opens.
 */
const gates = new WeakMap<object, HeaderGate>();
const gatedPrototypes = new WeakSet<object>();

/** Makes a prototype's held methods consult the response's gate in {@link gates}, once. */
function gatePrototype(prototype: object): void {
  if (gatedPrototypes.has(prototype)) return;
  const target = prototype as Record<HeldMethod, Method>;
  for (const name of HELD_METHODS) {
    const original = target[name];
    Object.defineProperty(prototype, name, {
      configurable: true,
      writable: true,
      enumerable: false,
      value(this: ServerResponse, ...args: unknown[]) {
        const gate = gates.get(this);
        return gate === undefined ? original.apply(this, args) : gate.call(original, args, name);
      },
    });
  }
  gatedPrototypes.add(prototype);
}

/**
 * Holds back everything that would send the response's headers (`writeHead`, `write`, `end`,
 * `flushHeaders`) until `commit` answers (at once, or through a promise), then adds its headers
 * and lets the held calls through in order. When the commit fails, the held output is dropped and
 * `fail` answers instead.
 *
 * The gate goes on the response's own methods or, given `prototype` (Express's per-application
 * `app.response`), once on that prototype with the gate kept beside the response, because four
 * methods added to an Express response cost some 15 % of a read-only request (callgrind).
 * Methods already on the response itself (compression's, say) are gated there too. Node's own
 * prototype is never changed.
 */
function holdHeaders(
  res: ServerResponse,
  commit: () => MaybePromise<ResponseHeaders>,
  fail: (error: unknown) => void,
  prototype?: object,
): void {
  const gate = new HeaderGate(res, commit, fail);
  if (prototype === undefined || prototype === ServerResponseClass.prototype) {
    gateOwnMethods(gate);
    return;
  }
  gatePrototype(prototype);
  gates.set(res, gate);
  // Checked by name first: most responses have none of their own, and then no array is made.
  const own = res as object;
  if (
    Object.hasOwn(own, 'writeHead') ||
    Object.hasOwn(own, 'write') ||
    Object.hasOwn(own, 'end') ||
    Object.hasOwn(own, 'flushHeaders')
  ) {
    gateOwnMethods(
      gate,
      HELD_METHODS.filter((name) => Object.hasOwn(own, name)),
    );
  }
}

/**
 * Holds back the response's headers until `commit` has saved the session, then adds its headers
 * (see {@link holdHeaders}). If the commit fails, the held output is dropped and `onFailure`
 * answers instead (a 503 by default), so no cookie is sent for a session that was not saved.
 */
export function commitBeforeHeaders(
  res: ServerResponse,
  commit: () => MaybePromise<ResponseHeaders>,
  onFailure: (error: unknown) => void,
): void {
  holdHeaders(res, commit, onFailure);
}

/**
 * Whether a gate that has not opened yet stands beside the response: a session layer mounted
 * earlier took it (one mounted twice, or in an application and its sub-application). @internal
 */
export function hasPendingGate(res: ServerResponse): boolean {
  return gates.get(res)?.open === false;
}

/**
 * Loads the request's session and arranges for it to be saved, and its cookie set, before the
 * response's headers go out: for a handler that already has `req` and `res`. Answers the session
 * (at once when the manager did, else a promise; `await` works on both); a store failure at load
 * is a rejection, after nothing was sent. `onError` answers a failure at save (a 503 by
 * default), `ip` is the client address (see {@link requestInfoOf}), and `prototype` is Express's
 * `app.response` (see {@link holdHeaders}).
 *
 * With the manager's `csrfTokens`, an unsafe request is a rejection with `CSRF_TOKEN_INVALID`
 * (answered 403) unless its token header, or the form field of a `req.body` parsed before, holds
 * a valid token: a plain node:http server parses a form, and sets `req.body`, before it calls
 * the session handler.
 */
export function attachSession<Data extends object = DefaultSessionData>(
  manager: SessionManager<Data>,
  req: IncomingMessage,
  res: ServerResponse,
  onError: NodeErrorHandler = sendSessionError,
  ip?: ClientAddress,
  prototype?: object,
): MaybePromise<Session<Data>> {
  return andThen(manager.load(requestInfoOf(req, ip)), (session) => {
    // Refused before the gate goes on: a refused request saves nothing.
    const refused =
      manager.csrfTokens === undefined
        ? undefined
        : csrfRefusal(session, req.method, (name) => req.headers[name], bodyOf(req));
    if (refused !== undefined) return Promise.reject(refused);
    holdHeaders(
      res,
      () => manager.commit(session),
      (error) => onError(error, req, res),
      prototype,
    );
    return session;
  });
}

/** The body a parser mounted before the session layer left on the request, if any. */
function bodyOf(req: IncomingMessage): unknown {
  return (req as { body?: unknown }).body;
}

/** A plain node:http handler that receives the session as a third argument. */
export type SessionHandler<Data extends object> = (
  req: IncomingMessage,
  res: ServerResponse,
  session: Session<Data>,
) => unknown;

/**
 * Wraps a node:http handler so it receives the request's session.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { withSession } from 'tessera-session/node';
 * createServer(withSession(manager, (req, res, session) => {
 *   session.set('visits', (session.get('visits') ?? 0) + 1);
 *   res.end(`visit ${session.get('visits')}`);
 * })).listen(3000);
 * ```
 */
export function withSession<Data extends object = DefaultSessionData>(
  manager: SessionManager<Data>,
  handler: SessionHandler<Data>,
  options: NodeSessionOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const onError = options.onError ?? sendSessionError;
  return (req, res) => {
    const loaded = attachSession(manager, req, res, onError);
    if (loaded instanceof Promise) {
      loaded.then(
        (session) => runHandler(handler, req, res, session),
        (error: unknown) => onError(error, req, res),
      );
    } else runHandler(handler, req, res, loaded);
  };
}

/**
 * Calls a {@link SessionHandler}; a handler that returns no promise costs no promise, so a
 * synchronous handler runs as it would without sessions.
 */
function runHandler<Data extends object>(
  handler: SessionHandler<Data>,
  req: IncomingMessage,
  res: ServerResponse,
  session: Session<Data>,
): void {
  let result: unknown;
  try {
    result = handler(req, res, session);
  } catch (error) {
    handlerFailed(error, req, res);
    return;
  }
  // Promise.resolve answers a native promise itself, and adopts any other thenable.
  if (isPromiseLike(result)) {
    Promise.resolve(result).then(undefined, (error: unknown) => handlerFailed(error, req, res));
  }
}

/** Answers a handler's failure with a bare 500 (or a SessionError's own status), hiding its message. */
function handlerFailed(error: unknown, req: IncomingMessage, res: ServerResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendSessionError(error instanceof SessionError ? error : new Error('handler failed'), req, res);
}
