import { defineConfig } from 'vitest/config';

// `npm run test:e2e`: the end-to-end suites in tests/e2e/, which start real external binaries
// (prometheus, alertmanager) beside hashwatt and Postgres. `npm test` runs them after the main suite.
export default defineConfig({
  test: {
    include: ['tests/e2e/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // One file at a time: each starts its own hashwatt, Prometheus or Alertmanager and simulators.
    fileParallelism: false,
  },
});
