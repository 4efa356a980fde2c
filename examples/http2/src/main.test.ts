import { pickHosts } from '@grpc-tower/testing';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { runFetch } from './fetch.js';
import { run } from './main.js';
import type { RoundsResult } from './rounds.js';
import { type ItemServer, startItemServer } from './server.js';

let servers: ItemServer[] = [];

beforeEach(async () => {
  servers = await Promise.all(
    pickHosts(2).map((host, i) => startItemServer({ host, name: `server-${i + 1}`, latencyMs: 5 })),
  );
});

afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

/** No request failed, each round had its 40 answers, and server 1's GOAWAY made the client open one more session. */
async function expectBalancedAcrossGoaway(result: RoundsResult, answered: number): Promise<void> {
  const [one, two] = servers as [ItemServer, ItemServer];
  expect(result.failed).toBe(0);
  for (const tally of [result.first, result.second]) {
    expect(Object.values(tally).reduce((a, b) => a + b, 0)).toBe(40);
    for (const name of Object.keys(tally)) expect(['server-1', 'server-2']).toContain(name);
  }
  // both servers shared both rounds: the GOAWAY's refused streams do not count against server 1
  expect(Object.keys(result.first).sort()).toEqual(['server-1', 'server-2']);
  expect(Object.keys(result.second).sort()).toEqual(['server-1', 'server-2']);
  expect(one.answered + two.answered).toBe(answered);
  // one session per server carried all its requests; server 1's GOAWAY made the client open a second one
  expect(two.sessions).toBe(1);
  await expect.poll(() => one.sessions, { timeout: 5_000 }).toBe(2);
}

test('requests are balanced over reused sessions and survive a GOAWAY', async () => {
  const [one, two] = servers as [ItemServer, ItemServer];
  const result = await run({
    servers: [one.address, two.address],
    requests: 40,
    between: () => one.goaway(),
  });
  await expectBalancedAcrossGoaway(result, 80);
});

test('fetch through the dispatcher: balanced over reused sessions, survives a GOAWAY, streams POST bodies', async () => {
  const [one, two] = servers as [ItemServer, ItemServer];
  const result = await runFetch({
    servers: [one.address, two.address],
    requests: 40,
    between: () => one.goaway(),
  });
  // every streamed POST body arrived whole
  expect(result.posted).toEqual([128 * 1024, 128 * 1024, 128 * 1024]);
  await expectBalancedAcrossGoaway(result, 83);
});
