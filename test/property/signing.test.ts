/**
 * Property tests of the signed cookie value (`ID.SIGNATURE`) and of the session IDs inside it.
 *
 * The signer is checked on both crypto providers: `node:crypto` (synchronous, its own HMAC over
 * precomputed pads) and Web Crypto (asynchronous). `verify` answers a promise on both.
 */
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nodeCryptoProvider } from '../../src/crypto-node.js';
import { fromBase64Url, toBase64Url, webCryptoProvider } from '../../src/crypto.js';
import type { CryptoProvider } from '../../src/crypto.js';
import { SessionError } from '../../src/errors.js';
import { SessionManager } from '../../src/index.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { CookieSigner, generateSessionId, ID_LENGTH } from '../../src/token.js';
import { cookiePair } from '../support/fixtures.js';

const SEED = 20_261_201;
const providers: [string, CryptoProvider, number][] = [
  ['node:crypto', nodeCryptoProvider(), 1_000],
  ['Web Crypto', webCryptoProvider(), 250],
];

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** A secret of at least 32 bytes: text (ASCII or not) or raw bytes. */
const secret: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  fc.string({ minLength: 32, maxLength: 80 }),
  fc
    .string({ unit: 'binary', minLength: 8, maxLength: 60 })
    .filter((text) => Buffer.byteLength(text) >= 32),
  fc.uint8Array({ minLength: 32, maxLength: 130 }),
);

/** A ring of 1 to 3 secrets, all different. */
const ring = fc.uniqueArray(secret, {
  minLength: 1,
  maxLength: 3,
  selector: (s) => Buffer.from(s).toString('hex'),
});

/** A session ID as the manager makes them, or any 43 characters of base64url. */
const anyId = fc.stringMatching(/^[A-Za-z0-9_-]{43}$/);

/** Characters a mutation may put in: base64url, its neighbours, and hostile extras. */
const mutationChar = fc.oneof(
  fc.constantFrom(...BASE64URL.split('')),
  fc.constantFrom('.', '=', '+', '/', ' ', '%', '"', ';', ',', '\0', '\n', 'é', '\u{1F511}'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);

/** Garbage to append or prepend: never empty. */
const garbage = fc.oneof(
  fc.string({ unit: fc.constantFrom(...BASE64URL.split(''), '.'), minLength: 1, maxLength: 50 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 50 }),
);

type Mutation = (value: string) => string;

/** Every way a cookie value may be changed, each answering a value (perhaps unchanged). */
const mutation: fc.Arbitrary<[string, Mutation]> = fc.oneof(
  fc
    .tuple(fc.nat(), mutationChar)
    .map(([at, c]): [string, Mutation] => [
      `substitute ${JSON.stringify(c)} at ${at}`,
      (v) => v.slice(0, at % v.length) + c + v.slice((at % v.length) + 1),
    ]),
  fc
    .tuple(fc.nat(), mutationChar)
    .map(([at, c]): [string, Mutation] => [
      `insert ${JSON.stringify(c)} at ${at}`,
      (v) => v.slice(0, at % (v.length + 1)) + c + v.slice(at % (v.length + 1)),
    ]),
  fc
    .nat()
    .map((at): [string, Mutation] => [
      `delete at ${at}`,
      (v) => v.slice(0, at % v.length) + v.slice((at % v.length) + 1),
    ]),
  fc
    .nat()
    .map((keep): [string, Mutation] => [`truncate to ${keep}`, (v) => v.slice(0, keep % v.length)]),
  garbage.map((g): [string, Mutation] => [`append ${JSON.stringify(g)}`, (v) => v + g]),
  garbage.map((g): [string, Mutation] => [`prepend ${JSON.stringify(g)}`, (v) => g + v]),
  fc.nat().map((at): [string, Mutation] => [
    `flip the case at ${at}`,
    (v) => {
      const i = at % v.length;
      const c = v[i]!;
      const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
      return v.slice(0, i) + flipped + v.slice(i + 1);
    },
  ]),
  fc.constant<[string, Mutation]>(['upper case', (v) => v.toUpperCase()]),
  fc.constant<[string, Mutation]>(['lower case', (v) => v.toLowerCase()]),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]): [string, Mutation] => [
    `swap ${a} and ${b}`,
    (v) => {
      const chars = v.split('');
      const i = a % chars.length;
      const j = b % chars.length;
      [chars[i], chars[j]] = [chars[j]!, chars[i]!];
      return chars.join('');
    },
  ]),
  fc.constant<[string, Mutation]>([
    'swap ID and signature',
    (v) => `${v.slice(ID_LENGTH + 1)}.${v.slice(0, ID_LENGTH)}`,
  ]),
  fc.constant<[string, Mutation]>(['signature doubled', (v) => `${v}${v.slice(ID_LENGTH)}`]),
);

/** The signature of `id` under `key`, computed apart from the code under test. */
function referenceSignature(key: string | Uint8Array, id: string): string {
  return createHmac('sha256', typeof key === 'string' ? Buffer.from(key) : key)
    .update(id)
    .digest('base64url');
}

describe.each(providers)('signed cookie values on %s', (_name, crypto, numRuns) => {
  const options = { numRuns, seed: SEED };

  it(`signs ID.HMAC-SHA256 under the first secret, and the whole ring verifies it (${numRuns} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(ring, anyId, fc.nat(), async (secrets, id, rotate) => {
        const signed = await new CookieSigner(crypto, secrets).sign(id);
        expect(signed).toBe(`${id}.${referenceSignature(secrets[0]!, id)}`);
        // Rotation: the signing secret anywhere in a ring still verifies.
        const rotated = [
          ...secrets.slice(rotate % secrets.length),
          ...secrets.slice(0, rotate % secrets.length),
        ];
        expect(await new CookieSigner(crypto, rotated).verify(signed)).toBe(id);
      }),
      options,
    );
  });

  it(`rejects every change to a signed value: substitutions, insertions, deletions, truncation, garbage, case (${numRuns * 3} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(ring, anyId, mutation, async (secrets, id, [, mutate]) => {
        const signer = new CookieSigner(crypto, secrets);
        const signed = await signer.sign(id);
        const changed = mutate(signed);
        fc.pre(changed !== signed);
        expect(await signer.verify(changed)).toBeNull();
      }),
      { ...options, numRuns: numRuns * 3 },
    );
  });

  it(`rejects a valid signature followed by anything (the truncation bug of cookie-signature 1.1) (${numRuns} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(ring, anyId, garbage, async (secrets, id, tail) => {
        const signer = new CookieSigner(crypto, secrets);
        const signed = await signer.sign(id);
        expect(await signer.verify(signed + tail)).toBeNull();
        expect(await signer.verify(`${signed}.${tail}`)).toBeNull();
      }),
      options,
    );
  });

  it(`rejects values signed by a secret outside the ring, and a removed secret's cookies (${numRuns} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(ring, secret, anyId, async (secrets, outsider, id) => {
        fc.pre(secrets.every((s) => Buffer.compare(Buffer.from(s), Buffer.from(outsider)) !== 0));
        const forged = await new CookieSigner(crypto, [outsider]).sign(id);
        expect(await new CookieSigner(crypto, secrets).verify(forged)).toBeNull();
        // The outsider was in use and has been removed from the ring: rejected, without a throw.
        const old = await new CookieSigner(crypto, [outsider, ...secrets]).sign(id);
        expect(old).toBe(forged);
        expect(await new CookieSigner(crypto, secrets).verify(old)).toBeNull();
      }),
      options,
    );
  });

  it(`answers null, never throws, for arbitrary text and arbitrary ID.SIG-shaped text (${numRuns * 2} runs)`, async () => {
    const signer = new CookieSigner(crypto, ['s'.repeat(32)]);
    const shaped = fc
      .tuple(
        fc.string({ unit: mutationChar, minLength: ID_LENGTH, maxLength: ID_LENGTH }),
        fc.string({ unit: mutationChar, minLength: ID_LENGTH, maxLength: ID_LENGTH }),
      )
      .map(([a, b]) => `${a}.${b}`);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), shaped),
        async (value) => {
          expect(await signer.verify(value)).toBeNull();
        },
      ),
      { ...options, numRuns: numRuns * 2 },
    );
  });
});

describe('signing secrets', () => {
  it('refuses secrets shorter than 32 bytes with INVALID_OPTION (200 runs)', () => {
    const short = fc.oneof(
      fc.string({ maxLength: 31 }),
      fc.uint8Array({ maxLength: 31 }),
      // 31 bytes or fewer of multi-byte text that is more than 10 characters long.
      fc
        .string({ unit: fc.constantFrom('é', '界'), minLength: 11, maxLength: 15 })
        .filter((text) => Buffer.byteLength(text) < 32),
    );
    fc.assert(
      fc.property(ring, short, fc.nat(), (secrets, bad, at) => {
        const list = [...secrets];
        list.splice(at % (list.length + 1), 0, bad);
        let thrown: unknown;
        try {
          new CookieSigner(nodeCryptoProvider(), list);
        } catch (error) {
          thrown = error;
        }
        expect(thrown).toBeInstanceOf(SessionError);
        expect((thrown as SessionError).code).toBe('INVALID_OPTION');
      }),
      { numRuns: 200, seed: SEED },
    );
  });

  it.each(providers)(
    "keeps its own copy of a secret given as bytes: wiping the caller's array changes nothing (%s)",
    async (_name, crypto) => {
      const bytes = new Uint8Array(32).fill(7);
      const signer = new CookieSigner(crypto, [bytes]);
      const id = generateSessionId(crypto);
      const before = await signer.sign(id);
      bytes.fill(0);
      expect(await signer.sign(id)).toBe(before);
      expect(await signer.verify(before)).toBe(id);
      // A cookie signed with the all-zero key the caller's array now holds does not verify.
      const zeroKey = await new CookieSigner(crypto, [new Uint8Array(32)]).sign(id);
      expect(await signer.verify(zeroKey)).toBeNull();
    },
  );
});

describe('key material given to the manager as bytes', () => {
  /** Whether the cookie of a new session is signed under `key`. */
  async function signsWith(manager: SessionManager, key: Uint8Array): Promise<boolean> {
    const session = await manager.load({});
    session.set('a', 1);
    const pair = cookiePair((await manager.commit(session)).setCookie);
    const [id, signature] = pair.slice(pair.indexOf('=') + 1).split('.');
    return referenceSignature(key, id!) === signature;
  }

  it('with a crypto provider given: wiping the secret array after start-up changes nothing', async () => {
    const bytes = new Uint8Array(32).fill(7);
    const manager = new SessionManager({
      store: new MemoryStore(),
      secrets: [bytes],
      crypto: nodeCryptoProvider(),
    });
    bytes.fill(0);
    expect(await signsWith(manager, new Uint8Array(32).fill(7))).toBe(true);
  });

  it('with the default provider: wiping the secret array right after start-up changes nothing', async () => {
    const bytes = new Uint8Array(32).fill(7);
    const manager = new SessionManager({ store: new MemoryStore(), secrets: [bytes] });
    bytes.fill(0);
    expect(await signsWith(manager, new Uint8Array(32))).toBe(false);
    expect(await signsWith(manager, new Uint8Array(32).fill(7))).toBe(true);
  });

  it('wiping an encryption key array after start-up changes nothing: stored sessions still decrypt', async () => {
    const key = new Uint8Array(32).fill(9);
    const manager = new SessionManager({
      store: new MemoryStore(),
      secrets: ['s'.repeat(32)],
      encryption: { keys: [{ id: 'k1', key }] },
    });
    const session = await manager.load({});
    session.set('a', 1);
    const cookie = cookiePair((await manager.commit(session)).setCookie);
    key.fill(0);
    expect((await manager.load({ cookie })).get('a')).toBe(1);
  });
});

describe('HMAC-SHA256 of the node:crypto provider', () => {
  const node = nodeCryptoProvider();
  // Lone surrogates too: Node writes each as the three bytes of U+FFFD, as createHmac does.
  const text = fc.string({
    unit: fc.oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code)),
    ),
    maxLength: 200,
  });

  it('equals createHmac for any key and any sequence of texts, across the padded and plain paths (500 runs)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.array(text, { minLength: 1, maxLength: 6 }),
        (key, texts) => {
          // One key signs texts of varying lengths in turn, as the pads are reused between calls.
          for (const t of texts) {
            expect(node.hmacSha256(key, t)).toBe(
              createHmac('sha256', key).update(t).digest('base64url'),
            );
          }
        },
      ),
      { numRuns: 500, seed: SEED },
    );
  });
});

/** Bits set in the XOR of two byte arrays of one length. */
function hammingDistance(a: Uint8Array, b: Uint8Array): number {
  let bits = 0;
  for (let i = 0; i < a.length; i++) {
    let x = a[i]! ^ b[i]!;
    while (x !== 0) {
      bits += x & 1;
      x >>= 1;
    }
  }
  return bits;
}

const idSources: [string, CryptoProvider][] = [
  ['node:crypto, base64url straight from the pool', nodeCryptoProvider()],
  ['node:crypto, from random bytes', { ...nodeCryptoProvider(), randomBase64Url: undefined }],
  ['Web Crypto', webCryptoProvider()],
];

describe.each(idSources)('session IDs from %s', (_name, crypto) => {
  // 4,096 IDs: 32 refills of the 4 KiB pool of the node:crypto provider.
  const COUNT = 4_096;
  const ids = Array.from({ length: COUNT }, () => generateSessionId(crypto));
  const bytes = ids.map((id) => fromBase64Url(id)!);

  it('have a constant length and charset, are canonical base64url of 32 bytes, and never repeat', () => {
    const malformed = ids.filter(
      (id, i) => !/^[A-Za-z0-9_-]{43}$/.test(id) || toBase64Url(bytes[i]!) !== id,
    );
    expect(malformed).toEqual([]);
    expect(bytes.every((id) => id.length === 32)).toBe(true);
    expect(new Set(ids).size).toBe(COUNT);
  });

  it('share no structure: no common 8-byte run anywhere, consecutive IDs differ in about half their bits', () => {
    // Any 8-byte run seen twice (in one ID or two) would mean bytes were served twice.
    const windows = new Set<string>();
    let runs = 0;
    for (const id of bytes) {
      const hex = Buffer.from(id).toString('hex');
      for (let at = 0; at + 16 <= hex.length; at += 2, runs++) windows.add(hex.slice(at, at + 16));
    }
    expect(windows.size).toBe(runs);
    // 256 random bits: 128 apart on average, standard deviation 8; the bounds are eight off.
    const distances = bytes.slice(1).map((id, i) => hammingDistance(bytes[i]!, id));
    expect(Math.min(...distances)).toBeGreaterThan(64);
    expect(Math.max(...distances)).toBeLessThan(192);
  });

  it('set every bit position about half the time (no stuck or wiped bytes)', () => {
    const ones = new Array<number>(256).fill(0);
    for (const id of bytes) {
      for (let bit = 0; bit < 256; bit++) ones[bit]! += (id[bit >> 3]! >> (bit & 7)) & 1;
    }
    // Mean 2,048, standard deviation 32: the bounds are six deviations off.
    for (const count of ones) {
      expect(count).toBeGreaterThan(COUNT / 2 - 192);
      expect(count).toBeLessThan(COUNT / 2 + 192);
    }
  });
});
