import { configDefaults, defineConfig } from 'vitest/config';
import { SLOW_TESTS } from './vitest.slow.config.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The bench is its own package with its own tests (`npm run test:bench`).
    // Whole-program checks run on their own (`npm run test:slow`).
    exclude: [...configDefaults.exclude, 'bench/**', ...SLOW_TESTS],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
