import { pickHosts } from '@grpc-tower/testing';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runFetch } from './fetch.js';
import { type ItemServer, startItemServer } from './server.js';

let servers: ItemServer[] = [];

beforeAll(async () => {
  servers = await Promise.all(
    pickHosts(2).map((host, i) => startItemServer({ host, name: `server-${i + 1}`, latencyMs: 5 })),
  );
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

test('fetch through the dispatcher is balanced over reused sessions and survives a GOAWAY', async () => {
  const [one, two] = servers as [ItemServer, ItemServer];
  const result = await runFetch({
    servers: [one.address, two.address],
    requests: 40,
    between: () => one.goaway(),
  });

  expect(result.failed).toBe(0);
  for (const tally of [result.first, result.second]) {
    expect(Object.values(tally).reduce((a, b) => a + b, 0)).toBe(40);
    for (const name of Object.keys(tally)) expect(['server-1', 'server-2']).toContain(name);
  }
  // both servers shared the first round
  expect(Object.keys(result.first).sort()).toEqual(['server-1', 'server-2']);
  // every streamed POST body arrived whole
  expect(result.posted).toEqual([128 * 1024, 128 * 1024, 128 * 1024]);
  expect(one.answered + two.answered).toBe(83);
  // one session per server carried all its requests; server 1's GOAWAY made the client open a second one
  expect(two.sessions).toBe(1);
  await expect.poll(() => one.sessions, { timeout: 5_000 }).toBe(2);
});
