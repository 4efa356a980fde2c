import { type EchoServer, pickHosts, startEchoServer } from '@grpc-tower/testing';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type EtcdServer, startEtcd } from '../../../packages/discover/src/test/index.js';
import { run } from './main.js';

let etcd: EtcdServer | undefined;
let servers: EchoServer[] = [];

beforeAll(async () => {
  servers = await Promise.all(pickHosts(2).map((host) => startEchoServer({ host })));
  etcd = await startEtcd();
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop(0)));
  await etcd?.close();
});

test('both sources feed the balancer, and a server that leaves gets no more calls', async () => {
  const [first, second] = servers.map((s) => s.address) as [string, string];
  const result = await run({ servers: [first, second], etcd: etcd?.url as string, calls: 16 });

  for (const tally of [result.handWritten, result.etcd]) {
    const before = Object.entries(tally.before);
    expect(before.reduce((a, [, n]) => a + n, 0)).toBe(16);
    for (const [server] of before) expect([first, second]).toContain(server);
    // after the first server left discovery (and drained), only the second answers
    expect(tally.after).toEqual({ [second]: 16 });
  }
  // the etcd keys went with their leases
  expect((await etcd?.etcdctl('get', '--prefix', '/services/echo/'))?.trim()).toBe('');
});
