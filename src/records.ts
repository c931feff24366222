/**
 * Between a session and its stored record: what the manager's layers share to read a record
 * (and check it), to write one, and to carry a record's fields into a session.
 *
 * @packageDocumentation
 */
import { auditEvent } from './audit.js';
import type { Envelope } from './codec.js';
import type { RequestContext } from './context.js';
import { SessionError } from './errors.js';
import type { EventBus, RejectReason } from './events.js';
import type { RequestInfo } from './loading.js';
import type { Settings, Tools } from './manager-options.js';
import type { MaybePromise } from './maybe.js';
import { andThen } from './maybe.js';
import type { SessionState } from './session.js';
import { writeData } from './session.js';
import type { StoreCalls } from './store-calls.js';
import type { SessionRecord, StoredRecord } from './store.js';

/** What every layer of the manager works with. */
export interface Core {
  readonly settings: Settings;
  readonly events: EventBus;
  readonly calls: StoreCalls;
  /** The crypto tools, or their promise while the default provider loads. */
  tools(): MaybePromise<Tools>;
  /** The manager, for `req.sessionManager` and the like. */
  readonly owner: object;
}

/** A stored record that is live, with its decoded envelope. */
export interface Live {
  record: StoredRecord;
  envelope: Envelope;
}

/** What reading a record finds: a live one, or why there is none to use. */
export type Found = Live | RejectReason | 'expired';

/**
 * Reads the record under `key` and checks it (see {@link liveness}); `request`, when there is
 * one, is named in the events.
 */
export function readLive(
  core: Core,
  tools: Tools,
  key: string,
  request?: RequestInfo,
): MaybePromise<Found> {
  const store = core.settings.store;
  return andThen(
    core.calls.call('get', () => store.get(key)),
    (record): MaybePromise<Found> =>
      record === null
        ? 'unknown'
        : andThen(tools.codec.decode(record.data, key), (envelope) =>
            liveness(core, record, envelope, key, request),
          ),
  );
}

/**
 * The one check of every record the manager reads (load, reload, the re-read after a write
 * conflict, a user's list, revoking by handle): decodable, its columns matching what is sealed
 * inside it, and not expired by the server's clock. Reports what it finds: an `expired` event,
 * or `rejected` with reason `tampered` (naming the record's handle, never its edited user).
 */
export function liveness(
  core: Core,
  record: StoredRecord,
  envelope: Envelope | null,
  handle: string,
  request?: RequestInfo,
): Found {
  if (envelope === null) return 'undecodable';
  // Plain records carry neither the user nor the expiry: without encryption the store is trusted.
  if (core.settings.sealed && (envelope.u !== record.userId || envelope.e !== record.expiresAt)) {
    core.events.emit('rejected', auditEvent('tampered', handle, null, request));
    return 'tampered';
  }
  const now = core.settings.clock();
  if (record.expiresAt <= now || envelope.x <= now) {
    const reason = envelope.x <= now ? 'absolute' : 'idle';
    core.events.emit('expired', auditEvent(reason, handle, record.userId, request));
    return 'expired';
  }
  return { record, envelope };
}

/**
 * The expiry a write at `now` gives the record: the idle deadline, never past the absolute one.
 * Whole milliseconds, which every store keeps, so that a sealed copy equals the column.
 */
export function expiryOf(state: SessionState, now: number): number {
  return Math.floor(Math.min(now + state.idle, state.createdAt + state.absolute));
}

/**
 * The record to write for a session under `key` at `now`. The user and the expiry go into the
 * envelope too: the codec seals them when encryption is on, and leaves them to the columns
 * otherwise. Throws `INVALID_DATA` for data that is not JSON and `DATA_TOO_LARGE` beyond
 * `maxDataBytes`.
 */
export function recordFor(
  core: Core,
  tools: Tools,
  context: RequestContext,
  key: string,
  now: number,
): MaybePromise<SessionRecord> {
  const state = context.state;
  const expiresAt = expiryOf(state, now);
  // Every field present, in the order the codec reads them into: one shape for every envelope.
  const envelope: Envelope = {
    d: state.data,
    c: state.createdAt,
    w: now,
    i: state.idle,
    x: state.createdAt + state.absolute,
    a: state.authenticatedAt,
    ua: context.userAgent,
    ip: context.ip,
    p: state.persistent,
    u: state.userId,
    e: expiresAt,
  };
  const limit = core.settings.maxDataBytes;
  return andThen(tools.codec.encode(envelope, key), (data) => {
    const tooLarge =
      data.length > limit ||
      (data.length * 3 > limit && new TextEncoder().encode(data).length > limit);
    if (tooLarge) {
      throw new SessionError('DATA_TOO_LARGE', `the session exceeds maxDataBytes (${limit} bytes)`);
    }
    return { data, expiresAt, userId: state.userId };
  });
}

/** Gives a context's session everything a live record holds. */
export function adopt(context: RequestContext, record: StoredRecord, envelope: Envelope): void {
  const state = context.state;
  context.version = record.version;
  context.lastWrite = envelope.w;
  context.userAgent = envelope.ua;
  context.ip = envelope.ip;
  state.stored = true;
  state.expiresAt = record.expiresAt;
  state.userId = record.userId;
  state.createdAt = envelope.c;
  state.idle = envelope.i;
  state.absolute = envelope.x - envelope.c;
  state.persistent = envelope.p;
  state.authenticatedAt = envelope.a;
  // A fresh parse that only this request holds: no copy needed.
  state.data = envelope.d;
}

/**
 * Re-applies only this request's changes onto a newer record. Timeouts set in this request
 * stay; otherwise the record's apply.
 */
export function rebase(context: RequestContext, record: StoredRecord, envelope: Envelope): void {
  const state = context.state;
  const data = envelope.d;
  for (const key of state.changed ?? []) {
    if (Object.hasOwn(state.data, key)) writeData(data, key, state.data[key]);
    else delete data[key];
  }
  state.data = data;
  context.version = record.version;
  state.expiresAt = record.expiresAt;
  state.userId = record.userId;
  state.authenticatedAt = envelope.a;
  if (!state.timeoutsChanged) {
    state.idle = envelope.i;
    state.absolute = envelope.x - envelope.c;
    state.persistent = envelope.p;
  }
}

/** An ended session holds nothing: no data, and no user for the application to believe. */
export function markEnded(context: RequestContext): void {
  const state = context.state;
  state.ended = true;
  state.stored = false;
  state.data = {};
  state.changed = null;
  state.userId = null;
  state.authenticatedAt = undefined;
  context.issueCookie = false;
}
