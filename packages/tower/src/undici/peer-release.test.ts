// Which undici these tests run against: the workspace's (the current major),
// or, under vitest.oldest-peers.config.ts (GRPC_TOWER_PEERS=oldest), the
// oldest release the peer range accepts, installed as undici-oldest.
import { createRequire } from 'node:module';
import { Agent } from 'undici';
import { expect, test } from 'vitest';

const require = createRequire(import.meta.url);

test('the undici loaded is the one this run is for', () => {
  const oldest = process.env.GRPC_TOWER_PEERS === 'oldest';
  const expected = require(oldest ? 'undici-oldest' : 'undici') as { Agent: unknown };
  const other = require(oldest ? 'undici' : 'undici-oldest') as { Agent: unknown };
  expect(expected.Agent).not.toBe(other.Agent);
  expect(Agent).toBe(expected.Agent);
});
