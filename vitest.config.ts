import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/** The package's own exports, for the examples that import them by name as a plugin author's tests do. */
const packageExports = [
  { find: /^logomesh\/testing$/, replacement: fileURLToPath(new URL('./src/testkit/index.ts', import.meta.url)) },
  { find: /^logomesh$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
];

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
        resolve: { alias: packageExports },
        test: {
          name: 'integration',
          // The test kit's examples (docs/testing-plugins.md) run as they are documented.
          include: ['test/integration/**/*.test.ts', 'examples/**/*.test.ts'],
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
