import { defineConfig } from 'vitest/config';

// The bench's own tests: the harness in smoke mode (real servers on loopback) and the floor's
// inline session work. Run from bench/ (`npm test` there, or `npm run test:bench` at the root).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
