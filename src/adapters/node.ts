/**
 * `tessera-session/node`: sessions for plain `node:http` handlers, and the response plumbing that the
 * Express adapter shares.
 *
 * @packageDocumentation
 */
import { ServerResponse as ServerResponseClass } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { RequestInfo, ResponseHeaders, SessionManager } from '../manager.js';
import type { DefaultSessionData, Session } from '../session.js';
import { SessionError } from '../errors.js';

/**
 * Answers a request whose session could not be loaded or saved. The default sends 503 (or the
 * error's status) with a short plain-text body and `Retry-After: 1`, never a session cookie and
 * never the error's details.
 */
export type NodeErrorHandler = (error: unknown, req: IncomingMessage, res: ServerResponse) => void;

/** Options of the node:http adapter. */
export interface NodeSessionOptions {
  /** What to answer when the store fails. @defaultValue {@link sendSessionError} */
  onError?: NodeErrorHandler;
}

/** The default error answer: 503 for store trouble, 500 otherwise, nothing internal shown. */
export function sendSessionError(error: unknown, _req: IncomingMessage, res: ServerResponse): void {
  const status = error instanceof SessionError ? error.status : 500;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  const body = status === 503 ? 'Service Unavailable\n' : 'Internal Server Error\n';
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    ...(status === 503 ? { 'Retry-After': '1' } : {}),
  });
  res.end(body);
}

/** A request's session inputs; its address is worked out only when read. */
class NodeRequestInfo implements RequestInfo {
  readonly cookie: string | undefined;
  readonly https: boolean;
  readonly forwardedProto: string | undefined;
  readonly userAgent: string | undefined;
  readonly #req: IncomingMessage;
  readonly #ip: ClientAddress | undefined;

  constructor(req: IncomingMessage, ip: ClientAddress | undefined) {
    // Read once: behind Express, every property read from a request misses V8's caches.
    const headers = req.headers;
    const forwarded = headers['x-forwarded-proto'];
    this.cookie = headers.cookie;
    this.https = (req.socket as TLSSocket | undefined)?.encrypted === true;
    this.forwardedProto = Array.isArray(forwarded) ? forwarded[0] : forwarded;
    this.userAgent = headers['user-agent'];
    this.#req = req;
    this.#ip = ip;
  }

  get ip(): string | undefined {
    const ip = this.#ip;
    return typeof ip === 'function' ? ip(this.#req) : (ip ?? this.#req.socket?.remoteAddress);
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
}

/**
 * {@link applyResponseHeaders}, left out when the response's headers went out already (a call
 * that went around the gate). Asked only when `setHeader` refuses: behind Express, reading
 * `headersSent` first would cost every response a property read that misses V8's caches.
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

/** What a held call answers at once, as the real method would. */
function heldAnswer(res: ServerResponse, name: HeldMethod): unknown {
  return name === 'write' ? true : name === 'flushHeaders' ? undefined : res;
}

/**
 * The calls held back on one response until its session is saved. The subclasses say how to
 * save: {@link CallbackGate} through the callbacks of {@link commitBeforeHeaders},
 * {@link SessionGate} through a manager directly, which spares a request three closures.
 */
abstract class HeaderGate {
  protected readonly res: ServerResponse;
  #held: [Method, unknown[]][] | undefined;
  #started = false;
  /** Set once the session is saved (or failed): calls then go straight through. */
  open = false;
  /** The response's methods that {@link gateOwnMethods} replaced, put back when the gate opens. */
  replaced: Partial<OwnMethods> | undefined;

  constructor(res: ServerResponse) {
    this.res = res;
  }

  /** Saves the session; answers the headers to add. */
  protected abstract commit(): Promise<ResponseHeaders>;
  /** Saves the session at once when it can; answers `undefined` when `commit` must run. */
  protected abstract commitNow(): ResponseHeaders | undefined;
  /** Answers the response when saving failed. */
  protected abstract fail(error: unknown): void;

  hold(method: Method, args: unknown[], name: HeldMethod): unknown {
    if (!this.#started) {
      const headers = this.commitNow();
      if (headers !== undefined) {
        this.#openGate();
        applyUnlessSent(this.res, headers);
        return method.apply(this.res, args);
      }
    }
    (this.#held ??= []).push([method, args]);
    if (!this.#started) this.#start();
    return heldAnswer(this.res, name);
  }

  #start(): void {
    this.#started = true;
    const res = this.res;
    this.commit().then(
      (headers) => {
        this.#openGate();
        applyUnlessSent(res, headers);
        const held = this.#held ?? [];
        this.#held = undefined;
        try {
          for (const [method, args] of held) method.apply(res, args);
        } catch (error) {
          // The caller that made the held call has moved on; a late throw can only end the response.
          res.destroy(error instanceof Error ? error : undefined);
        }
      },
      (error: unknown) => {
        this.#openGate();
        this.#held = undefined;
        this.fail(error);
      },
    );
  }

  #openGate(): void {
    this.open = true;
    const res = this.res;
    gates.delete(res);
    const replaced = this.replaced;
    if (replaced === undefined) return;
    const target = res as unknown as OwnMethods;
    for (const name of HELD_METHODS) {
      const original = replaced[name];
      if (original !== undefined) target[name] = original;
    }
  }
}

/** A gate that saves through the callbacks given to {@link commitBeforeHeaders}. */
class CallbackGate extends HeaderGate {
  readonly #commit: () => Promise<ResponseHeaders>;
  readonly #commitNow: (() => ResponseHeaders | undefined) | undefined;
  readonly #onFailure: (error: unknown) => void;

  constructor(
    res: ServerResponse,
    commit: () => Promise<ResponseHeaders>,
    onFailure: (error: unknown) => void,
    commitNow: (() => ResponseHeaders | undefined) | undefined,
  ) {
    super(res);
    this.#commit = commit;
    this.#onFailure = onFailure;
    this.#commitNow = commitNow;
  }

  protected override commit(): Promise<ResponseHeaders> {
    return this.#commit();
  }

  protected override commitNow(): ResponseHeaders | undefined {
    return this.#commitNow?.();
  }

  protected override fail(error: unknown): void {
    this.#onFailure(error);
  }
}

/** A gate that saves one session through its manager, for {@link attachSessionNow}. */
class SessionGate<Data extends object> extends HeaderGate {
  readonly #manager: SessionManager<Data>;
  readonly #session: Session<Data>;
  readonly #req: IncomingMessage;
  readonly #onError: NodeErrorHandler;

  constructor(
    manager: SessionManager<Data>,
    session: Session<Data>,
    req: IncomingMessage,
    res: ServerResponse,
    onError: NodeErrorHandler,
  ) {
    super(res);
    this.#manager = manager;
    this.#session = session;
    this.#req = req;
    this.#onError = onError;
  }

  protected override commit(): Promise<ResponseHeaders> {
    return this.#manager.commit(this.#session);
  }

  protected override commitNow(): ResponseHeaders | undefined {
    return this.#manager.commitNow(this.#session);
  }

  protected override fail(error: unknown): void {
    this.#onError(error, this.#req, this.res);
  }
}

/**
 * The gate of each response gated through its prototype, until it opens. Kept beside the
 * response rather than on it: a property added to a response whose prototype Express swapped
 * costs a new hidden class (see the Express adapter). Entries are deleted when the gate opens:
 * left to the garbage collector, they made every young-generation collection slower (measured
 * with `--trace-gc`).
 */
const gates = new WeakMap<object, HeaderGate>();
/** Prototypes whose held methods consult {@link gates}. */
const gatedPrototypes = new WeakSet<object>();

/**
 * Makes a response prototype's held methods consult the response's gate in {@link gates}; a
 * response without a gate (or with an open one) goes straight through.
 */
function gatePrototype(prototype: object): void {
  if (gatedPrototypes.has(prototype)) return;
  const target = prototype as Record<HeldMethod, Method>;
  for (const name of HELD_METHODS) {
    const original = target[name];
    Object.defineProperty(prototype, name, {
      configurable: true,
      writable: true,
      enumerable: false,
      value: function (this: ServerResponse) {
        const gate = gates.get(this);
        return gate === undefined || gate.open
          ? Reflect.apply(original, this, arguments) // eslint-disable-line prefer-rest-params -- see heldArguments
          : gate.hold(original, heldArguments(arguments), name); // eslint-disable-line prefer-rest-params -- see heldArguments
      },
    });
  }
  gatedPrototypes.add(prototype);
}

/**
 * The arguments of a held call, copied for later. The replacements read `arguments` rather than
 * a rest parameter: handed straight to `apply`, V8 then builds no array, and every write, end
 * and header call of a gated response that goes straight through passes that way.
 */
function heldArguments(args: IArguments): unknown[] {
  return Array.prototype.slice.call(args) as unknown[];
}

/** The held methods of one response. */
type OwnMethods = Record<HeldMethod, Method>;

/** Where a response gated by {@link gateOwnMethods} keeps its gate. */
const GATE = Symbol('tessera.headerGate');
type GatedResponse = ServerResponse & { [GATE]?: HeaderGate };

/**
 * A held method that finds its gate and the method it replaced on the response, so one function
 * serves every response: replacing a response's methods then allocates nothing per request.
 */
function sharedReplacement(name: HeldMethod): Method {
  return function (this: GatedResponse) {
    const gate = this[GATE]!;
    const original = gate.replaced![name]!;
    return gate.open
      ? Reflect.apply(original, this, arguments) // eslint-disable-line prefer-rest-params -- see heldArguments
      : gate.hold(original, heldArguments(arguments), name); // eslint-disable-line prefer-rest-params -- see heldArguments
  };
}

const SHARED_REPLACEMENTS: OwnMethods = {
  writeHead: sharedReplacement('writeHead'),
  write: sharedReplacement('write'),
  end: sharedReplacement('end'),
  flushHeaders: sharedReplacement('flushHeaders'),
};

/**
 * Intercepts the response's own methods, or only those of them that are own properties when
 * the shared prototype is gated. Each method put on an Express response is one more added
 * property, and those cost microseconds each on objects whose prototype Express swapped
 * (two added methods cost about 10 µs per request, measured).
 *
 * The first gate on a response uses {@link SHARED_REPLACEMENTS}; a response gated again (two
 * session layers, or one added twice) gets closures of its own, each calling what it replaced,
 * so the gates open in turn.
 */
function gateOwnMethods(res: ServerResponse, gate: HeaderGate, names: readonly HeldMethod[]): void {
  const target = res as unknown as OwnMethods;
  const gated = res as GatedResponse;
  if (names === HELD_METHODS && gated[GATE] === undefined) {
    gated[GATE] = gate;
    gate.replaced = {
      writeHead: target.writeHead,
      write: target.write,
      end: target.end,
      flushHeaders: target.flushHeaders,
    };
    target.writeHead = SHARED_REPLACEMENTS.writeHead;
    target.write = SHARED_REPLACEMENTS.write;
    target.end = SHARED_REPLACEMENTS.end;
    target.flushHeaders = SHARED_REPLACEMENTS.flushHeaders;
    return;
  }
  const replaced: Partial<OwnMethods> = {};
  for (const name of names) {
    const original = target[name];
    replaced[name] = original;
    target[name] = function (this: ServerResponse, ...args: unknown[]) {
      return gate.open ? original.apply(this, args) : gate.hold(original, args, name);
    };
  }
  gate.replaced = replaced;
}

/** Options of {@link commitBeforeHeaders}. */
export interface CommitOptions {
  /**
   * Answers the headers synchronously when saving needs no store call (usually
   * {@link SessionManager.commitNow}); the response then goes out without waiting.
   * @defaultValue none: every response waits for `commit`
   */
  commitNow?: () => ResponseHeaders | undefined;
  /**
   * A response prototype that belongs to one application (Express's `app.response`): the held
   * methods are intercepted there once instead of on every response.
   * @defaultValue none: each response's own methods are intercepted
   */
  sharedPrototype?: object;
}

/**
 * Holds back everything that would send the response's headers (`writeHead`, `write`, `end`,
 * `flushHeaders`) until `commit` has saved the session, then adds its cookie and lets the held
 * calls through in order. If the commit fails, the held output is dropped and `onFailure`
 * answers instead (a 503 by default), so no cookie is sent for a session that was not saved.
 *
 * With `sharedPrototype`, the methods are intercepted once on that prototype and each response
 * carries only its gate; methods that earlier middleware set on the response itself are still wrapped
 * there, so the gate stays in front of them. Node's own `ServerResponse.prototype` is never changed.
 */
export function commitBeforeHeaders(
  res: ServerResponse,
  commit: () => Promise<ResponseHeaders>,
  onFailure: (error: unknown) => void,
  options: CommitOptions = {},
): void {
  const { sharedPrototype, commitNow } = options;
  installGate(res, new CallbackGate(res, commit, onFailure, commitNow), sharedPrototype);
}

/**
 * Whether responses with this shared prototype are gated through it (their gates kept in
 * {@link gates}) rather than through methods of their own. Node's own prototype never is.
 */
function gatesThroughPrototype(sharedPrototype: object | undefined): sharedPrototype is object {
  return sharedPrototype !== undefined && sharedPrototype !== ServerResponseClass.prototype;
}

/**
 * Whether a gate that has not opened yet stands in front of the response: a session layer already
 * took it (one mounted twice, or in an application and its sub-application). With the shared
 * prototype its gate was installed through, only the map beside the response is consulted, so no
 * property is read from the response itself. @internal
 */
export function hasPendingGate(res: ServerResponse, sharedPrototype?: object): boolean {
  const beside = gates.get(res);
  if (beside !== undefined) return !beside.open;
  if (gatesThroughPrototype(sharedPrototype)) return false;
  const own = (res as GatedResponse)[GATE];
  return own !== undefined && !own.open;
}

/** Puts a gate in front of the response's held methods (see {@link commitBeforeHeaders}). */
function installGate(
  res: ServerResponse,
  gate: HeaderGate,
  sharedPrototype: object | undefined,
): void {
  if (!gatesThroughPrototype(sharedPrototype)) {
    gateOwnMethods(res, gate, HELD_METHODS);
    return;
  }
  gatePrototype(sharedPrototype);
  gates.set(res, gate);
  const target = res as object;
  // Checked by name first: most responses have none of their own, and then no array is made.
  if (
    Object.hasOwn(target, 'writeHead') ||
    Object.hasOwn(target, 'write') ||
    Object.hasOwn(target, 'end') ||
    Object.hasOwn(target, 'flushHeaders')
  ) {
    gateOwnMethods(
      res,
      gate,
      HELD_METHODS.filter((name) => Object.hasOwn(target, name)),
    );
  }
}

/**
 * Loads the request's session and arranges for it to be saved, and its cookie set, before the
 * response's headers go out. Rejects (after nothing was sent) when the store fails at load.
 * Takes the arguments of {@link attachSessionNow}: the manager, the request and the response, then
 * optionally the error answer, the client address and Express's shared response prototype.
 */
export async function attachSession<Data extends object = DefaultSessionData>(
  ...args: Parameters<typeof attachSessionNow<Data>>
): Promise<Session<Data>> {
  return attachSessionNow(...args);
}

/**
 * {@link attachSession}, answered synchronously when the manager can load the session without
 * waiting (see {@link SessionManager.loadNow}), and with a promise otherwise. Throws, or
 * rejects, with a `SessionError` when the store fails at load.
 */
export function attachSessionNow<Data extends object = DefaultSessionData>(
  manager: SessionManager<Data>,
  req: IncomingMessage,
  res: ServerResponse,
  onError: NodeErrorHandler = sendSessionError,
  ip?: ClientAddress,
  sharedPrototype?: object,
): Session<Data> | Promise<Session<Data>> {
  const info = requestInfoOf(req, ip);
  const loaded = manager.loadNow(info);
  if (loaded !== undefined) {
    installGate(res, new SessionGate(manager, loaded, req, res, onError), sharedPrototype);
    return loaded;
  }
  return manager.load(info).then((session) => {
    installGate(res, new SessionGate(manager, session, req, res, onError), sharedPrototype);
    return session;
  });
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
    let attached: Session<Data> | Promise<Session<Data>>;
    try {
      attached = attachSessionNow(manager, req, res, onError);
    } catch (error) {
      onError(error, req, res);
      return;
    }
    if (attached instanceof Promise) {
      attached.then(
        (session) => runHandler(handler, req, res, session),
        (error: unknown) => onError(error, req, res),
      );
    } else runHandler(handler, req, res, attached);
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
  if (isThenable(result)) {
    Promise.resolve(result).then(undefined, (error: unknown) => handlerFailed(error, req, res));
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** Answers a handler's failure with a bare 500 (or a SessionError's own status), hiding its message. */
function handlerFailed(error: unknown, req: IncomingMessage, res: ServerResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendSessionError(error instanceof SessionError ? error : new Error('handler failed'), req, res);
}
