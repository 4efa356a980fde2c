// Overhead of the gRPC path: unary calls to one server (in a child process)
// from a plain grpc-js client and from the same client through
// createChannel over one grpcEndpoint, in the same run, alternating rounds.
// Prints throughput (closed loop, fixed concurrency), p50/p99 latency
// (sequential calls) and the ratios to plain grpc-js.
//
//   npx tsx --conditions=@grpc-tower/source packages/core/bench/overhead.bench.ts [--quick]
import * as grpc from '@grpc/grpc-js';
import { loadEchoPackage, spawnEchoServer } from '@grpc-tower/testing';
import { createChannel, grpcEndpoint } from '../src/grpc/index.js';

const quick = process.argv.includes('--quick');
const rounds = quick ? 2 : 5;
const roundMs = quick ? 1_000 : 3_000;
const concurrency = 32;
const latencySamples = quick ? 500 : 2_000;

const { EchoClient, EchoService } = loadEchoPackage();
type Client = InstanceType<typeof EchoClient>;

const call = (client: Client): Promise<void> =>
  new Promise((resolve, reject) =>
    client.Unary({ message: 'x' }, (e: Error | null) => (e ? reject(e) : resolve())),
  );

async function throughput(client: Client, ms: number): Promise<number> {
  let done = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await call(client);
        done++;
      }
    }),
  );
  return (done / ms) * 1000;
}

async function latencies(client: Client, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call(client);
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const server = await spawnEchoServer({ host: '127.0.0.9', name: 'bench' });
const plain = new EchoClient(server.address, grpc.credentials.createInsecure());
const endpoint = grpcEndpoint(server.address, { credentials: grpc.credentials.createInsecure() });
const channel = createChannel(endpoint, {
  target: server.address,
  services: [EchoService],
});
const tower = new EchoClient(server.address, grpc.credentials.createInsecure(), { channelOverride: channel });

const clients = { 'grpc-js': plain, 'createChannel (bare)': tower } as const;
const results: Record<string, { rps: number[]; p50: number[]; p99: number[]; cpuUsPerCall: number[] }> = {};
for (const name of Object.keys(clients)) results[name] = { rps: [], p50: [], p99: [], cpuUsPerCall: [] };

// warm-up both
for (const c of Object.values(clients)) await throughput(c, 500);
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? Object.entries(clients) : Object.entries(clients).reverse();
  for (const [name, client] of order) {
    const cpu0 = process.cpuUsage();
    const rps = await throughput(client, roundMs);
    const cpu = process.cpuUsage(cpu0);
    const lat = await latencies(client, latencySamples);
    const res = results[name]!;
    res.rps.push(rps);
    res.cpuUsPerCall.push((cpu.user + cpu.system) / (rps * (roundMs / 1000)));
    res.p50.push(pct(lat, 0.5));
    res.p99.push(pct(lat, 0.99));
  }
}

const base = results['grpc-js']!;
console.log(
  `\nunary overhead, one server in a child process, ${rounds} alternating rounds of ${roundMs} ms, concurrency ${concurrency}`,
);
console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} cores\n`);
console.log(
  'client                 calls/s (median, min-max)   ratio   p50 ms   p99 ms   client CPU µs/call',
);
for (const [name, r] of Object.entries(results)) {
  const rps = median(r.rps);
  console.log(
    `${name.padEnd(22)} ${rps.toFixed(0).padStart(7)} (${Math.min(...r.rps).toFixed(0)}-${Math.max(...r.rps).toFixed(0)})`.padEnd(
      50,
    ) +
      `${(rps / median(base.rps)).toFixed(3).padStart(6)}   ${median(r.p50).toFixed(3).padStart(6)}   ${median(r.p99).toFixed(3).padStart(6)}   ${median(r.cpuUsPerCall).toFixed(1).padStart(8)}`,
  );
}
plain.close();
tower.close();
await channel.closeAsync();
await server.stop();
