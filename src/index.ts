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
  StoreCallObserver,
  StoreFailure,
  StoreOperation,
} from './manager.js';
export { Session } from './session.js';
export type {
  SessionData,
  DefaultSessionData,
  RegenerateOptions,
  SessionTimeouts,
} from './session.js';
export { SessionError, isSessionError, errorAnswerOf } from './errors.js';
export type { SessionErrorCode, ErrorAnswer } from './errors.js';
export { crossOriginVerdict } from './cross-origin.js';
export type { CrossOriginOptions, CrossOriginReason } from './cross-origin.js';
export type { HeaderTransportOptions, HeaderTransportSettings } from './header-transport.js';
export type { AuditEvent, AuditFields } from './audit.js';
export type { RegenerateReason } from './events.js';
export { verifyCsrfToken } from './csrf-token.js';
export type { CsrfSettings, CsrfTokenOptions } from './csrf-token.js';
export type {
  SessionStore,
  SessionRecord,
  StoredRecord,
  UserIndex,
  UserRecord,
  UpdateResult,
} from './store.js';
export { hasUserIndex } from './store.js';
export type { MaybePromise } from './maybe.js';
export type { CookieOptions, ResolvedCookieOptions } from './cookie.js';
export type { EncryptionKey, EncryptionOptions } from './codec.js';
export type { CryptoProvider } from './crypto.js';
export { webCryptoProvider } from './crypto.js';
