// The cost of a pick at 10, 100, 1,000 and 10,000 ready endpoints.
//
// - "pick": the picker alone over the ready set (what the balancer does per
//   call to choose an endpoint), for p2c with PeakEWMA, p2c with pending
//   requests, p2c with one address to avoid, and round robin;
// - "call": a whole `balancer.call` over counting endpoints that answer at
//   once (pick + endpoint call + the promise that records the round-trip
//   time), to show the per-call overhead of the balancer around the pick.
//
// Sizes are measured in alternating rounds and the median round is
// reported. Target: flat across sizes, under 2 µs per pick.
//
//   npx tsx --conditions=@grpc-tower/source packages/balance/bench/pick.bench.ts [--quick]
import { mkdirSync, writeFileSync } from 'node:fs';
import { background, type Change } from '@grpc-tower/core';
import { Subject } from 'rxjs';
import type { EndpointLoad, LoadMetric } from '../src/load/metric.js';
import { peakEwma } from '../src/load/peak-ewma.js';
import { pendingRequests } from '../src/load/pending.js';
import { p2c } from '../src/p2c.js';
import { p2cPicker } from '../src/pick/p2c.js';
import type { Candidate } from '../src/pick/picker.js';
import { roundRobinPicker } from '../src/pick/round-robin.js';
import { ReadySet } from '../src/ready-set.js';
import { CountingEndpoint } from '../src/test/counting-endpoint.js';

const quick = process.argv.includes('--quick');
const sizes = [10, 100, 1_000, 10_000];
const rounds = quick ? 3 : 7;
const picksPerRound = quick ? 200_000 : 1_000_000;
const callsPerRound = quick ? 50_000 : 200_000;

class Member implements Candidate {
  readyIndex = -1;
  pending: number;
  readonly load: EndpointLoad;
  constructor(
    readonly address: string,
    metric: LoadMetric,
  ) {
    this.pending = Math.floor(Math.random() * 8);
    this.load = metric.create(this, performance.now());
    this.load.observe(1 + Math.random() * 10, performance.now(), false);
  }
}

function readySet(n: number, metric: LoadMetric): ReadySet<Member> {
  const set = new ReadySet<Member>();
  for (let i = 0; i < n; i++)
    set.add(new Member(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:50051`, metric));
  return set;
}

type PickCase = { name: string; run: (set: ReadySet<Member>, n: number) => number };

let sink = 0;
const pickCases: PickCase[] = [
  {
    name: 'p2c peak-ewma',
    run: (set, n) => {
      const picker = p2cPicker<Member>(Math.random, () => performance.now());
      const t = performance.now();
      for (let i = 0; i < n; i++) sink += picker.pick(set, undefined)?.readyIndex ?? 0;
      return performance.now() - t;
    },
  },
  {
    name: 'p2c pending',
    run: (set, n) => {
      const picker = p2cPicker<Member>(Math.random, () => 0);
      const t = performance.now();
      for (let i = 0; i < n; i++) sink += picker.pick(set, undefined)?.readyIndex ?? 0;
      return performance.now() - t;
    },
  },
  {
    name: 'p2c avoid 1',
    run: (set, n) => {
      const picker = p2cPicker<Member>(Math.random, () => performance.now());
      const avoid = new Set([set.at(0).address]);
      const t = performance.now();
      for (let i = 0; i < n; i++) sink += picker.pick(set, avoid)?.readyIndex ?? 0;
      return performance.now() - t;
    },
  },
  {
    name: 'round robin',
    run: (set, n) => {
      const picker = roundRobinPicker<Member>();
      const t = performance.now();
      for (let i = 0; i < n; i++) sink += picker.pick(set, undefined)?.readyIndex ?? 0;
      return performance.now() - t;
    },
  },
];

const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

// ready sets per size, built once (PeakEWMA state is read-only during picks)
const sets = new Map(
  sizes.map((n) => [n, { peak: readySet(n, peakEwma()), pending: readySet(n, pendingRequests()) }]),
);

// warm-up: let the JIT settle every path
for (const c of pickCases) for (const n of sizes) c.run(sets.get(n)?.peak as ReadySet<Member>, 100_000);

const pickNs = new Map<string, number[]>();
for (let r = 0; r < rounds; r++) {
  for (const c of pickCases) {
    for (const n of r % 2 === 0 ? sizes : [...sizes].reverse()) {
      const s = sets.get(n);
      const set = (c.name === 'p2c pending' ? s?.pending : s?.peak) as ReadySet<Member>;
      const ms = c.run(set, picksPerRound);
      const key = `${c.name}@${n}`;
      pickNs.set(key, [...(pickNs.get(key) ?? []), (ms * 1e6) / picksPerRound]);
    }
  }
}

// whole calls through the balancer
async function callRound(n: number, calls: number): Promise<number> {
  const changes = new Subject<Change<string, CountingEndpoint>>();
  const balancer = p2c(changes, { load: peakEwma() });
  for (let i = 0; i < n; i++) {
    const ep = new CountingEndpoint(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:50051`);
    changes.next({ type: 'insert', key: ep.address, endpoint: ep });
  }
  const batch = 1000;
  const t = performance.now();
  for (let done = 0; done < calls; done += batch) {
    const ps: Promise<string>[] = [];
    for (let i = 0; i < batch; i++) ps.push(balancer.call('x', background));
    await Promise.all(ps);
  }
  const ms = performance.now() - t;
  await balancer.close();
  return (ms * 1e6) / calls;
}

for (const n of sizes) await callRound(n, 20_000);
const callNs = new Map<number, number[]>();
for (let r = 0; r < Math.max(3, Math.floor(rounds / 2)); r++) {
  for (const n of r % 2 === 0 ? sizes : [...sizes].reverse()) {
    callNs.set(n, [...(callNs.get(n) ?? []), await callRound(n, callsPerRound)]);
  }
}

const fmt = (ns: number): string => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);
const rows: Record<string, Record<string, string>> = {};
const results: Record<string, Record<string, number>> = {};
for (const c of pickCases) {
  rows[`pick: ${c.name}`] = {};
  results[`pick: ${c.name}`] = {};
  for (const n of sizes) {
    const v = median(pickNs.get(`${c.name}@${n}`) ?? []);
    (rows[`pick: ${c.name}`] as Record<string, string>)[String(n)] = fmt(v);
    (results[`pick: ${c.name}`] as Record<string, number>)[String(n)] = v;
  }
}
rows['call: p2c peak-ewma'] = {};
results['call: p2c peak-ewma'] = {};
for (const n of sizes) {
  const v = median(callNs.get(n) ?? []);
  (rows['call: p2c peak-ewma'] as Record<string, string>)[String(n)] = fmt(v);
  (results['call: p2c peak-ewma'] as Record<string, number>)[String(n)] = v;
}

console.log(
  `\nPick cost per call by number of ready endpoints (median of ${rounds} rounds; node ${process.version})\n`,
);
console.table(rows);
const worst = Math.max(
  ...pickCases.flatMap((c) => sizes.map((n) => median(pickNs.get(`${c.name}@${n}`) ?? []))),
);
console.log(`worst pick: ${fmt(worst)} (target < 2 µs, flat across sizes)`);
if (sink === 42) console.log('');

const dir = new URL('./results/', import.meta.url);
mkdirSync(dir, { recursive: true });
writeFileSync(
  new URL('pick.json', dir),
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, quick, unit: 'ns', results }, null, 2)}\n`,
);
