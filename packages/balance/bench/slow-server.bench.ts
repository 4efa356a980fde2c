// One of three servers 50× slower (2 ms vs 100 ms added latency; each server
// in its own child process). Four clients are measured in one run, in
// alternating rounds:
//   - p2c + PeakEWMA      (grpc-tower, default PeakEWMA settings)
//   - p2c + pending       (grpc-tower, least-request)
//   - roundRobin          (grpc-tower)
//   - grpc-js round_robin (a plain grpc-js client, no grpc-tower)
//
// Latency: an open-loop load at a fixed rate (calls start on schedule,
// whether or not earlier ones finished, as a service's callers would), so
// the numbers are not bent by the client waiting on its own slow calls;
// p50/p99 per client and the slow server's share of calls.
// Throughput: a closed loop with a fixed number of calls in flight, calls/s.
// Target: p2c + PeakEWMA's p99 at most 0.2× grpc-js round_robin's.
//
//   npx tsx --conditions=@grpc-tower/source packages/balance/bench/slow-server.bench.ts [--quick] [--debug]
import { mkdirSync, writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import {
  type NativeGrpcEndpoint,
  type GrpcRequest,
  type GrpcResponse,
  createChannel,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import type { Change } from '@grpc-tower/core';
import {
  type EchoProtoClient,
  createEchoClient,
  loadEchoPackage,
  spawnEchoServer,
} from '@grpc-tower/testing';
import { Subject } from 'rxjs';
import type { Balancer } from '../src/balancer.js';
import type { LoadMetric } from '../src/load/metric.js';
import { peakEwma } from '../src/load/peak-ewma.js';
import { pendingRequests } from '../src/load/pending.js';
import { p2c } from '../src/p2c.js';
import { roundRobin } from '../src/round-robin.js';

const quick = process.argv.includes('--quick');
const debug = process.argv.includes('--debug');
const FAST_MS = 2;
const SLOW_MS = 100;
const rate = 400; // calls per second, open loop
const concurrency = 8; // calls in flight, closed loop
const warmupMs = quick ? 300 : 10_000;
const rounds = quick ? 2 : 3;
const latencyRoundMs = quick ? 500 : 1_000;
const throughputRoundMs = quick ? 250 : 400;

const { EchoService } = loadEchoPackage();
const hosts = ['127.0.0.31', '127.0.0.32', '127.0.0.33'];
const servers = await Promise.all(
  hosts.map((host, i) =>
    spawnEchoServer({ host, name: i === 2 ? 'slow' : `fast${i}`, latencyMs: i === 2 ? SLOW_MS : FAST_MS }),
  ),
);

type Discovery = Subject<Change<string, NativeGrpcEndpoint>>;
type GrpcBalancer = Balancer<GrpcRequest, GrpcResponse, string>;

interface Candidate {
  readonly name: string;
  readonly client: EchoProtoClient;
  readonly balancer: GrpcBalancer | undefined;
  readonly latencies: number[];
  readonly replies: Map<string, number>;
  failures: number;
  closedLoopCalls: number;
  closedLoopMs: number;
  close(): Promise<void>;
}

function towerCandidate(name: string, make: (d: Discovery) => GrpcBalancer): Candidate {
  const discover: Discovery = new Subject();
  const balancer = make(discover);
  for (const s of servers)
    discover.next({
      type: 'insert',
      key: s.address,
      endpoint: grpcEndpoint(s.address, { credentials: grpc.credentials.createInsecure() }),
    });
  const channel = createChannel(balancer, {
    target: 'bench',
    services: [EchoService],
  });
  const client = createEchoClient('bench', { channelOverride: channel });
  return {
    name,
    client,
    balancer,
    latencies: [],
    replies: new Map(),
    failures: 0,
    closedLoopCalls: 0,
    closedLoopMs: 0,
    close: async () => {
      client.close();
      await channel.closeAsync();
    },
  };
}

const withLoad =
  (load: LoadMetric) =>
  (d: Discovery): GrpcBalancer =>
    p2c(d, { target: 'bench', load });

const plainClient = createEchoClient(`ipv4:${servers.map((s) => s.address).join(',')}`, {
  'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
});

const candidates: Candidate[] = [
  towerCandidate('p2c + PeakEWMA', withLoad(peakEwma())),
  towerCandidate('p2c + pending', withLoad(pendingRequests())),
  towerCandidate('roundRobin', (d) => roundRobin(d, { target: 'bench' })),
  {
    name: 'grpc-js round_robin',
    client: plainClient,
    balancer: undefined,
    latencies: [],
    replies: new Map(),
    failures: 0,
    closedLoopCalls: 0,
    closedLoopMs: 0,
    close: async () => plainClient.close(),
  },
];

const unary = (client: EchoProtoClient): Promise<string> =>
  new Promise((resolve, reject) => {
    client.Unary({ message: 'x' }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, reply) => {
      if (err) reject(err);
      else resolve(reply?.server ?? '?');
    });
  });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Open loop: starts calls at `rate` per second for `ms`, then waits for the last ones. */
async function openLoop(c: Candidate, ms: number, record: boolean): Promise<void> {
  const interval = 1000 / rate;
  const start = performance.now();
  const calls: Promise<void>[] = [];
  for (let i = 0; ; i++) {
    const due = start + i * interval;
    if (due - start >= ms) break;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const t = performance.now();
    calls.push(
      unary(c.client).then(
        (server) => {
          if (!record) return;
          c.latencies.push(performance.now() - t);
          c.replies.set(server, (c.replies.get(server) ?? 0) + 1);
        },
        () => {
          if (record) c.failures++;
        },
      ),
    );
  }
  await Promise.all(calls);
}

/** Closed loop: `concurrency` callers, each starting its next call when the last one ends. */
async function closedLoop(c: Candidate, ms: number): Promise<void> {
  const start = performance.now();
  const end = start + ms;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        try {
          await unary(c.client);
          done++;
        } catch {
          c.failures++;
        }
      }
    }),
  );
  c.closedLoopCalls += done;
  c.closedLoopMs += performance.now() - start;
}

// every client connects and warms up (PeakEWMA learns the round-trip times)
for (const c of candidates) await openLoop(c, warmupMs, false);
// latency rounds, then throughput rounds, each alternating the clients' order
for (let r = 0; r < rounds; r++) {
  for (const c of r % 2 === 0 ? candidates : [...candidates].reverse())
    await openLoop(c, latencyRoundMs, true);
  if (debug) {
    for (const c of candidates) {
      const eps = c.balancer?.stats().endpoints ?? [];
      console.log(
        c.name,
        eps.map((e) => `${e.address} ewma=${e.ewmaMs?.toFixed(2)} picks=${e.picks}`).join('; '),
      );
    }
  }
}
for (let r = 0; r < rounds; r++) {
  for (const c of r % 2 === 0 ? candidates : [...candidates].reverse())
    await closedLoop(c, throughputRoundMs);
}

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
const p99Of = (c: Candidate): number =>
  pct(
    [...c.latencies].sort((a, b) => a - b),
    0.99,
  );
const baseP99 = p99Of(candidates[3] as Candidate);
const table: Record<string, Record<string, string>> = {};
const results: Record<string, Record<string, number>> = {};
for (const c of candidates) {
  const sorted = [...c.latencies].sort((a, b) => a - b);
  const p50 = pct(sorted, 0.5);
  const p99 = pct(sorted, 0.99);
  const rps = (c.closedLoopCalls / c.closedLoopMs) * 1000;
  const slowShare = (c.replies.get('slow') ?? 0) / Math.max(1, c.latencies.length);
  table[c.name] = {
    'p50 ms': p50.toFixed(2),
    'p99 ms': p99.toFixed(2),
    'p99 / grpc-js': (p99 / baseP99).toFixed(3),
    'slow share': `${(slowShare * 100).toFixed(1)} %`,
    'calls/s (closed loop)': rps.toFixed(0),
    'latency samples': String(c.latencies.length),
    failures: String(c.failures),
  };
  results[c.name] = {
    p50,
    p99,
    p99Ratio: p99 / baseP99,
    slowShare,
    rps,
    samples: c.latencies.length,
    failures: c.failures,
  };
}

console.log(
  `\nOne of three servers 50× slower (${FAST_MS} ms vs ${SLOW_MS} ms added latency; node ${process.version}).\n` +
    `Latency: open loop at ${rate} calls/s, ${rounds} alternating rounds of ${latencyRoundMs} ms per client ` +
    `after ${warmupMs} ms warm-up. Throughput: closed loop, ${concurrency} in flight, ${rounds} rounds of ` +
    `${throughputRoundMs} ms.\n`,
);
console.table(table);
const peakRatio = results['p2c + PeakEWMA']?.p99Ratio ?? Number.NaN;
console.log(`p2c + PeakEWMA p99 = ${peakRatio.toFixed(3)}× grpc-js round_robin's (target ≤ 0.2)`);

for (const c of candidates) await c.close();
await Promise.all(servers.map((s) => s.stop(100)));

const dir = new URL('./results/', import.meta.url);
mkdirSync(dir, { recursive: true });
writeFileSync(
  new URL('slow-server.json', dir),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      quick,
      FAST_MS,
      SLOW_MS,
      rate,
      concurrency,
      results,
    },
    null,
    2,
  )}\n`,
);
