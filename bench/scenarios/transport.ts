/**
 * transport: what the native gRPC transport does beyond small unary calls,
 * against a plain grpc-js client, over one echo server in a child process.
 * Three clients, measured in alternating rounds: a plain grpc-js client,
 * `createChannel` over one native `grpcEndpoint` (bare), and `towerChannel`
 * (the full default stack, native).
 *
 * - server streaming: a closed loop of `ServerStream` calls (8 in flight),
 *   each answered with 100 small messages; messages received per second;
 * - 1 MiB unary: a closed loop of `Unary` calls (4 in flight) sending a
 *   1 MiB payload that comes back; MiB received per second;
 * - heap per idle endpoint: the used heap (after full garbage collections)
 *   that 50 connected, idle native endpoints keep, per endpoint, against 50
 *   connected, idle grpc-js channels, per channel; each kind measured in a
 *   fresh process of its own (`lib/idle-heap-probe.ts`), never in this one,
 *   whose heap grows and shrinks with the rounds before.
 *
 * Targets: server streaming ≥ 1.2× grpc-js's messages/s (bare channel);
 * 1 MiB unary ≥ 1.0× its throughput (bare channel); heap per idle endpoint
 * ≤ grpc-js's per channel.
 *
 * @module
 */
import type { EchoProtoClient } from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import { measureIdleHeap } from '../lib/idle-heap-probe.js';
import { closedLoopOf } from '../lib/load.js';
import { roundOrder } from '../lib/rounds.js';
import { type ScenarioBody, type ScenarioOptions, target } from '../lib/schema.js';
import { HOSTS, spawnServers, stopServers } from '../lib/servers.js';
import { type Contender, bareChannel, closeAll, plainClient, towerClient } from '../lib/stacks.js';
import { RoundRecorder } from '../lib/stats.js';

const BASE = 'grpc-js';
const BARE = 'createChannel (bare, native)';
const TOWER = 'towerChannel (native)';
const STREAM_MESSAGES = 100;
const MIB = 1024 * 1024;
const IDLE_ENDPOINTS = 50;

/** One server-streaming call of `count` small messages; resolves with the count received. */
function serverStream(client: EchoProtoClient, count: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let received = 0;
    const call = client.ServerStream({ message: 'x', count }, new grpc.Metadata(), {
      deadline: Date.now() + 10_000,
    });
    call.on('data', () => received++);
    call.on('error', reject);
    call.on('end', () => resolve(received));
  });
}

/** One unary call with `payload` (echoed back); resolves with the bytes received. */
function bigUnary(client: EchoProtoClient, payload: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    client.Unary({ payload }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, reply) => {
      if (err) reject(err);
      else resolve(reply?.payload.length ?? 0);
    });
  });
}

/**
 * Runs the transport scenario.
 *
 * @example
 * ```ts
 * const body = await transportScenario({ quick: true, log: console.error });
 * ```
 */
export async function transportScenario({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  const rounds = quick ? 2 : 5;
  const runMs = quick ? 500 : 2_000;
  const warmupMs = quick ? 300 : 1_000;
  const streamConcurrency = 8;
  const bigConcurrency = 4;
  const payload = Buffer.alloc(MIB, 7);

  const servers = await spawnServers([{ host: HOSTS.transport[0], name: 'server' }]);
  const server = servers[0]!;
  const contenders: Contender[] = [];
  try {
    contenders.push(
      plainClient(BASE, server.address),
      bareChannel(BARE, server.address),
      towerClient(TOWER, server.address),
    );
    const stream = (c: Contender) => () =>
      serverStream(c.client, STREAM_MESSAGES).then((n) => {
        if (n !== STREAM_MESSAGES) throw new Error(`${n} of ${STREAM_MESSAGES} messages`);
        return 'server';
      });
    const big = (c: Contender) => () =>
      bigUnary(c.client, payload).then((n) => {
        if (n !== MIB) throw new Error(`${n} of ${MIB} bytes echoed`);
        return 'server';
      });
    for (const c of contenders) {
      await closedLoopOf(stream(c), { concurrency: streamConcurrency, durationMs: warmupMs });
      await closedLoopOf(big(c), { concurrency: bigConcurrency, durationMs: warmupMs });
    }
    const rec = new RoundRecorder();
    let failures = 0;
    for (let r = 0; r < rounds; r++) {
      for (const c of roundOrder(contenders, r)) {
        const s = await closedLoopOf(stream(c), { concurrency: streamConcurrency, durationMs: runMs });
        const b = await closedLoopOf(big(c), { concurrency: bigConcurrency, durationMs: runMs });
        failures += s.failures + b.failures;
        rec.add(c.name, 'messagesPerSec', ((s.calls * STREAM_MESSAGES) / s.elapsedMs) * 1000);
        rec.add(c.name, 'streamCpuUsPerMessage', s.cpuUs / Math.max(1, s.calls * STREAM_MESSAGES));
        rec.add(c.name, 'mibPerSec', (b.calls / b.elapsedMs) * 1000);
        rec.add(c.name, 'bigCpuUsPerCall', b.cpuUs / Math.max(1, b.calls));
      }
      log(`transport: round ${r + 1}/${rounds} done`);
    }
    for (const c of contenders) {
      rec.ratio(c.name, BASE, 'messagesPerSec', 'streamRatio');
      rec.ratio(c.name, BASE, 'mibPerSec', 'bigRatio');
    }
    const heapRuns = quick ? 1 : 3;
    for (let run = 0; run < heapRuns; run++) {
      const heap = { native: 0, 'grpc-js': 0 };
      for (const kind of roundOrder(['native', 'grpc-js'] as const, run)) {
        heap[kind] = (await measureIdleHeap(kind, server.address, IDLE_ENDPOINTS)).bytesPerEndpoint;
      }
      rec.add('native endpoint', 'heapBytes', heap.native);
      rec.add('grpc-js channel', 'heapBytes', heap['grpc-js']);
      rec.add('native endpoint', 'heapRatio', heap.native / heap['grpc-js']);
      rec.add('grpc-js channel', 'heapRatio', 1);
      log(`transport: heap run ${run + 1}/${heapRuns} done`);
    }
    const median = (row: string, metric: string) => rec.spread(row, metric).median;
    const streamMetrics = ['messagesPerSec', 'streamRatio', 'streamCpuUsPerMessage'];
    const bigMetrics = ['mibPerSec', 'bigRatio', 'bigCpuUsPerCall'];
    const rowsOf = (metrics: readonly string[]) =>
      contenders.map((c) => ({
        name: c.name,
        ...(c.name === BASE ? { baseline: true } : {}),
        metrics: Object.fromEntries(metrics.map((m) => [m, rec.spread(c.name, m)])),
      }));
    return {
      title: 'server streaming, large messages and idle endpoints',
      description:
        'One echo server in a child process; a plain grpc-js client, `createChannel` over one native ' +
        '`grpcEndpoint` and `towerChannel` measured in alternating rounds. Server streaming: a closed loop ' +
        `of ${streamConcurrency} ServerStream calls of ${STREAM_MESSAGES} small messages each; 1 MiB: a closed ` +
        `loop of ${bigConcurrency} unary calls sending a 1 MiB payload that comes back. Client CPU is this ` +
        "process's per message or call. Heap: the used heap after full collections that " +
        `${IDLE_ENDPOINTS} connected, idle native endpoints keep, per endpoint, and that as many connected, ` +
        'idle grpc-js channels keep, per channel (JavaScript heap only), each kind measured in a fresh ' +
        'process of its own started with --expose-gc. Ratios are to grpc-js, round by round.',
      rounds,
      config: { runMs, warmupMs, streamConcurrency, bigConcurrency, idleEndpoints: IDLE_ENDPOINTS, heapRuns },
      tables: [
        {
          title: `server streaming, ${STREAM_MESSAGES} small messages per call, ${streamConcurrency} calls in flight`,
          metrics: [
            { key: 'messagesPerSec', label: 'messages/s', unit: '', digits: 0, better: 'higher' },
            { key: 'streamRatio', label: 'ratio', unit: '×', digits: 2, better: 'higher' },
            { key: 'streamCpuUsPerMessage', label: 'client CPU', unit: 'µs/msg', digits: 2, better: 'lower' },
          ],
          rows: rowsOf(streamMetrics),
        },
        {
          title: `1 MiB unary calls, ${bigConcurrency} in flight`,
          metrics: [
            { key: 'mibPerSec', label: 'MiB/s', unit: '', digits: 0, better: 'higher' },
            { key: 'bigRatio', label: 'ratio', unit: '×', digits: 2, better: 'higher' },
            { key: 'bigCpuUsPerCall', label: 'client CPU', unit: 'µs/call', digits: 0, better: 'lower' },
          ],
          rows: rowsOf(bigMetrics),
        },
        {
          title: `heap per connected, idle endpoint (${IDLE_ENDPOINTS} of each)`,
          metrics: [
            { key: 'heapBytes', label: 'heap', unit: 'B', digits: 0, better: 'lower' },
            { key: 'heapRatio', label: 'ratio', unit: '×', digits: 2, better: 'lower' },
          ],
          rows: ['grpc-js channel', 'native endpoint'].map((name) => ({
            name,
            ...(name === 'grpc-js channel' ? { baseline: true } : {}),
            metrics: {
              heapBytes: rec.spread(name, 'heapBytes'),
              heapRatio: rec.spread(name, 'heapRatio'),
            },
          })),
        },
      ],
      targets: [
        target({
          id: 'transport-stream-throughput',
          description: 'server streaming messages/s, bare native channel vs plain grpc-js',
          row: BARE,
          metric: 'streamRatio',
          op: '>=',
          target: 1.2,
          value: median(BARE, 'streamRatio'),
          unit: '×',
        }),
        target({
          id: 'transport-1mib-throughput',
          description: '1 MiB unary throughput, bare native channel vs plain grpc-js',
          row: BARE,
          metric: 'bigRatio',
          op: '>=',
          target: 1,
          value: median(BARE, 'bigRatio'),
          unit: '×',
        }),
        target({
          id: 'transport-idle-heap',
          description: 'heap per connected, idle native endpoint vs per grpc-js channel',
          row: 'native endpoint',
          metric: 'heapRatio',
          op: '<=',
          target: 1,
          value: median('native endpoint', 'heapRatio'),
          unit: '×',
        }),
      ],
      notes: failures > 0 ? [`${failures} calls failed during the measurement`] : [],
    };
  } finally {
    await closeAll(contenders);
    await stopServers(servers);
  }
}
