// The tests of the parts that load an optional peer, run against the oldest
// release of it that the packages accept (`npm test` runs them on the oldest
// supported Node.js): `undici` 7.0.0 (peer range ^7.0.0 || ^8.0.0) and
// `@kubernetes/client-node` 1.4.0 (^1.4.0 || ^2.0.0), installed beside the
// current ones as the devDependencies undici-oldest and
// kubernetes-client-node-oldest. The workspace's own tests run on the current
// releases (vitest.config.ts).
import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.js';

const installed = (path: string): string => new URL(`./node_modules/${path}`, import.meta.url).pathname;

export default mergeConfig(
  base,
  defineConfig({
    // the peer-release tests check that the aliases below are the modules loaded
    test: { env: { GRPC_TOWER_PEERS: 'oldest' } },
    resolve: {
      alias: {
        undici: installed('undici-oldest/index.js'),
        '@kubernetes/client-node': installed('kubernetes-client-node-oldest/dist/index.js'),
      },
    },
  }),
);
