// Weights from discovery, end to end: SRV records served by a real dnsmasq
// and JSON values in a real etcd give two identical grpc-js servers weights
// 1 and 3; calls through the one-call channel (its default stack: health,
// outlier detection, P2C with PeakEWMA, retries) follow those weights.
import * as grpc from '@grpc/grpc-js';
import { dnsSrv } from '@grpc-tower/discover';
import {
  type EchoProtoClient,
  type EchoServer,
  activeHandles,
  createEchoClient,
  expectNoLeaks,
  loadEchoPackage,
  pickHosts,
  startEchoServer,
} from '@grpc-tower/testing';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Dnsmasq, type EtcdServer, startDnsmasq, startEtcd } from '../../discover/src/test/index.js';
import { type TowerOptions, towerChannel } from './channel.js';

const { EchoService } = loadEchoPackage();
const insecure = grpc.credentials.createInsecure();
const CALLS = 300;

let light: EchoServer;
let heavy: EchoServer;
let baseline: ReturnType<typeof activeHandles>;
beforeAll(async () => {
  baseline = activeHandles();
  const [a, b] = pickHosts(2) as [string, string];
  // a fixed latency well above the scheduling noise of a busy 2-core machine,
  // so that the two servers look as identical as they are
  light = await startEchoServer({ host: a, name: 'light', latencyMs: 4 });
  heavy = await startEchoServer({ host: b, name: 'heavy', latencyMs: 4 });
});
afterAll(async () => {
  await Promise.all([light.stop(0), heavy.stop(0)]);
  await expectNoLeaks(baseline, { settleMs: 5000 });
});

/**
 * The heavy server's share in %, over `CALLS` calls one at a time through a
 * channel for `target`: the median of three rounds of `CALLS`. PeakEWMA
 * keeps a server that answered once late (the client descheduled for tens
 * of ms on a busy machine) out of the picks until its estimate decays, which
 * can swing one round of 400 calls by 20 points; a median of three rounds
 * is robust to one such round, and still far from 75 % if the weights are
 * not followed.
 */
async function heavyShare(target: string, options: TowerOptions): Promise<number> {
  const channel = towerChannel(target, insecure, { services: [EchoService], ...options });
  const client: EchoProtoClient = createEchoClient(target, { channelOverride: channel });
  try {
    // both servers discovered and connected before counting
    const deadline = Date.now() + 10_000;
    const seen = new Set<string>();
    while (seen.size < 2 && Date.now() < deadline) seen.add(await unary(client));
    expect([...seen].sort()).toEqual(['heavy', 'light']);
    const rounds: number[] = [];
    for (let round = 0; round < 3; round++) {
      let heavyCalls = 0;
      for (let i = 0; i < CALLS; i++) if ((await unary(client)) === 'heavy') heavyCalls++;
      rounds.push((100 * heavyCalls) / CALLS);
    }
    console.log(`${target}: heavy share per round ${rounds.join(', ')} %`);
    return [...rounds].sort((a, b) => a - b)[1] as number;
  } finally {
    client.close();
    await channel.closeAsync();
  }
}

function unary(client: EchoProtoClient): Promise<string> {
  return new Promise((resolve, reject) => {
    client.Unary({ message: 'w' }, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err, reply) =>
      err !== null || reply === undefined ? reject(err ?? new Error('no reply')) : resolve(reply.server),
    );
  });
}

test('SRV weights 1 and 3 (real dnsmasq): the heavier server takes about three quarters of the calls', async () => {
  const name = '_grpc._tcp.weights.test';
  let dnsmasq: Dnsmasq | undefined;
  try {
    dnsmasq = await startDnsmasq({
      hosts: { 'light.weights.test': [light.host], 'heavy.weights.test': [heavy.host] },
      srv: [
        { name, target: 'light.weights.test', port: light.port, weight: 1 },
        { name, target: 'heavy.weights.test', port: heavy.port, weight: 3 },
      ],
    });
    const share = await heavyShare('dns:///weights.test:1', {
      discovery: dnsSrv(name, { servers: [dnsmasq.address] }),
    });
    expect(share).toBeGreaterThan(70);
    expect(share).toBeLessThan(80);
  } finally {
    await dnsmasq?.close();
  }
});

test('etcd weights 1 and 3 (real etcd, JSON values): the heavier server takes about three quarters', async () => {
  let etcd: EtcdServer | undefined;
  try {
    etcd = await startEtcd();
    await etcd.put('/services/weights/light', JSON.stringify({ address: light.address, weight: 1 }));
    await etcd.put('/services/weights/heavy', JSON.stringify({ address: heavy.address, weight: 3 }));
    const share = await heavyShare(`etcd://${etcd.endpoint}/services/weights/`, {});
    expect(share).toBeGreaterThan(70);
    expect(share).toBeLessThan(80);
  } finally {
    await etcd?.close();
  }
});

test('without weights the same two servers share evenly', async () => {
  const share = await heavyShare(`ipv4:${light.address},${heavy.address}`, {});
  expect(share).toBeGreaterThan(45);
  expect(share).toBeLessThan(55);
});
