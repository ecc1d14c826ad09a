import { defineConfig } from 'vitest/config';

/**
 * The reliability suite (`npm run test:reliability`): fault scenarios against a hashwatt child
 * process and real Postgres. Slow by design (a 20 s database outage, floods), so apart from `npm test`.
 */
export default defineConfig({
  test: {
    include: ['tests/reliability/**/*.test.ts'],
    testTimeout: 150_000,
    hookTimeout: 90_000,
    // One scenario at a time: they measure latency and memory, and each loads both cores on its own.
    fileParallelism: false,
    // The per-scenario summary lines are part of the result.
    silent: false,
  },
});
