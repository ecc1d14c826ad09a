import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'simulators/**/*.test.ts', 'tests/**/*.test.ts'],
    exclude: ['tests/reliability/**', 'tests/e2e/**', '**/node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: more workers only add contention with Postgres.
    maxWorkers: 2,
  },
});
