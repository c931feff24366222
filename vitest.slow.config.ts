import { defineConfig } from 'vitest/config';

// Checks that build and run whole programs (npm run test:slow, run by CI after npm test): the
// documentation's samples, consumer apps type-checked against the built package, and the packed
// tarball installed into a fresh folder.
export const SLOW_TESTS = [
  'test/docs-samples.test.ts',
  'test/compat/consumer-types.test.ts',
  'test/package-install.test.ts',
];

export default defineConfig({
  test: {
    include: SLOW_TESTS,
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
  },
});
