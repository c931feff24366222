import { availableParallelism } from 'node:os';
import { configDefaults, defineConfig } from 'vitest/config';
import { SLOW_TESTS } from './vitest.slow.config.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The bench is its own package with its own tests (`npm run test:bench`).
    // Whole-program checks and the stress scenarios run on their own (`npm run test:slow`).
    exclude: [...configDefaults.exclude, 'bench/**', ...SLOW_TESTS],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Each worker keeps its modules from file to file: the files share no state through them, and
    // loading Express, Fastify and the drivers once per file took a third of the run.
    isolate: false,
    // Most files spend their time waiting on servers and child processes, so two run at once
    // even on two cores (where vitest's own default, one fewer than the cores, would be one).
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
