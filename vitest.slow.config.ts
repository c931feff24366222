import { defineConfig } from 'vitest/config';

// The slow checks (npm run test:slow, run by CI after npm test; it builds dist/ first): whole
// programs built and run (the documentation's samples, the package's files and its CommonJS
// build, consumer apps type-checked against the built package, the packed tarball installed into
// a fresh folder), and the stress tool's runs: fault scenarios and Redis Cluster failover under
// load, and a short soak.
export const SLOW_TESTS = [
  'test/docs-samples.test.ts',
  'test/packaging.test.ts',
  'test/compat/cjs.test.ts',
  'test/compat/consumer-types.test.ts',
  'test/package-install.test.ts',
  'test/stress/cluster.test.ts',
  'test/stress/faults.test.ts',
  'test/stress/soak.test.ts',
];

export default defineConfig({
  test: {
    include: SLOW_TESTS,
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
  },
});
