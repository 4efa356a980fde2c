/**
 * overhead: what grpc-tower costs on the unary path, over one server in a
 * child process. Three clients of the same echo service, measured in
 * alternating rounds:
 *
 * - grpc-js (baseline): a plain grpc-js client;
 * - createChannel (bare): `createChannel` over one `grpcEndpoint`;
 * - createChannel (full stack): static discovery → health checking →
 *   outlier detection → p2c (PeakEWMA) → retry with a budget → timeout.
 *
 * Per round and client: throughput of a closed loop (32 calls in flight),
 * the client process's CPU time per call during it, the latency of each of
 * those calls (p99 under load), then a run of sequential calls (p50/p99
 * with no queueing). Targets: full stack ≥ 95 % and bare ≥ 98 % of plain
 * grpc-js throughput (ratios taken round by round).
 *
 * @module
 */
import { staticList } from '@grpc-tower/discover';
import { closedLoop, sequential } from '../lib/load.js';
import { roundOrder } from '../lib/rounds.js';
import { type ScenarioBody, type ScenarioOptions, target } from '../lib/schema.js';
import { HOSTS, spawnServers, stopServers } from '../lib/servers.js';
import { type Contender, FULL_STACK, bareChannel, closeAll, fullStack, plainClient } from '../lib/stacks.js';
import { RoundRecorder, percentile, sortedSamples } from '../lib/stats.js';

const BASE = 'grpc-js';
const BARE = 'createChannel (bare)';
const FULL = 'createChannel (full stack)';

/**
 * Runs the overhead scenario.
 *
 * @example
 * ```ts
 * const body = await overhead({ quick: true, log: console.error });
 * ```
 */
export async function overhead({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  const rounds = quick ? 2 : 5;
  const throughputMs = quick ? 1_000 : 3_000;
  const sequentialCalls = quick ? 300 : 1_500;
  const warmupMs = quick ? 500 : 1_500;
  const concurrency = 32;

  const servers = await spawnServers([{ host: HOSTS.overhead[0], name: 'server', health: true }]);
  const server = servers[0]!;
  const contenders: Contender[] = [];
  try {
    contenders.push(
      plainClient(BASE, server.address),
      bareChannel(BARE, server.address),
      fullStack(FULL, staticList([server.address]), { target: server.address }),
    );
    for (const c of contenders) await closedLoop(c.client, { concurrency, durationMs: warmupMs });

    const rec = new RoundRecorder();
    let failures = 0;
    for (let r = 0; r < rounds; r++) {
      for (const c of roundOrder(contenders, r)) {
        const loop = await closedLoop(c.client, { concurrency, durationMs: throughputMs });
        const seq = await sequential(c.client, sequentialCalls);
        failures += loop.failures + seq.failures;
        const loaded = sortedSamples(loop.latencies);
        const unloaded = sortedSamples(seq.latencies);
        rec.add(c.name, 'rps', (loop.calls / loop.elapsedMs) * 1000);
        rec.add(c.name, 'cpuUsPerCall', loop.cpuUs / Math.max(1, loop.calls + loop.failures));
        rec.add(c.name, 'p50Ms', percentile(unloaded, 0.5));
        rec.add(c.name, 'p99Ms', percentile(unloaded, 0.99));
        rec.add(c.name, 'loadedP99Ms', percentile(loaded, 0.99));
      }
      log(`overhead: round ${r + 1}/${rounds} done`);
    }
    for (const c of contenders) {
      rec.ratio(c.name, BASE, 'rps', 'rpsRatio');
      rec.ratio(c.name, BASE, 'cpuUsPerCall', 'cpuRatio');
    }

    const metrics = ['rps', 'rpsRatio', 'p50Ms', 'p99Ms', 'loadedP99Ms', 'cpuUsPerCall', 'cpuRatio'];
    const rows = contenders.map((c) => ({
      name: c.name,
      ...(c.name === BASE ? { baseline: true } : {}),
      metrics: Object.fromEntries(metrics.map((m) => [m, rec.spread(c.name, m)])),
    }));
    const ratio = (row: string) => rec.spread(row, 'rpsRatio').median;
    return {
      title: 'unary calls over one endpoint',
      description:
        'One echo server in a child process; three clients of it measured in alternating rounds: a plain ' +
        'grpc-js client, `createChannel` over one `grpcEndpoint` (bare), and the full default stack ' +
        `(${FULL_STACK.description}). Throughput and CPU: a closed loop with ${concurrency} calls in flight ` +
        "for each round; client CPU is this process's user + system time per call during that loop (the " +
        "server's is not counted). p50/p99: sequential calls after it (no queueing); loaded p99: the calls " +
        'of the closed loop. Ratios are to grpc-js, round by round.',
      rounds,
      config: { concurrency, throughputMs, sequentialCalls, warmupMs, server: server.address },
      tables: [
        {
          title: `unary calls, ${concurrency} in flight (throughput, CPU) and one at a time (p50/p99)`,
          metrics: [
            { key: 'rps', label: 'calls/s', unit: '', digits: 0, better: 'higher' },
            { key: 'rpsRatio', label: 'ratio', unit: '×', digits: 3, better: 'higher' },
            { key: 'p50Ms', label: 'p50', unit: 'ms', digits: 3, better: 'lower' },
            { key: 'p99Ms', label: 'p99', unit: 'ms', digits: 3, better: 'lower' },
            { key: 'loadedP99Ms', label: 'p99 loaded', unit: 'ms', digits: 2, better: 'lower' },
            { key: 'cpuUsPerCall', label: 'client CPU', unit: 'µs/call', digits: 1, better: 'lower' },
            { key: 'cpuRatio', label: 'CPU ratio', unit: '×', digits: 2, better: 'lower' },
          ],
          rows,
        },
      ],
      targets: [
        target({
          id: 'overhead-full-throughput',
          description: 'full stack throughput vs plain grpc-js',
          row: FULL,
          metric: 'rpsRatio',
          op: '>=',
          target: 0.95,
          value: ratio(FULL),
          unit: '×',
        }),
        target({
          id: 'overhead-bare-throughput',
          description: 'bare createChannel throughput vs plain grpc-js',
          row: BARE,
          metric: 'rpsRatio',
          op: '>=',
          target: 0.98,
          value: ratio(BARE),
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
