import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // Unit tests run first, on their own: they need no engine and fail fast.
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          sequence: { groupOrder: 1 },
          globalSetup: ['test/integration/global-setup.ts'],
          // The reaper image cannot be pulled without a registry; tests clean up by label.
          env: { TESTCONTAINERS_RYUK_DISABLED: 'true' },
          // Real containers: generous bounds, never timing races.
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Files run in parallel (2 cores); tests in a file share its containers' setup.
          fileParallelism: true,
          maxWorkers: 3,
        },
      },
      {
        test: {
          name: 'security',
          // Attacks on the sandbox, one small plugin each, in real containers.
          include: ['test/security/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          sequence: { groupOrder: 2 },
          testTimeout: 60_000,
          hookTimeout: 120_000,
          env: { TESTCONTAINERS_RYUK_DISABLED: 'true' },
        },
      },
      {
        test: {
          name: 'engine',
          // Restarts the Docker engine itself: runs last and alone, after every other group.
          include: ['test/engine/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          sequence: { groupOrder: 3 },
          fileParallelism: false,
          maxWorkers: 1,
          testTimeout: 180_000,
          hookTimeout: 120_000,
          env: { TESTCONTAINERS_RYUK_DISABLED: 'true' },
        },
      },
    ],
  },
});
