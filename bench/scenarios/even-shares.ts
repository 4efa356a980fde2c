/**
 * even-shares: three identical servers (each adds the same fixed latency
 * before answering), and how evenly each client spreads its calls over
 * them. The measure is the worst share deviation: the largest distance, in
 * percentage points, between a server's share of a window's calls and an
 * even third.
 *
 * Contenders, in alternating rounds: grpc-tower's p2c with PeakEWMA (the
 * default), with PeakEWMA's classic form (the peak decays with the 10 s
 * average, and the lower cost always wins), and with pending requests, each
 * as static discovery → connect → p2c → createChannel, and a plain grpc-js
 * client with round_robin (the baseline, even by construction). Cases, each over one window:
 *
 * - low rate: an open loop starting {@link LOW_RATE} calls/s on schedule, so
 *   that most calls find no other call in flight;
 * - high rate: an open loop at {@link HIGH_RATE} calls/s;
 * - one at a time: each call starts when the last one ended;
 * - cold start: the first {@link COLD_CALLS} sequential calls of a client
 *   made for the round (new connections, no estimate yet).
 *
 * Target: p2c + PeakEWMA within ±1.5 pp of an even share in every warm case
 * (the median over rounds of each case's worst deviation).
 *
 * @module
 */
import { peakEwma, pendingRequests } from '@grpc-tower/balance';
import { staticList } from '@grpc-tower/discover';
import { openLoopFor, unary } from '../lib/load.js';
import { roundOrder } from '../lib/rounds.js';
import { type MetricSpec, type ScenarioBody, type ScenarioOptions, target } from '../lib/schema.js';
import { HOSTS, spawnServers, stopServers } from '../lib/servers.js';
import { type Contender, balancedChannel, closeAll, plainClient } from '../lib/stacks.js';
import { RoundRecorder } from '../lib/stats.js';

const LATENCY_MS = 3;
const LOW_RATE = 150;
const HIGH_RATE = 1_200;
const COLD_CALLS = 200;
const BASE = 'grpc-js round_robin';
const PEAK = 'p2c + PeakEWMA';
const PENDING = 'p2c + pending';
/** PeakEWMA as Finagle and tower have it: the peak decays with the average, the lower cost always wins. */
const CLASSIC = 'p2c + PeakEWMA, classic';
const TARGET_PP = 1.5;

type Make = (name: string, addresses: readonly string[]) => Contender;
const MAKERS: readonly [string, Make][] = [
  [PEAK, (name, a) => balancedChannel(name, staticList(a), { kind: 'p2c', load: peakEwma() })],
  [
    CLASSIC,
    (name, a) =>
      balancedChannel(name, staticList(a), {
        kind: 'p2c',
        load: peakEwma({ peakDecayMs: 10_000 }),
        tieTolerance: 0,
      }),
  ],
  [PENDING, (name, a) => balancedChannel(name, staticList(a), { kind: 'p2c', load: pendingRequests() })],
  [BASE, (name, a) => plainClient(name, `ipv4:${a.join(',')}`, { roundRobin: true })],
];

/** The largest distance between a server's share and an even one, in percentage points. */
function worstDeviation(byServer: ReadonlyMap<string, number>, servers: readonly string[]): number {
  const total = servers.reduce((a, s) => a + (byServer.get(s) ?? 0), 0);
  if (total === 0) return Number.NaN;
  const even = 100 / servers.length;
  return Math.max(...servers.map((s) => Math.abs((100 * (byServer.get(s) ?? 0)) / total - even)));
}

const tally = (servers: Iterable<string | undefined>): Map<string, number> => {
  const m = new Map<string, number>();
  for (const s of servers) if (s !== undefined) m.set(s, (m.get(s) ?? 0) + 1);
  return m;
};

/** Sequential calls for `ms` (or `count` calls), tallied by server. */
async function oneAtATime(
  c: Contender,
  limit: { readonly ms?: number; readonly count?: number },
): Promise<{ byServer: Map<string, number>; failures: number }> {
  const servers: string[] = [];
  let failures = 0;
  const end = performance.now() + (limit.ms ?? Number.POSITIVE_INFINITY);
  for (let i = 0; i < (limit.count ?? Number.POSITIVE_INFINITY) && performance.now() < end; i++) {
    try {
      servers.push(await unary(c.client));
    } catch {
      failures++;
    }
  }
  return { byServer: tally(servers), failures };
}

/**
 * Runs the even-shares scenario.
 *
 * @example
 * ```ts
 * const body = await evenShares({ quick: true, log: console.error });
 * ```
 */
export async function evenShares({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  const rounds = quick ? 1 : 3;
  const windowMs = quick ? 1_000 : 10_000;
  const warmupMs = quick ? 300 : 5_000;
  const coldCalls = quick ? 30 : COLD_CALLS;

  const servers = await spawnServers(HOSTS.evenShares.map((host, i) => ({ host, name: `s${i}` })));
  const names = servers.map((s) => s.name);
  const addresses = servers.map((s) => s.address);
  const contenders: Contender[] = [];
  try {
    await Promise.all(servers.map((s) => s.setLatency(LATENCY_MS)));
    contenders.push(...MAKERS.map(([name, make]) => make(name, addresses)));
    for (const c of contenders) await openLoopFor(c.client, LOW_RATE, warmupMs);
    const rec = new RoundRecorder();
    let failures = 0;
    for (let r = 0; r < rounds; r++) {
      for (const c of roundOrder(contenders, r)) {
        for (const [key, rate] of [
          ['low', LOW_RATE],
          ['high', HIGH_RATE],
        ] as const) {
          const records = await openLoopFor(c.client, rate, windowMs);
          failures += records.filter((x) => x.server === undefined).length;
          rec.add(c.name, `${key}.worstPp`, worstDeviation(tally(records.map((x) => x.server)), names));
          rec.add(c.name, `${key}.calls`, records.length);
        }
        const seq = await oneAtATime(c, { ms: windowMs });
        failures += seq.failures;
        rec.add(c.name, 'sequential.worstPp', worstDeviation(seq.byServer, names));
        rec.add(
          c.name,
          'sequential.calls',
          [...seq.byServer.values()].reduce((a, b) => a + b, 0),
        );

        // a client made for this measurement: its first calls, one at a time
        const maker = MAKERS.find(([name]) => name === c.name)?.[1] as Make;
        const cold = maker(c.name, addresses);
        try {
          const first = await oneAtATime(cold, { count: coldCalls });
          failures += first.failures;
          rec.add(c.name, 'cold.worstPp', worstDeviation(first.byServer, names));
          rec.add(c.name, 'cold.idle', names.filter((n) => (first.byServer.get(n) ?? 0) === 0).length);
        } finally {
          await cold.close();
        }
      }
      log(`even-shares: round ${r + 1}/${rounds} done`);
    }
    const metrics: MetricSpec[] = [
      { key: 'low.worstPp', label: `${LOW_RATE}/s worst`, unit: 'pp', digits: 2, better: 'lower' },
      { key: 'high.worstPp', label: `${HIGH_RATE}/s worst`, unit: 'pp', digits: 2, better: 'lower' },
      { key: 'sequential.worstPp', label: 'one at a time worst', unit: 'pp', digits: 2, better: 'lower' },
      { key: 'sequential.calls', label: 'one at a time calls', unit: '', digits: 0 },
      { key: 'cold.worstPp', label: `first ${coldCalls} worst`, unit: 'pp', digits: 2, better: 'lower' },
      { key: 'cold.idle', label: `servers idle in first ${coldCalls}`, unit: '', digits: 0, better: 'lower' },
    ];
    const warmTarget = (key: string, label: string) =>
      target({
        id: `even-shares-${key}`,
        description: `p2c + PeakEWMA worst share deviation from even, ${label}, over ${windowMs} ms`,
        row: PEAK,
        metric: `${key}.worstPp`,
        op: '<=',
        target: TARGET_PP,
        value: rec.spread(PEAK, `${key}.worstPp`).median,
        unit: 'pp',
      });
    return {
      title: 'three identical servers: how even the shares are',
      description:
        `Three echo servers in child processes, each adding ${LATENCY_MS} ms before answering. Four clients ` +
        "measured in alternating rounds: grpc-tower's p2c with PeakEWMA load (the default), with PeakEWMA's " +
        'classic form (the peak decays with the 10 s average; the lower cost always wins) and with ' +
        'pending-requests load, each as static discovery → connect → p2c → createChannel, and a plain grpc-js ' +
        `client with round_robin (the baseline). Each client first warms up for ${warmupMs} ms at ` +
        `${LOW_RATE} calls/s. In each round every client runs ${windowMs} ms windows at ${LOW_RATE} and ` +
        `${HIGH_RATE} calls/s (open loops) and one call at a time, then a client made for the round sends ` +
        `its first ${coldCalls} calls one at a time. Each cell is the worst share deviation of the window: ` +
        'the largest distance, in percentage points, between a server’s share of the calls and an even third.',
      rounds,
      config: {
        latencyMs: LATENCY_MS,
        lowRate: LOW_RATE,
        highRate: HIGH_RATE,
        windowMs,
        warmupMs,
        coldCalls,
      },
      tables: [
        {
          title: 'worst share deviation from an even third',
          metrics,
          rows: contenders.map((c) => ({
            name: c.name,
            ...(c.name === BASE ? { baseline: true } : {}),
            metrics: Object.fromEntries(metrics.map((m) => [m.key, rec.spread(c.name, m.key)])),
          })),
        },
      ],
      targets: [
        warmTarget('low', `${LOW_RATE} calls/s`),
        warmTarget('high', `${HIGH_RATE} calls/s`),
        warmTarget('sequential', 'one call at a time'),
      ],
      notes: failures > 0 ? [`${failures} calls failed during the measurement`] : [],
    };
  } finally {
    await closeAll(contenders);
    await stopServers(servers);
  }
}
