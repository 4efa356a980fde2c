import { defineConfig } from 'vitest/config';

const project = (name: string, root: string) => ({
  extends: true as const,
  test: { name, root, include: ['src/**/*.test.ts', 'test/**/*.test.ts'] },
});

export default defineConfig({
  resolve: { conditions: ['@grpc-tower/source'] },
  ssr: { resolve: { conditions: ['@grpc-tower/source'] } },
  test: {
    setupFiles: [new URL('./packages/testing/src/setup.ts', import.meta.url).pathname],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    typecheck: {
      enabled: true,
      include: ['**/*.test-d.ts'],
      tsconfig: new URL('./tsconfig.typecheck.json', import.meta.url).pathname,
    },
    projects: [
      project('core', 'packages/core'),
      project('discover', 'packages/discover'),
      project('balance', 'packages/balance'),
      project('retry', 'packages/retry'),
      project('health', 'packages/health'),
      project('tower', 'packages/tower'),
      project('telemetry', 'packages/telemetry'),
      project('testing', 'packages/testing'),
      {
        extends: true as const,
        test: { name: 'examples', root: 'examples', include: ['*/src/**/*.test.ts'] },
      },
      project('docs', 'docs'),
      project('bench', 'bench'),
      project('reliability', 'reliability'),
      project('packaging', 'packaging'),
    ],
  },
});
