// The soak: a long run of calls through the full stack (discovery →
// health → outlier detection → p2c → retry with a budget → timeout →
// channel) against three echo servers in child processes, while random
// faults hit one server at a time: a crash (SIGKILL) and restart, a freeze
// (SIGSTOP/SIGCONT), a graceful stop (GOAWAY) and restart, a slow spell.
// Every call goes through the ledger (settles once, within its deadline
// plus a slack, OK answers name a server). The heap is measured after a
// full GC every --report-every calls and printed.
//
//   npx tsx --conditions=@grpc-tower/source reliability/soak/soak.ts [--calls 1000000]
//       [--concurrency 32] [--report-every 50000] [--seed 1]
//
// Exact heap figures want a full GC: run node with --expose-gc,
//   node --expose-gc --import tsx --conditions=@grpc-tower/source reliability/soak/soak.ts
// Without it the script turns the flag on at run time and says so.
//
// Exits non-zero when the ledger found a problem, or when the heap after the
// run is more than 10 % above the heap after the warm-up (the first tenth of
// the calls, at least one report interval).
import { parseArgs } from 'node:util';
import { Ledger } from '../src/ledger.js';
import { Fleet, Registry } from '../src/support/fleet.js';
import { collect, gcFunction, mib } from '../src/support/heap.js';
import { startLoad } from '../src/support/load.js';
import { fullStack } from '../src/support/stack.js';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '1000000' },
    concurrency: { type: 'string', default: '32' },
    'report-every': { type: 'string', default: '50000' },
    seed: { type: 'string', default: '1' },
  },
});

const positive = (name: string, text: string | undefined): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a positive integer, got ${String(text)}`);
    process.exit(2);
  }
  return n;
};
const CALLS = positive('calls', values.calls);
const CONCURRENCY = positive('concurrency', values.concurrency);
const EVERY = Math.min(CALLS, positive('report-every', values['report-every']));
const WARM_UP = Math.max(EVERY, Math.ceil(CALLS / 10 / EVERY) * EVERY);

// a small seeded generator (mulberry32), so a run's faults can be replayed
let seed = positive('seed', values.seed) >>> 0;
const random = (): number => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const between = (lo: number, hi: number): number => Math.round(lo + random() * (hi - lo));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const t0 = performance.now();
const clock = (): string => `${((performance.now() - t0) / 1000).toFixed(1).padStart(7)} s`;
const log = (text: string): void => console.log(`[${clock()}] ${text}`);

async function main(): Promise<number> {
  const gcKind = (globalThis as { gc?: unknown }).gc !== undefined ? '--expose-gc' : 'enabled at run time';
  if (gcFunction() === undefined) log('warning: no GC function; heap figures are taken without a full GC');
  log(
    `soak: ${CALLS} calls, ${CONCURRENCY} in flight, heap every ${EVERY} calls, warm-up ${WARM_UP}, GC ${gcKind}`,
  );

  const fleet = await Fleet.start(3);
  const registry = new Registry(fleet.addresses());
  const ledger = new Ledger();
  const stack = fullStack({
    source: registry.source(250),
    ledger,
    retry: { perAttemptTimeoutMs: 1_000 },
    outlier: { baseEjectionTimeMs: 1_000 },
  });
  while (stack.balancer.counts().ready < 3) await sleep(20);
  log(`servers: ${fleet.addresses().join(', ')}`);

  const faults: Record<string, number> = {};
  let faulting = true;
  const faultLoop = (async () => {
    while (faulting) {
      await sleep(between(1_000, 3_000));
      if (!faulting) break;
      const name = `s${between(0, 2)}`;
      const kind = (['kill', 'pause', 'stop', 'slow'] as const)[between(0, 3)]!;
      faults[kind] = (faults[kind] ?? 0) + 1;
      try {
        if (kind === 'kill') {
          await fleet.kill(name);
          await sleep(between(300, 1_500));
          await fleet.restart(name);
        } else if (kind === 'stop') {
          await fleet.stop(name, 2_000);
          await sleep(between(300, 1_500));
          await fleet.restart(name);
        } else if (kind === 'pause') {
          fleet.server(name).pause();
          await sleep(between(300, 1_500));
          fleet.server(name).resume();
        } else {
          await fleet.server(name).setLatency(between(20, 200));
          await sleep(between(1_000, 3_000));
          await fleet.server(name).setLatency(0);
        }
      } catch (err) {
        log(`fault ${kind} on ${name} could not be applied: ${String(err)}`);
        await fleet.restart(name).catch(() => undefined);
      }
    }
  })();

  const load = startLoad(ledger, stack.client, {
    concurrency: CONCURRENCY,
    deadlineMs: 5_000,
    streamEvery: 10,
    streamCount: 5,
    streamDelayMs: 1,
    maxCalls: CALLS,
  });
  const samples: { calls: number; heap: number }[] = [];
  let lastAt = performance.now();
  let lastCalls = 0;
  while (load.finished < CALLS) {
    await load.more(Math.min(EVERY, CALLS - load.finished));
    const heap = await collect();
    samples.push({ calls: load.finished, heap });
    const now = performance.now();
    const rate = ((load.finished - lastCalls) * 1000) / (now - lastAt);
    lastAt = now;
    lastCalls = load.finished;
    const r = ledger.report();
    log(
      `${String(load.finished).padStart(8)} calls  heap ${mib(heap).padStart(9)}  rss ${mib(process.memoryUsage().rss).padStart(9)}` +
        `  ${Math.round(rate)} calls/s  ${JSON.stringify(r.byStatus)}`,
    );
  }
  await load.stop();
  faulting = false;
  await faultLoop;
  for (const m of fleet.members) if (m.server === undefined) await fleet.restart(m.name);

  const report = await ledger.report({
    allowed: ['OK', 'UNAVAILABLE', 'DEADLINE_EXCEEDED'],
    servers: fleet.names(),
  });
  await stack.close();
  await fleet.close();
  const end = await collect();

  const afterWarmUp = samples.filter((s) => s.calls >= WARM_UP);
  const base = afterWarmUp[0] ?? samples[samples.length - 1];
  const last = samples[samples.length - 1];
  if (base === undefined || last === undefined) throw new Error('no heap sample taken');
  const max = afterWarmUp.reduce((m, s) => Math.max(m, s.heap), 0);
  const growth = (last.heap - base.heap) / base.heap;
  const seconds = (performance.now() - t0) / 1000;
  console.log('');
  console.log(
    `calls            ${report.total} in ${seconds.toFixed(0)} s (${Math.round(report.total / seconds)} calls/s)`,
  );
  console.log(`by status        ${JSON.stringify(report.byStatus)}`);
  console.log(`by server        ${JSON.stringify(report.byServer)}`);
  console.log(`by kind          ${JSON.stringify(report.byLabel)}`);
  console.log(`faults           ${JSON.stringify(faults)}`);
  console.log(`retries          ${JSON.stringify(stack.retries.stats())}`);
  console.log(`slowest settle   ${report.maxSettleMs} ms`);
  console.log(`heap first       ${mib(samples[0]?.heap ?? 0)} at ${samples[0]?.calls} calls (warm-up)`);
  console.log(`heap baseline    ${mib(base.heap)} at ${base.calls} calls`);
  console.log(
    `heap last        ${mib(last.heap)} at ${last.calls} calls (${(growth * 100).toFixed(1)} % vs baseline)`,
  );
  console.log(`heap max         ${mib(max)} after warm-up`);
  console.log(`heap after close ${mib(end)}`);
  console.log(
    `ledger problems  ${report.problemCount}${report.problemCount > 0 ? `:\n  ${report.problems.join('\n  ')}` : ''}`,
  );
  let failed = false;
  if (report.problemCount > 0) failed = true;
  if (growth > 0.1) {
    console.log(`FAIL: the heap grew ${(growth * 100).toFixed(1)} % after warm-up (limit 10 %)`);
    failed = true;
  }
  console.log(failed ? 'soak FAILED' : 'soak passed');
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
