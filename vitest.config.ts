import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The bench is its own package with its own tests (`npm run test:bench`).
    // The documentation's samples run on their own (`npm run test:docs`).
    exclude: [...configDefaults.exclude, 'bench/**', 'test/docs-samples.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
