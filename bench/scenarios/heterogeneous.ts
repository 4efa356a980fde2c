/**
 * heterogeneous: three servers, one 50× slower than the others (each adds
 * a fixed latency before answering: 1 ms on two, 50 ms on the third, set
 * with the child server's `setLatency`). Four clients, measured in
 * alternating rounds:
 *
 * - p2c + PeakEWMA, p2c + pending requests, roundRobin: grpc-tower's
 *   balancers (static discovery → connect → balancer → createChannel);
 * - grpc-js round_robin (baseline): a plain grpc-js client over the three
 *   addresses.
 *
 * Each round is a closed loop with a fixed number of calls in flight; the
 * latency of every call gives p50/p99/p999, the loop's rate the
 * throughput, and the replies' server names the slow server's share.
 * Target: p2c + PeakEWMA's p99 ≤ 0.2× grpc-js round_robin's (median of the
 * per-round ratios).
 *
 * @module
 */
import { peakEwma, pendingRequests } from '@grpc-tower/balance';
import { staticList } from '@grpc-tower/discover';
import { closedLoop } from '../lib/load.js';
import { roundOrder } from '../lib/rounds.js';
import { type ScenarioBody, type ScenarioOptions, target } from '../lib/schema.js';
import { HOSTS, spawnServers, stopServers } from '../lib/servers.js';
import { type Contender, balancedChannel, closeAll, plainClient } from '../lib/stacks.js';
import { RoundRecorder, percentile, sortedSamples } from '../lib/stats.js';

const FAST_MS = 1;
const SLOW_MS = 50;
const BASE = 'grpc-js round_robin';
const PEAK = 'p2c + PeakEWMA';

/**
 * Runs the heterogeneous-backends scenario.
 *
 * @example
 * ```ts
 * const body = await heterogeneous({ quick: true, log: console.error });
 * ```
 */
export async function heterogeneous({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  const rounds = quick ? 2 : 5;
  const roundMs = quick ? 1_000 : 2_500;
  const warmupMs = quick ? 500 : 1_000;
  const concurrency = 8;

  const hosts = HOSTS.heterogeneous;
  const servers = await spawnServers(
    hosts.map((host, i) => ({ host, name: i === hosts.length - 1 ? 'slow' : `fast${i}` })),
  );
  const contenders: Contender[] = [];
  try {
    await Promise.all(servers.map((s) => s.setLatency(s.name === 'slow' ? SLOW_MS : FAST_MS)));
    const addresses = servers.map((s) => s.address);
    contenders.push(
      balancedChannel(PEAK, staticList(addresses), { kind: 'p2c', load: peakEwma() }),
      balancedChannel('p2c + pending', staticList(addresses), { kind: 'p2c', load: pendingRequests() }),
      balancedChannel('roundRobin', staticList(addresses), { kind: 'round-robin' }),
      plainClient(BASE, `ipv4:${addresses.join(',')}`, { roundRobin: true }),
    );
    // connect everything, and let PeakEWMA learn the round-trip times
    for (const c of contenders) await closedLoop(c.client, { concurrency, durationMs: warmupMs });

    const rec = new RoundRecorder();
    let failures = 0;
    for (let r = 0; r < rounds; r++) {
      for (const c of roundOrder(contenders, r)) {
        const loop = await closedLoop(c.client, { concurrency, durationMs: roundMs });
        failures += loop.failures;
        const lat = sortedSamples(loop.latencies);
        rec.add(c.name, 'p50Ms', percentile(lat, 0.5));
        rec.add(c.name, 'p99Ms', percentile(lat, 0.99));
        rec.add(c.name, 'p999Ms', percentile(lat, 0.999));
        rec.add(c.name, 'rps', (loop.calls / loop.elapsedMs) * 1000);
        rec.add(c.name, 'slowShare', (100 * (loop.byServer.get('slow') ?? 0)) / Math.max(1, loop.calls));
        rec.add(c.name, 'samples', loop.calls);
      }
      log(`heterogeneous: round ${r + 1}/${rounds} done`);
    }
    for (const c of contenders) {
      rec.ratio(c.name, BASE, 'p99Ms', 'p99Ratio');
      rec.ratio(c.name, BASE, 'rps', 'rpsRatio');
    }
    const metrics = ['p50Ms', 'p99Ms', 'p999Ms', 'p99Ratio', 'rps', 'rpsRatio', 'slowShare', 'samples'];
    return {
      title: 'three servers, one 50× slower',
      description:
        `Three echo servers in child processes; two add ${FAST_MS} ms before answering, the third ${SLOW_MS} ms ` +
        '(a server-wide latency set in the child, so every call to it is slow). Four clients measured in ' +
        "alternating rounds: grpc-tower's p2c with PeakEWMA load (the default), p2c with pending-requests " +
        '(least-request) load and roundRobin, each as static discovery → connect → balancer → createChannel ' +
        'with no other layer, and a plain grpc-js client with its round_robin policy over the same three ' +
        `addresses. Each round is a closed loop with ${concurrency} calls in flight for ${roundMs} ms; ` +
        'latency percentiles are over every call of the round, the slow share is the percentage of calls the ' +
        'slow server answered, and ratios are to grpc-js round_robin, round by round.',
      rounds,
      config: { fastMs: FAST_MS, slowMs: SLOW_MS, concurrency, roundMs, warmupMs },
      tables: [
        {
          title: `closed loop, ${concurrency} calls in flight`,
          metrics: [
            { key: 'p50Ms', label: 'p50', unit: 'ms', digits: 2, better: 'lower' },
            { key: 'p99Ms', label: 'p99', unit: 'ms', digits: 2, better: 'lower' },
            { key: 'p999Ms', label: 'p999', unit: 'ms', digits: 2, better: 'lower' },
            { key: 'p99Ratio', label: 'p99 ratio', unit: '×', digits: 3, better: 'lower' },
            { key: 'rps', label: 'calls/s', unit: '', digits: 0, better: 'higher' },
            { key: 'rpsRatio', label: 'calls/s ratio', unit: '×', digits: 2, better: 'higher' },
            { key: 'slowShare', label: 'slow share', unit: '%', digits: 2, better: 'lower' },
            { key: 'samples', label: 'calls/round', unit: '', digits: 0 },
          ],
          rows: contenders.map((c) => ({
            name: c.name,
            ...(c.name === BASE ? { baseline: true } : {}),
            metrics: Object.fromEntries(metrics.map((m) => [m, rec.spread(c.name, m)])),
          })),
        },
      ],
      targets: [
        target({
          id: 'heterogeneous-p99',
          description: "p2c + PeakEWMA p99 vs grpc-js round_robin's",
          row: PEAK,
          metric: 'p99Ratio',
          op: '<=',
          target: 0.2,
          value: rec.spread(PEAK, 'p99Ratio').median,
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
