import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// undici 8 and @kubernetes/client-node 2 (the optional peers' current majors) need Node.js 22;
// said once (the test processes read this file too, and inherit the variable)
if (Number(process.versions.node.split('.')[0]) < 22 && process.env.GRPC_TOWER_NODE_WARNED === undefined) {
  process.env.GRPC_TOWER_NODE_WARNED = '1';
  console.warn(
    `Node.js ${process.version} is not supported (22, 24 and 26 are): the undici and Kubernetes tests ` +
      'cannot load undici on it. Run on 24 with: npm run with-node -- npx vitest run <paths>',
  );
}

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
    // most files wait on servers in other processes more than they compute: at least two at a
    // time, also on a 2-core machine (where vitest's default is one)
    maxWorkers: Math.max(2, availableParallelism() - 1),
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
