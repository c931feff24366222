/**
 * `tessera-session/fastify`: a Fastify plugin that gives each request `request.session`.
 *
 * @packageDocumentation
 */
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import type { ResponseHeaders, SessionManager } from '../manager.js';
import type { DefaultSessionData, Session } from '../session.js';
import { csrfRefusal } from '../csrf-token.js';
import { SessionError, errorAnswerOf } from '../errors.js';
import { discardBody } from './fetch.js';
import { requestInfoOf } from './node.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The request's session, set by Tessera's plugin. `null` in scopes where the plugin is not
     * registered.
     */
    session: Session<DefaultSessionData>;
  }
}

/**
 * Answers a request whose session could not be loaded or saved, or that was refused before its
 * session was read (`CROSS_ORIGIN_REFUSED`, `CSRF_TOKEN_INVALID`: branch on `error.code`): it
 * sets the status and headers on `reply` and answers the body, a string or a Buffer (the plugin
 * sends it). It may throw instead, to hand the error to the scope's `setErrorHandler`.
 */
export type FastifyErrorHandler = (
  error: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
) => string | Buffer | Promise<string | Buffer>;

/** Options of {@link fastifySession}. */
export interface FastifySessionOptions {
  /** The manager that loads and saves sessions. */
  manager: SessionManager<any>;
  /**
   * What to answer when the store fails or does not answer. Every header the route had set is
   * removed before it runs.
   * @defaultValue {@link sendFastifySessionError}: a plain 503 with `Retry-After: 1`
   */
  onError?: FastifyErrorHandler;
}

/**
 * The default error answer (see `errorAnswerOf`): 503 with `Retry-After: 1` for store trouble,
 * 403 with a JSON body `{ error, code }` for a cross-origin refusal, 500 otherwise; always
 * `Cache-Control: no-store` and a body that tells nothing about the error.
 */
export function sendFastifySessionError(
  error: unknown,
  _request: FastifyRequest,
  reply: FastifyReply,
): string {
  const { status, headers, body } = errorAnswerOf(error);
  reply.code(status).headers(headers);
  return body;
}

function clearHeaders(reply: FastifyReply): void {
  for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
}

/** Stops the producer of a payload that will never be sent (a Node stream or a Web Response). */
function discardPayload(payload: unknown): void {
  if (typeof Response === 'function' && payload instanceof Response) {
    discardBody(payload);
    return;
  }
  const stream = payload as { destroy?: unknown; pipe?: unknown } | null;
  if (stream !== null && typeof stream === 'object' && typeof stream.pipe === 'function') {
    (stream.destroy as (() => void) | undefined)?.call(stream);
  }
}

/** Marks a request whose session was saved, so that an error reply does not save it again. */
const SETTLED = Symbol('tessera.settled');

function applyHeaders(reply: FastifyReply, headers: ResponseHeaders): void {
  for (const value of headers.setCookie) reply.header('set-cookie', value);
  if (headers.cacheControl !== undefined) reply.header('cache-control', headers.cacheControl);
  if (headers.token !== undefined) reply.header(headers.token.header, headers.token.value);
}

function register(
  instance: FastifyInstance,
  options: FastifySessionOptions,
  done: (error?: Error) => void,
): void {
  const { manager } = options;
  if (manager === undefined || manager === null || typeof manager.load !== 'function') {
    done(new SessionError('INVALID_OPTION', 'fastifySession: pass { manager }'));
    return;
  }
  if (instance.hasRequestDecorator('session')) {
    done(
      new SessionError(
        'INVALID_OPTION',
        'fastifySession: request.session is already decorated in this scope (registered twice, or with another session plugin)',
      ),
    );
    return;
  }
  const onError = options.onError ?? sendFastifySessionError;

  instance.decorateRequest('session', null as unknown as Session<DefaultSessionData>);
  instance.decorateRequest(SETTLED, false);

  const answerFailure = async (error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    clearHeaders(reply);
    reply.send(await onError(error, request, reply));
  };

  // Callback hooks, so that a session the manager answers at once costs no promise.
  instance.addHook('onRequest', (request, reply, done) => {
    const loaded = manager.load(requestInfoOf(request.raw, () => request.ip));
    if (loaded instanceof Promise) {
      loaded.then(
        (session: Session<DefaultSessionData>) => {
          request.session = session;
          done();
        },
        (error: unknown) => {
          answerFailure(error, request, reply).catch(done);
        },
      );
    } else {
      request.session = loaded as Session<DefaultSessionData>;
      done();
    }
  });

  // Synchronizer tokens are checked once the body is parsed (`@fastify/formbody` for forms); a
  // refused request runs no handler and is not saved.
  if (manager.csrfTokens !== undefined) {
    instance.addHook('preValidation', (request, reply, done) => {
      const refused = csrfRefusal(
        request.session,
        request.method,
        (name) => request.headers[name],
        request.body,
      );
      if (refused === undefined) {
        done();
        return;
      }
      (request as unknown as Record<typeof SETTLED, boolean>)[SETTLED] = true;
      answerFailure(refused, request, reply).catch(done);
    });
  }

  instance.addHook('onSend', (request, reply, payload, next) => {
    const loaded = request.session as Session<DefaultSessionData> | null;
    const settled = request as unknown as Record<typeof SETTLED, boolean>;
    // An error handler's answer runs through onSend again: the session was settled already.
    if (loaded === null || settled[SETTLED]) {
      next(null, payload);
      return;
    }
    settled[SETTLED] = true;
    const committed = manager.commit(loaded);
    if (!(committed instanceof Promise)) {
      applyHeaders(reply, committed);
      next(null, payload);
      return;
    }
    committed.then(
      (headers: ResponseHeaders) => {
        applyHeaders(reply, headers);
        next(null, payload);
      },
      (error: unknown) => {
        discardPayload(payload);
        clearHeaders(reply);
        Promise.resolve()
          .then(() => onError(error, request, reply))
          .then(
            (body) => next(null, body),
            (thrown: unknown) => next(thrown as Error),
          );
      },
    );
  });

  done();
}

/**
 * The session plugin.
 *
 * Encapsulation: the plugin does not open a scope of its own (it sets `skip-override`, as
 * `fastify-plugin` does). Registered on the root instance it serves the whole app; registered
 * inside a scope it serves that scope and its children, and sibling scopes get no session.
 * Registering it twice on one path is refused.
 *
 * The session is loaded in an `onRequest` hook and saved in an `onSend` hook, before anything is
 * sent, so streams, redirects and error responses carry its cookie. A store failure answers 503
 * (see {@link FastifySessionOptions.onError}) with no session cookie. A reply that is hijacked
 * (`reply.hijack()`, writing to `reply.raw`) skips `onSend`: call `request.session.save()`
 * before hijacking, knowing that a new session's cookie cannot be set then.
 *
 * With the manager's `csrfTokens`, a `preValidation` hook answers 403 to an unsafe request
 * without a valid token (its header, or the form field of `request.body`, which a form parser
 * such as `@fastify/formbody` fills) and the handler does not run.
 *
 * A request the manager's cross-origin protection refuses is answered in `onRequest` (403, see
 * `onError`) and reaches no handler. A `SessionError` a handler throws, such as
 * `REAUTH_REQUIRED` from `requireRecentAuth`, goes to Fastify's error handler, whose default
 * answers its `status` (401) with a JSON body carrying its `code`.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import { fastifySession } from 'tessera-session/fastify';
 *
 * const app = Fastify();
 * await app.register(fastifySession, { manager });
 * app.get('/', async (request) => {
 *   const visits = ((request.session.get('visits') as number) ?? 0) + 1;
 *   request.session.set('visits', visits);
 *   return { visits };
 * });
 * ```
 */
export const fastifySession = Object.assign(register, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'tessera-session',
  [Symbol.for('plugin-meta')]: { name: 'tessera-session', fastify: '>=4' },
}) as FastifyPluginCallback<FastifySessionOptions>;
