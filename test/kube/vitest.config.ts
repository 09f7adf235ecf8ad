import { defineConfig } from 'vitest/config';

/**
 * The cluster tests, run by test/kube/e2e.sh against the cluster KUBECONFIG names. Not part
 * of `npm test`: no cluster runs on the machines that run it. One file at a time, generous
 * bounds: image loads, scheduling and SPO's profile installation take minutes.
 */
export default defineConfig({
  test: {
    include: ['test/kube/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 900_000,
    sequence: { concurrent: false },
  },
});
