import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Codec, type Envelope } from '../src/codec.js';
import { nodeCryptoProvider } from '../src/crypto-node.js';
import { toBase64Url, utf8 } from '../src/crypto.js';

const crypto = nodeCryptoProvider();
const KEY = 'x'.repeat(43);
const created = 1_764_185_392_000;
const SEAL_KEY = new Uint8Array(32).fill(7);

const full: Envelope = {
  d: { theme: 'dark', nested: { list: [1, 'two', null] }, ['__proto__']: 'kept' },
  c: created,
  w: created + 61_000,
  i: 1_800_000,
  x: created + 86_400_000,
  a: created + 5,
  ua: 'Mozilla/5.0 (X11; Linux x86_64)',
  ip: '203.0.113.17',
};

describe('Codec', () => {
  it('round-trips an envelope with every field, and with only the required ones', async () => {
    const codec = new Codec(crypto);
    expect(await codec.decode(await codec.encode(full, KEY), KEY)).toEqual(full);
    const bare: Envelope = { d: {}, c: created, w: created, i: 1_000, x: created + 2_000 };
    expect(await codec.decode(await codec.encode(bare, KEY), KEY)).toEqual(bare);
    const agentOnly: Envelope = { ...bare, ua: 'agent' };
    expect(await codec.decode(await codec.encode(agentOnly, KEY), KEY)).toEqual(agentOnly);
  });

  it('writes times after the first as offsets, leaving out absent trailing fields', async () => {
    const codec = new Codec(crypto);
    const data = await codec.encode(
      {
        d: { k: 'v' },
        c: created,
        w: created + 10,
        i: 1_800_000,
        x: created + 86_400_000,
        a: created,
      },
      KEY,
    );
    expect(JSON.parse(data)).toEqual([{ k: 'v' }, created, 10, 1_800_000, 86_400_000, 0]);
    const named = JSON.stringify({ ...full, ua: undefined, ip: undefined, a: created });
    expect(data.length).toBeLessThan(named.length * 0.75);
  });

  it('reads records written with named fields and absolute times', async () => {
    const codec = new Codec(crypto);
    expect(await codec.decode(JSON.stringify(full), KEY)).toEqual(full);
  });

  it('answers null for data that is not an envelope', async () => {
    const codec = new Codec(crypto);
    const malformed = [
      '',
      'not json',
      'null',
      '[]',
      '[{},1,2,3]',
      '[[],1,2,3,4]',
      '[null,1,2,3,4]',
      '[{},"1",2,3,4]',
      '[{},1,2,3,4,"a"]',
      '[{},1,2,3,4,null,5]',
      '[{},1,2,3,4,null,null,6]',
      '[{},1,2,3,4,null,null,null,null,null]',
      '[{},1,2,3,4,null,null,null,"yes"]',
      '[{},1,2,3,4,null,null,null,null,"alice",5]',
      '{"d":{},"c":1,"w":1,"i":1,"x":2,"p":"yes"}',
      '{"d":{},"c":1}',
    ];
    for (const data of malformed) expect(await codec.decode(data, KEY)).toBeNull();
  });

  it('seals the compact form and refuses it under another store key', async () => {
    const codec = new Codec(crypto, { keys: [{ id: 'k1', key: new Uint8Array(32).fill(7) }] });
    const sealedFull: Envelope = { ...full, u: 'alice', e: created + 1_861_000 };
    const sealed = await codec.encode(sealedFull, KEY);
    expect(sealed).toMatch(/^e1\.k1\./);
    expect(sealed).not.toContain('dark');
    expect(await codec.decode(sealed, KEY)).toEqual(sealedFull);
    expect(await codec.decode(sealed, 'y'.repeat(43))).toBeNull();
    expect(await codec.decode(JSON.stringify([{}, 1, 2, 3, 4]), KEY)).toBeNull();
  });

  it('seals the user and the expiry, and leaves them to the store columns in the plain form', async () => {
    const withColumns: Envelope = { ...full, u: 'alice', e: created + 1_861_000 };
    const plain = new Codec(crypto);
    const text = await plain.encode(withColumns, KEY);
    expect(text).not.toContain('alice');
    expect(JSON.parse(text)).toHaveLength(8);
    expect(await plain.decode(text, KEY)).toEqual(full);

    const codec = new Codec(crypto, { keys: [{ id: 'k1', key: SEAL_KEY }] });
    const anonymous: Envelope = { ...full, u: null, e: created + 1_861_000 };
    expect(await codec.decode(await codec.encode(anonymous, KEY), KEY)).toEqual(anonymous);
    const bare: Envelope = { d: {}, c: created, w: created, i: 1_000, x: created + 2_000 };
    expect(() => codec.encode(bare, KEY)).toThrow(TypeError);
    const sealedBare = { ...bare, u: 'bob', e: created + 1_000 };
    expect(await codec.decode(await codec.encode(sealedBare, KEY), KEY)).toEqual(sealedBare);
  });

  it("keeps a session's choice of a persistent cookie, in both forms", async () => {
    for (const codec of [
      new Codec(crypto),
      new Codec(crypto, { keys: [{ id: 'k1', key: SEAL_KEY }] }),
    ]) {
      for (const p of [true, false]) {
        const envelope: Envelope = { ...full, p, u: null, e: created + 10 };
        const decoded = await codec.decode(await codec.encode(envelope, KEY), KEY);
        expect(decoded?.p).toBe(p);
      }
    }
  });

  it('refuses a sealed record without the user and expiry, as written before they were sealed', async () => {
    const codec = new Codec(crypto, { keys: [{ id: 'k1', key: SEAL_KEY }] });
    for (const fields of [
      [{ user: 'alice' }, created, 0, 1_800_000, 86_400_000],
      [{ user: 'alice' }, created, 0, 1_800_000, 86_400_000, null, null, null, null, 'alice'],
      {
        d: { user: 'alice' },
        c: created,
        w: created,
        i: 1,
        x: created + 2,
        u: 'alice',
        e: created,
      },
    ]) {
      const iv = new Uint8Array(12).fill(3);
      const sealed = crypto.encrypt(SEAL_KEY, iv, utf8(JSON.stringify(fields)), utf8(KEY));
      const text = `e1.k1.${toBase64Url(iv)}.${toBase64Url(sealed as Uint8Array)}`;
      expect(await codec.decode(text, KEY)).toBeNull();
    }
  });

  it('round-trips any envelope, and opens no sealed record with a single bit flipped', () => {
    const codec = new Codec(crypto, { keys: [{ id: 'k1', key: SEAL_KEY }] });
    const plain = new Codec(crypto);
    const time = fc.integer({ min: 0, max: 10_000_000 });
    const envelope = fc.record(
      {
        d: fc.dictionary(fc.string(), fc.jsonValue()),
        c: fc.constant(created),
        w: time.map((t) => created + t),
        i: fc.integer({ min: 1, max: 10_000_000 }),
        x: time.map((t) => created + t),
        a: time.map((t) => created + t),
        ua: fc.string(),
        ip: fc.string(),
        p: fc.boolean(),
        u: fc.option(fc.string({ minLength: 1 }), { nil: null }),
        e: time.map((t) => created + t),
      },
      { requiredKeys: ['d', 'c', 'w', 'i', 'x', 'u', 'e'] },
    );
    fc.assert(
      fc.property(envelope, fc.nat(), fc.integer({ min: 0, max: 6 }), (value, at, bit) => {
        // JSON has no -0 and no undefined: compare with what JSON keeps.
        const expected = JSON.parse(JSON.stringify(value)) as Envelope;
        const sealed = codec.encode(value, KEY) as string;
        expect(codec.decode(sealed, KEY)).toEqual(expected);
        const { u: _u, e: _e, ...plainExpected } = expected;
        expect(plain.decode(plain.encode(value, KEY) as string, KEY)).toEqual(plainExpected);
        const i = at % sealed.length;
        const flipped =
          sealed.slice(0, i) +
          String.fromCharCode(sealed.charCodeAt(i) ^ (1 << bit)) +
          sealed.slice(i + 1);
        expect(codec.decode(flipped, KEY)).toBeNull();
      }),
      { numRuns: 300 },
    );
  });
});
