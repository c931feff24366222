import { defineConfig } from 'vitest/config';

// The documentation's samples, extracted and run (npm run test:docs): slower than the unit
// suite, since each sample is type-checked and started as a program of its own.
export default defineConfig({
  test: {
    include: ['test/docs-samples.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
