/**
 * scale: what a balancer costs as the set of endpoints grows, with
 * endpoints that only count (no network), so that only grpc-tower's own
 * work is measured.
 *
 * - per call: a whole `balancer.call` (pick + the endpoint's call + the
 *   bookkeeping around it) for p2c + PeakEWMA, p2c + pending requests and
 *   roundRobin at 10, 100, 1,000 and 10,000 ready endpoints, sizes in
 *   alternating order each round;
 * - heap per endpoint: heap growth (after full GCs, in a fresh process)
 *   when N endpoints are inserted into a p2c balancer, per endpoint, the
 *   endpoint objects themselves measured apart;
 * - discovery diff of 10,000 addresses: `diffSnapshots` of a 10,000-address
 *   answer against the next one with 1 % changed, and the same change (and
 *   the first 10,000-address answer) applied through `diff()` → `connect` →
 *   p2c.
 *
 * @module
 */
import { type Balancer, p2c, peakEwma, pendingRequests, roundRobin } from '@grpc-tower/balance';
import { background, type Change } from '@grpc-tower/core';
import { type DiscoveredAddress, connect, diff, diffSnapshots } from '@grpc-tower/discover';
import { Subject } from 'rxjs';
import { CountingEndpoint, syntheticAddress } from '../lib/counting-endpoint.js';
import { measureHeap } from '../lib/heap-probe.js';
import { roundOrder } from '../lib/rounds.js';
import type { ResultRow, ScenarioBody, ScenarioOptions } from '../lib/schema.js';
import { RoundRecorder, spread } from '../lib/stats.js';

const SIZES = [10, 100, 1_000, 10_000] as const;
const ENDPOINT_HEAP = 'endpoint object (bytes per endpoint)';
const BALANCER_HEAP = 'p2c + PeakEWMA balancer (bytes per endpoint)';
const EMPTY_HEAP = 'p2c balancer with no endpoint (bytes, once)';
const DIFF_SIZE = 10_000;

type StringBalancer = Balancer<string, string, string>;
type Kind = {
  readonly name: string;
  readonly make: (d: Subject<Change<string, CountingEndpoint>>) => StringBalancer;
};

const KINDS: readonly Kind[] = [
  { name: 'p2c + PeakEWMA', make: (d) => p2c(d, { target: 'scale', load: peakEwma() }) },
  { name: 'p2c + pending', make: (d) => p2c(d, { target: 'scale', load: pendingRequests() }) },
  { name: 'roundRobin', make: (d) => roundRobin(d, { target: 'scale' }) },
];

function balancerWith(kind: Kind, n: number): { balancer: StringBalancer; endpoints: CountingEndpoint[] } {
  const changes = new Subject<Change<string, CountingEndpoint>>();
  const balancer = kind.make(changes);
  const endpoints: CountingEndpoint[] = [];
  for (let i = 0; i < n; i++) {
    const ep = new CountingEndpoint(syntheticAddress(i));
    endpoints.push(ep);
    changes.next({ type: 'insert', key: ep.address, endpoint: ep });
  }
  return { balancer, endpoints };
}

/** ns per call for `calls` calls, in batches of 1,000 calls in flight. */
async function timeCalls(balancer: StringBalancer, calls: number): Promise<number> {
  const batch = 1_000;
  const t = performance.now();
  for (let done = 0; done < calls; done += batch) {
    const ps: Promise<string>[] = [];
    for (let i = 0; i < batch; i++) ps.push(balancer.call('x', background));
    await Promise.all(ps);
  }
  return ((performance.now() - t) * 1e6) / calls;
}

const entry = (i: number, weight = 1): DiscoveredAddress => ({
  address: syntheticAddress(i),
  weight,
  metadata: { zone: `z${i % 3}` },
});

/** A 10,000-address answer, and the next one with 1 % changed: 50 gone, 50 new, 50 re-weighted. */
function snapshots(): { prev: Map<string, DiscoveredAddress>; next: Map<string, DiscoveredAddress> } {
  const changed = DIFF_SIZE / 100;
  const prev = new Map<string, DiscoveredAddress>();
  for (let i = 0; i < DIFF_SIZE; i++) prev.set(syntheticAddress(i), entry(i));
  const next = new Map<string, DiscoveredAddress>();
  for (let i = changed / 2; i < DIFF_SIZE; i++) next.set(syntheticAddress(i), entry(i, i < changed ? 2 : 1));
  for (let i = DIFF_SIZE; i < DIFF_SIZE + changed / 2; i++) next.set(syntheticAddress(i), entry(i));
  return { prev, next };
}

/**
 * Runs the scale scenario.
 *
 * @example
 * ```ts
 * const body = await scale({ quick: true, log: console.error });
 * ```
 */
export async function scale({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  const rounds = quick ? 2 : 5;
  const callsPerRound = quick ? 30_000 : 200_000;
  const heapRuns = quick ? 2 : 3;
  const diffRuns = quick ? 7 : 21;
  const pipelineRuns = quick ? 2 : 5;
  const rec = new RoundRecorder();

  // per call
  const built = new Map<string, StringBalancer>();
  try {
    for (const kind of KINDS) {
      for (const n of SIZES) {
        const { balancer } = balancerWith(kind, n);
        built.set(`${kind.name}@${n}`, balancer);
        await timeCalls(balancer, 20_000); // warm-up
      }
    }
    for (let r = 0; r < rounds; r++) {
      for (const kind of roundOrder(KINDS, r)) {
        for (const n of roundOrder(SIZES, r)) {
          const balancer = built.get(`${kind.name}@${n}`) as StringBalancer;
          rec.add(kind.name, `n${n}`, await timeCalls(balancer, callsPerRound));
        }
      }
      log(`scale: calls round ${r + 1}/${rounds} done`);
    }
  } finally {
    await Promise.allSettled([...built.values()].map((b) => b.close()));
    built.clear();
  }

  // heap per endpoint, each run in a fresh process
  for (let run = 0; run < heapRuns; run++) {
    const bySize = await measureHeap(SIZES);
    for (const n of SIZES) {
      const h = bySize.get(n);
      if (h === undefined) throw new Error(`scale: the heap probe did not measure ${n} endpoints`);
      rec.add(ENDPOINT_HEAP, `n${n}`, h.endpoint);
      rec.add(BALANCER_HEAP, `n${n}`, h.balancer);
      rec.add(EMPTY_HEAP, `n${n}`, h.empty);
    }
    log(`scale: heap run ${run + 1}/${heapRuns} done`);
  }

  // discovery diff of 10,000 addresses
  const { prev, next } = snapshots();
  const expectedChanges = (3 * DIFF_SIZE) / 200;
  const diffMs: number[] = [];
  for (let i = 0; i < diffRuns + 3; i++) {
    const t = performance.now();
    const changes = diffSnapshots(prev, next);
    const ms = performance.now() - t;
    if (changes.length !== expectedChanges) {
      throw new Error(`scale: diffSnapshots gave ${changes.length} changes, expected ${expectedChanges}`);
    }
    if (i >= 3) diffMs.push(ms); // the first runs warm the JIT up
  }
  const firstMs: number[] = [];
  const nextMs: number[] = [];
  for (let run = 0; run < pipelineRuns; run++) {
    const answers = new Subject<ReadonlyMap<string, DiscoveredAddress>>();
    const endpoints = connect(
      answers.pipe(diff<string, DiscoveredAddress>()),
      (a) => new CountingEndpoint(a.address),
    );
    const balancer = p2c(endpoints, { target: 'scale' });
    try {
      let t = performance.now();
      answers.next(prev);
      firstMs.push(performance.now() - t);
      t = performance.now();
      answers.next(next);
      nextMs.push(performance.now() - t);
      const ready = balancer.stats().counts.ready;
      if (ready !== DIFF_SIZE)
        throw new Error(`scale: ${ready} endpoints ready after the diff, expected ${DIFF_SIZE}`);
    } finally {
      await balancer.close();
    }
  }
  log('scale: diff done');

  const sizeMetrics = SIZES.map((n) => ({
    key: `n${n}`,
    label: n.toLocaleString('en-US'),
    unit: '',
    digits: 0,
    better: 'lower' as const,
  }));
  const rowFor = (name: string): ResultRow => ({
    name,
    metrics: Object.fromEntries(SIZES.map((n) => [`n${n}`, rec.spread(name, `n${n}`)])),
  });
  return {
    title: 'cost per call and per endpoint from 10 to 10,000 endpoints',
    description:
      'Endpoints that answer at once and only count calls (no network), so that only the balancer is ' +
      "measured. Per call: a whole balancer.call (pick, the endpoint's call, the bookkeeping around it), " +
      `${callsPerRound.toLocaleString('en-US')} calls per round in batches of 1,000 in flight, sizes and ` +
      'balancers in alternating order. Heap, in a fresh process per run: growth of the used heap (after full ' +
      'garbage collections) when N endpoints are made (the endpoint objects), when an empty p2c balancer is ' +
      'made, and when the endpoints are inserted into it (what the balancer keeps per endpoint). ' +
      `Discovery: a ${DIFF_SIZE.toLocaleString('en-US')}-address answer ` +
      'against the next one with 1 % changed (50 gone, 50 new, 50 re-weighted), diffed alone and applied ' +
      'through diff() → connect → p2c.',
    rounds,
    config: { callsPerRound, batch: 1_000, heapRuns, diffRuns, pipelineRuns, diffSize: DIFF_SIZE },
    tables: [
      {
        title: 'ns per call by number of ready endpoints',
        metrics: sizeMetrics,
        rows: KINDS.map((k) => rowFor(k.name)),
      },
      {
        title: 'heap by number of endpoints',
        metrics: sizeMetrics,
        rows: [rowFor(ENDPOINT_HEAP), rowFor(BALANCER_HEAP), rowFor(EMPTY_HEAP)],
      },
      {
        title: `discovery: ${DIFF_SIZE.toLocaleString('en-US')} addresses`,
        metrics: [{ key: 'ms', label: 'time', unit: 'ms', digits: 2, better: 'lower' }],
        rows: [
          { name: 'diffSnapshots, 1 % changed', metrics: { ms: spread(diffMs) } },
          { name: 'diff → connect → p2c, 1 % changed', metrics: { ms: spread(nextMs) } },
          { name: 'diff → connect → p2c, first answer (10,000 inserts)', metrics: { ms: spread(firstMs) } },
        ],
      },
    ],
    targets: [],
    notes: [
      'No target is set for this scenario.',
      'Heap per endpoint at 10 endpoints is the least precise: a few hundred bytes of noise over 10 objects.',
    ],
  };
}
