// Time to diff a 10,000-address snapshot against the next one with 1 % of
// the addresses changed (50 servers replaced by 50 others, 50 re-weighted),
// with `diffSnapshots` (two hash-map passes) and, in the same run, with a
// naive baseline that compares the two answers as arrays (a linear search
// per address, as a first implementation often does). Prints the median of
// several runs of each and their ratio, and saves them to
// bench/results/diff.json.
//
//   npx tsx packages/discover/bench/diff.bench.ts [--quick]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { diffSnapshots } from '../src/diff.js';

interface Entry {
  readonly address: string;
  readonly weight?: number;
  readonly metadata?: Readonly<Record<string, unknown>>;
}
type Change = { type: 'insert'; key: string; endpoint: Entry } | { type: 'remove'; key: string };

const quick = process.argv.includes('--quick');
const SIZE = 10_000;
const CHANGED = SIZE / 100;
const runs = quick ? 7 : 31;
const naiveRuns = quick ? 3 : 7;

const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:50051`;
const entry = (i: number, weight = 1): Entry => ({ address: ip(i), weight, metadata: { zone: `z${i % 3}` } });

// prev: addresses 0..9999. next: 50 removed (0..49), 50 added (10000..10049),
// 50 re-weighted (50..99): 1 % of the set is different in some way.
const prevList: Entry[] = Array.from({ length: SIZE }, (_, i) => entry(i));
const nextList: Entry[] = [
  ...Array.from({ length: CHANGED / 2 }, (_, i) => entry(50 + i, 2)),
  ...Array.from({ length: SIZE - CHANGED }, (_, i) => entry(CHANGED + i)),
  ...Array.from({ length: CHANGED / 2 }, (_, i) => entry(SIZE + i)),
];
// Fresh objects for each answer, as a registry answer would be.
const toMap = (list: readonly Entry[]) =>
  new Map(list.map((e) => [e.address, { ...e, metadata: { ...e.metadata } }] as const));

const sameEntry = (a: Entry, b: Entry) =>
  a.address === b.address &&
  a.weight === b.weight &&
  JSON.stringify(a.metadata) === JSON.stringify(b.metadata);

function naiveDiff(prev: readonly Entry[], next: readonly Entry[]): Change[] {
  const out: Change[] = [];
  for (const n of next) {
    const p = prev.find((x) => x.address === n.address);
    if (p === undefined || !sameEntry(p, n)) out.push({ type: 'insert', key: n.address, endpoint: n });
  }
  for (const p of prev) {
    if (!next.some((x) => x.address === p.address)) out.push({ type: 'remove', key: p.address });
  }
  return out;
}

function time(fn: () => number): { ms: number; changes: number } {
  const start = process.hrtime.bigint();
  const changes = fn();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, changes };
}
const median = (xs: readonly number[]) =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

const prevMap = toMap(prevList);
const nextMap = toMap(nextList);
const expected = CHANGED; // 50 inserts (added) + 50 inserts (re-weighted) + 50 removes = 150
const check = (n: number, what: string) => {
  if (n !== expected + CHANGED / 2)
    throw new Error(`${what} produced ${n} changes, expected ${expected + CHANGED / 2}`);
};

// warm-up (JIT)
for (let i = 0; i < 5; i++) check(diffSnapshots(prevMap, nextMap).length, 'diffSnapshots');
check(naiveDiff(prevList, nextList).length, 'naive');

const fast: number[] = [];
const withMaps: number[] = [];
const naive: number[] = [];
for (let r = 0; r < runs; r++) {
  const a = time(() => diffSnapshots(prevMap, nextMap).length);
  check(a.changes, 'diffSnapshots');
  fast.push(a.ms);
  // the same, including building both maps from the answers' arrays
  const b = time(() => diffSnapshots(toMap(prevList), toMap(nextList)).length);
  check(b.changes, 'diffSnapshots+maps');
  withMaps.push(b.ms);
  if (r < naiveRuns) {
    const c = time(() => naiveDiff(prevList, nextList).length);
    check(c.changes, 'naive');
    naive.push(c.ms);
  }
}

const result = {
  date: new Date().toISOString(),
  node: process.version,
  size: SIZE,
  changed: CHANGED,
  runs,
  diffMedianMs: Number(median(fast).toFixed(3)),
  diffWithMapBuildMedianMs: Number(median(withMaps).toFixed(3)),
  naiveMedianMs: Number(median(naive).toFixed(3)),
  speedup: Number((median(naive) / median(fast)).toFixed(1)),
  targetMs: 20,
};
console.log(`diff of ${SIZE} addresses, ${CHANGED} (1 %) changed -> ${expected + CHANGED / 2} changes`);
console.log(`  diffSnapshots:               median ${result.diffMedianMs} ms over ${runs} runs`);
console.log(`  diffSnapshots + build maps:  median ${result.diffWithMapBuildMedianMs} ms`);
console.log(`  naive array baseline:        median ${result.naiveMedianMs} ms over ${naive.length} runs`);
console.log(`  naive / diffSnapshots:       ${result.speedup}x`);
console.log(`  target < ${result.targetMs} ms: ${result.diffMedianMs < result.targetMs ? 'met' : 'NOT met'}`);

const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'diff.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
console.log(`  saved to ${out}`);
