import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Workspace packages resolve to their sources, so tests need no build and see one copy of each module.
const packages = fileURLToPath(new URL('./packages/', import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^@idempotent-mq\/([a-z-]+)$/, replacement: `${packages}$1/src/index.ts` },
      { find: /^@idempotent-mq\/([a-z-]+)\/([a-z-]+)$/, replacement: `${packages}$1/src/$2/index.ts` },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['test/bench/**', '**/node_modules/**', '**/dist/**'],
    // .ci/run asks for a JSON report too, to print the plain "N passed, N failed" closing line.
    reporters: process.env.VITEST_JSON_REPORT ? ['default', 'json'] : ['default'],
    outputFile: process.env.VITEST_JSON_REPORT ? { json: process.env.VITEST_JSON_REPORT } : undefined,
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
