import { describe, expect, it } from 'vitest';
import { Codec, type Envelope } from '../src/codec.js';
import { nodeCryptoProvider } from '../src/crypto-node.js';

const crypto = nodeCryptoProvider();
const KEY = 'x'.repeat(43);
const created = 1_764_185_392_000;

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
      '[{},1,2,3,4,null,null,null,null]',
      '{"d":{},"c":1}',
    ];
    for (const data of malformed) expect(await codec.decode(data, KEY)).toBeNull();
  });

  it('seals the compact form and refuses it under another store key', async () => {
    const codec = new Codec(crypto, { keys: [{ id: 'k1', key: new Uint8Array(32).fill(7) }] });
    const sealed = await codec.encode(full, KEY);
    expect(sealed).toMatch(/^e1\.k1\./);
    expect(sealed).not.toContain('dark');
    expect(await codec.decode(sealed, KEY)).toEqual(full);
    expect(await codec.decode(sealed, 'y'.repeat(43))).toBeNull();
    expect(await codec.decode(JSON.stringify([{}, 1, 2, 3, 4]), KEY)).toBeNull();
  });
});
