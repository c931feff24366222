/**
 * Tessera: server-side HTTP sessions for Node.js.
 *
 * The core: the {@link SessionManager}, the {@link Session} a request sees, the
 * {@link SessionStore} contract, and the one error class. Framework adapters live in
 * `tessera-session/express`, `tessera-session/fastify`, ...; stores in `tessera-session/stores/*`.
 *
 * @packageDocumentation
 */
export { SessionManager } from './manager.js';
export type {
  SessionManagerOptions,
  RequestInfo,
  ResponseHeaders,
  SessionInfo,
  SessionEvents,
  RejectReason,
  WarningCode,
} from './manager.js';
export { Session } from './session.js';
export type {
  SessionData,
  DefaultSessionData,
  RegenerateOptions,
  SessionTimeouts,
} from './session.js';
export { SessionError, isSessionError } from './errors.js';
export type { SessionErrorCode } from './errors.js';
export type {
  SessionStore,
  SessionRecord,
  StoredRecord,
  UserRecord,
  UpdateResult,
} from './store.js';
export type { MaybePromise } from './maybe.js';
export type { CookieOptions, ResolvedCookieOptions } from './cookie.js';
export type { EncryptionKey, EncryptionOptions } from './codec.js';
export type { CryptoProvider } from './crypto.js';
export { webCryptoProvider } from './crypto.js';
