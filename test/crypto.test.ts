import { createHmac } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { nodeCryptoProvider } from '../src/crypto-node.js';
import { fromBase64Url, toBase64Url, webCryptoProvider } from '../src/crypto.js';
import { generateSessionId } from '../src/token.js';

describe('node crypto provider', () => {
  it('serves random bytes from its pool without ever repeating or sharing them', () => {
    const crypto = nodeCryptoProvider();
    const seen = new Set<string>();
    const handedOut: Uint8Array[] = [];
    // 1,000 IDs cross several pool refills (4 KiB serve 128 IDs of 32 bytes).
    for (let i = 0; i < 1_000; i++) {
      const bytes = crypto.randomBytes(32);
      expect(bytes).toHaveLength(32);
      handedOut.push(bytes);
      seen.add(toBase64Url(bytes));
    }
    expect(seen.size).toBe(1_000);
    const first = toBase64Url(handedOut[0]!);
    crypto.randomBytes(12).fill(0);
    expect(toBase64Url(handedOut[0]!)).toBe(first);
    const large = crypto.randomBytes(2_048);
    expect(large).toHaveLength(2_048);
    expect(large.some((byte) => byte !== 0)).toBe(true);
  });

  it('serves base64url IDs from the same pool, never repeating bytes it handed out as bytes', () => {
    const crypto = nodeCryptoProvider();
    const seen = new Set<string>();
    for (let i = 0; i < 600; i++) {
      const text = crypto.randomBase64Url!(32);
      expect(text).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(fromBase64Url(text)).toHaveLength(32);
      seen.add(text);
      seen.add(toBase64Url(crypto.randomBytes(32)));
    }
    expect(seen.size).toBe(1_200);
    expect(fromBase64Url(crypto.randomBase64Url!(2_048))).toHaveLength(2_048);
  });

  it('makes session IDs from randomBase64Url where the provider has it, from randomBytes otherwise', () => {
    const node = nodeCryptoProvider();
    const fromText = generateSessionId({ ...node, randomBase64Url: () => 'from-text' });
    expect(fromText).toBe('from-text');
    const withoutText = { ...node, randomBase64Url: undefined };
    const id = generateSessionId(withoutText);
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(generateSessionId(webCryptoProvider())).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('signs exactly as createHmac does, for every key and text size', () => {
    const node = nodeCryptoProvider();
    const texts: string[] = [];
    for (const length of [0, 1, 42, 43, 44, 63, 64, 65, 127, 128, 129, 300]) {
      texts.push('a'.repeat(length), 'é'.repeat(length), '界'.repeat(length));
    }
    texts.push('🔑'.repeat(64), '🔑'.repeat(65), 'x\u0000y', '\ud800 lone surrogate');
    for (const keyBytes of [1, 32, 63, 64, 65, 131]) {
      const key = node.randomBytes(keyBytes);
      for (const text of texts) {
        expect(node.hmacSha256(key, text)).toBe(
          createHmac('sha256', key).update(text).digest('base64url'),
        );
      }
    }
  });

  it('encodes base64url the same with and without Node’s Buffer', async () => {
    const NodeBuffer = Buffer;
    vi.resetModules();
    vi.stubGlobal('Buffer', undefined);
    const portable = await import('../src/crypto.js');
    vi.unstubAllGlobals();
    expect(portable.toBase64Url).not.toBe(toBase64Url);
    for (const length of [0, 1, 2, 3, 31, 32, 33]) {
      const bytes = nodeCryptoProvider().randomBytes(length);
      const encoded = toBase64Url(bytes);
      expect(encoded).toBe(NodeBuffer.from(bytes).toString('base64url'));
      expect(portable.toBase64Url(bytes)).toBe(encoded);
      expect(fromBase64Url(encoded)).toEqual(new Uint8Array(bytes));
    }
    const offsetView = new Uint8Array([255, 1, 2, 3, 4]).subarray(1, 4);
    expect(toBase64Url(offsetView)).toBe('AQID');
  });

  it('hashes and signs as SHA-256 and HMAC-SHA256, like Web Crypto, also after a key changes in place', async () => {
    const node = nodeCryptoProvider();
    const web = webCryptoProvider();
    const hex = (text: string) => Buffer.from(text, 'hex').toString('base64url');
    // FIPS 180-2's "abc" and RFC 4231's test case 2.
    expect(node.sha256('abc')).toBe(
      hex('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'),
    );
    const key = new TextEncoder().encode('Jefe');
    const mac = hex('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
    expect(node.hmacSha256(key, 'what do ya want for nothing?')).toBe(mac);
    expect(node.hmacSha256(key, 'what do ya want for nothing?')).toBe(mac);
    // RFC 4231's test case 6: a key longer than SHA-256's block is hashed first.
    expect(
      node.hmacSha256(
        new Uint8Array(131).fill(0xaa),
        'Test Using Larger Than Block-Size Key - Hash Key First',
      ),
    ).toBe(hex('60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'));
    const secret = node.randomBytes(32);
    for (const text of ['', 'abc', 'ключ 🔑', 'x'.repeat(1_000)]) {
      expect(node.sha256(text)).toBe(await web.sha256(text));
      expect(node.hmacSha256(secret, text)).toBe(
        await web.hmacSha256(new Uint8Array(secret), text),
      );
    }
    key.set([0x6b, 0x65, 0x65, 0x70]);
    expect(node.hmacSha256(key, 'what do ya want for nothing?')).not.toBe(mac);
    expect(node.hmacSha256(key, 'what do ya want for nothing?')).toBe(
      await web.hmacSha256(new Uint8Array(key), 'what do ya want for nothing?'),
    );
  });

  it('hashes and signs the same on a Node without the one-shot crypto.hash (before 20.12)', async () => {
    const key = new Uint8Array(32).fill(7);
    const expected = nodeCryptoProvider().sha256('ключ 🔑');
    const expectedMac = nodeCryptoProvider().hmacSha256(key, 'ключ 🔑');
    vi.resetModules();
    vi.doMock('node:crypto', async (importOriginal) => ({
      ...(await importOriginal<typeof import('node:crypto')>()),
      hash: undefined,
    }));
    try {
      const older = await import('../src/crypto-node.js');
      expect(older.nodeCryptoProvider().sha256('ключ 🔑')).toBe(expected);
      expect(older.nodeCryptoProvider().hmacSha256(key, 'ключ 🔑')).toBe(expectedMac);
    } finally {
      vi.doUnmock('node:crypto');
      vi.resetModules();
    }
  });
});
