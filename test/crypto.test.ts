import { describe, expect, it, vi } from 'vitest';
import { nodeCryptoProvider } from '../src/crypto-node.js';
import { fromBase64Url, toBase64Url } from '../src/crypto.js';

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
});
