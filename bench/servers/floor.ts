/**
 * The floor: the work a server-side session must do on each request, written inline in the
 * bench's handlers with no session library around it. Its rows show how much of a Tessera row's
 * cost is that irreducible work and how much is the library: a target that the floor itself
 * misses cannot be met by any library that keeps the same guarantees.
 *
 * What it keeps, as Tessera does: a 256-bit ID from the CSPRNG, signed with HMAC-SHA256 in the
 * cookie; only the ID's SHA-256 as the store key; an envelope with the creation time, idle and
 * absolute timeouts, user agent and address, checked against the clock on every read; a version
 * compared and bumped on every write; a bounded store; `Cache-Control: no-store` on responses
 * that set the cookie or belong to a signed-in user. It uses Tessera's own crypto provider (the
 * cheapest way found to make, sign and hash an ID) so that the rows differ in the session layer
 * only.
 *
 * What it leaves out, which makes it cheaper than any real session layer: cookie parsing beyond
 * finding one `sid=` pair, the user index, touches, events, rejected-cookie handling, store
 * errors, and a least-recently-used order (its bound drops the older half of the sessions at
 * once: two maps, the older one dropped when the newer one is full).
 *
 * @packageDocumentation
 */
import { SESSION_KEYS } from './apps.js';
import { loadSource } from './modules.js';

const COOKIE = 'sid';
const IDLE_MS = 30 * 60_000;
const ABSOLUTE_MS = 12 * 3_600_000;
const MAX_AGE_S = ABSOLUTE_MS / 1000;
/** The most verified cookie values the floor remembers. */
const VERIFIED_LIMIT = 10_000;

/** The part of Tessera's `node:crypto` provider the floor uses: every call answers at once. */
interface NodeCrypto {
  randomBase64Url(length: number): string;
  sha256(text: string): string;
  hmacSha256(key: Uint8Array, text: string): string;
  timingSafeEqual(a: string, b: string): boolean;
}

/** One stored session: the envelope as JSON, its version and expiry, its user. */
interface FloorRecord {
  json: string;
  version: number;
  expiresAt: number;
  userId: string | null;
}

/** A session as a handler sees it: the parsed data, and what saving it needs. */
export interface FloorSession {
  key: string;
  record: FloorRecord;
  data: Record<string, unknown>;
  /** The envelope's fields after the data: created, write offset, idle, absolute, authenticated, user agent, address. */
  fields: unknown[];
}

/** The inline session work of the floor contenders, over a bounded in-process store. */
export class FloorSessions {
  readonly #crypto: NodeCrypto;
  readonly #secret: Uint8Array;
  readonly #half: number;
  readonly #count: (call: 'get' | 'create' | 'update') => void;
  #newer = new Map<string, FloorRecord>();
  #older = new Map<string, FloorRecord>();
  /** Cookie values already verified, and their store keys, as Tessera's manager keeps them. */
  readonly #verified = new Map<string, string>();

  private constructor(
    crypto: NodeCrypto,
    secret: string,
    count: (call: 'get' | 'create' | 'update') => void,
    maxSessions: number,
  ) {
    this.#crypto = crypto;
    this.#count = count;
    this.#secret = new TextEncoder().encode(secret);
    this.#half = Math.ceil(maxSessions / 2);
  }

  /** The floor over Tessera's crypto provider (compiled or from source, as the bench loads Tessera). */
  static async create(
    secret: string,
    count: (call: 'get' | 'create' | 'update') => void = () => undefined,
    maxSessions = 100_000,
  ): Promise<FloorSessions> {
    const { nodeCryptoProvider } = (await loadSource('crypto-node.js')) as {
      nodeCryptoProvider: () => NodeCrypto;
    };
    return new FloorSessions(nodeCryptoProvider(), secret, count, maxSessions);
  }

  #find(key: string): FloorRecord | undefined {
    return this.#newer.get(key) ?? this.#older.get(key);
  }

  #put(key: string, record: FloorRecord): void {
    if (!this.#newer.has(key) && this.#newer.size >= this.#half) {
      this.#older = this.#newer;
      this.#newer = new Map();
    }
    this.#newer.set(key, record);
  }

  /** The store key of a cookie value `ID.SIGNATURE`, or undefined for one that does not verify. */
  #keyOf(value: string): string | undefined {
    const known = this.#verified.get(value);
    if (known !== undefined) return known;
    const dot = value.indexOf('.');
    if (dot !== 43 || value.length !== 87) return undefined;
    const id = value.slice(0, dot);
    const expected = this.#crypto.hmacSha256(this.#secret, id);
    if (!this.#crypto.timingSafeEqual(expected, value.slice(44))) return undefined;
    const key = this.#crypto.sha256(id);
    // Bounded like the rest of the floor: emptied when full, cheaper than Tessera's eviction.
    if (this.#verified.size >= VERIFIED_LIMIT) this.#verified.clear();
    this.#verified.set(value, key);
    return key;
  }

  /** The live session the request's cookie header leads to, or undefined. */
  read(cookieHeader: string | undefined, now = Date.now()): FloorSession | undefined {
    if (cookieHeader === undefined) return undefined;
    const at = cookieHeader.indexOf(`${COOKIE}=`);
    if (at === -1) return undefined;
    const end = cookieHeader.indexOf(';', at);
    const key = this.#keyOf(
      cookieHeader.slice(at + COOKIE.length + 1, end === -1 ? undefined : end),
    );
    if (key === undefined) return undefined;
    this.#count('get');
    const record = this.#find(key);
    if (record === undefined || record.expiresAt <= now) return undefined;
    const [data, ...fields] = JSON.parse(record.json) as [Record<string, unknown>, ...unknown[]];
    const created = fields[0] as number;
    if (created + (fields[3] as number) <= now) return undefined;
    return { key, record, data, fields };
  }

  /** Saves a read session's changed data: version compared and bumped, expiry extended. */
  write(session: FloorSession, now = Date.now()): boolean {
    this.#count('update');
    const current = this.#find(session.key);
    if (current === undefined || current.version !== session.record.version) return false;
    const fields = session.fields;
    const created = fields[0] as number;
    fields[1] = now - created;
    this.#put(session.key, {
      json: JSON.stringify([session.data, ...fields]),
      version: current.version + 1,
      expiresAt: Math.min(now + IDLE_MS, created + ABSOLUTE_MS),
      userId: current.userId,
    });
    return true;
  }

  /** Stores a new session and answers its Set-Cookie value. */
  create(
    data: Record<string, unknown>,
    userId: string | null,
    userAgent: string | undefined,
    ip: string | undefined,
    now = Date.now(),
  ): string {
    const id = this.#crypto.randomBase64Url(32);
    const signature = this.#crypto.hmacSha256(this.#secret, id);
    const key = this.#crypto.sha256(id);
    this.#count('create');
    const fields = [now, 0, IDLE_MS, ABSOLUTE_MS, userId === null ? null : 0, userAgent, ip];
    this.#put(key, {
      json: JSON.stringify([data, ...fields]),
      version: 1,
      expiresAt: now + IDLE_MS,
      userId,
    });
    return `${COOKIE}=${id}.${signature}; Max-Age=${MAX_AGE_S}; Path=/; HttpOnly; SameSite=Lax`;
  }
}

/** What a floor route answers: the JSON body and the session's headers. */
export interface FloorAnswer {
  body: Record<string, unknown>;
  setCookie: string | undefined;
  noStore: boolean;
}

/**
 * One of the bench's routes (`/login`, `/read`, `/write`, `/new`) with the floor's session work,
 * the same for every framework: each framework's app only moves the request's cookie header,
 * user agent and address in and the answer out.
 */
export function floorRoute(
  floor: FloorSessions,
  path: string,
  request: {
    cookie: string | undefined;
    userAgent: string | undefined;
    /** The client address, worked out only for a new session (as Tessera does). */
    ip: () => string | undefined;
    u: string;
  },
): FloorAnswer | undefined {
  switch (path) {
    case '/login': {
      const setCookie = floor.create(
        { ...SESSION_KEYS },
        request.u,
        request.userAgent,
        request.ip(),
      );
      return { body: { ok: true }, setCookie, noStore: true };
    }
    case '/read': {
      const session = floor.read(request.cookie);
      const user = session?.record.userId ?? null;
      return {
        body: { user, theme: session?.data.theme },
        setCookie: undefined,
        noStore: user !== null,
      };
    }
    case '/write': {
      const session = floor.read(request.cookie);
      if (session === undefined) return undefined;
      const n = ((session.data.n as number | undefined) ?? 0) + 1;
      session.data.n = n;
      if (!floor.write(session)) return undefined;
      return { body: { n }, setCookie: undefined, noStore: session.record.userId !== null };
    }
    case '/new': {
      const setCookie = floor.create({ n: 1 }, null, request.userAgent, request.ip());
      return { body: { n: 1 }, setCookie, noStore: true };
    }
    default:
      return undefined;
  }
}
