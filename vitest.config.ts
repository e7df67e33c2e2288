import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: a few files at once keeps service tests fast without starving the worker processes
    // that end-to-end tests spawn.
    maxWorkers: 3,
    minWorkers: 1,
    reporters: ['default'],
    // TASUKI_REDIS_KEY_CHECK=1: every Redis broker script checks that it touches declared keys only.
    setupFiles: ['test/helpers/redis-key-check-setup.ts'],
  },
});
