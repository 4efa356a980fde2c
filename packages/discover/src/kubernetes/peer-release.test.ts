// Which @kubernetes/client-node these tests run against: the workspace's
// (the current major), or, under vitest.oldest-peers.config.ts
// (GRPC_TOWER_PEERS=oldest), the oldest release the peer range accepts,
// installed as kubernetes-client-node-oldest.
import { createRequire } from 'node:module';
import { KubeConfig } from '@kubernetes/client-node';
import { expect, test } from 'vitest';

const require = createRequire(import.meta.url);

test('the @kubernetes/client-node loaded is the one this run is for', () => {
  const oldest = process.env.GRPC_TOWER_PEERS === 'oldest';
  const current = '@kubernetes/client-node';
  const expected = require(oldest ? 'kubernetes-client-node-oldest' : current) as { KubeConfig: unknown };
  const other = require(oldest ? current : 'kubernetes-client-node-oldest') as { KubeConfig: unknown };
  expect(expected.KubeConfig).not.toBe(other.KubeConfig);
  expect(KubeConfig).toBe(expected.KubeConfig);
});
