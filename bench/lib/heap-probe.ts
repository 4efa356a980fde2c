/**
 * Heap per endpoint, measured in a fresh process (started by
 * {@link measureHeap} through `runProbe`, with `--expose-gc` and without
 * JIT), so that no garbage of earlier work blurs the numbers. For each size
 * N, in increasing order: the used heap after full garbage collections,
 * then after making N counting endpoints, then after making an empty p2c
 * (PeakEWMA) balancer, then after inserting the endpoints into it.
 * Everything made stays referenced until the end, so each difference is
 * exactly what the step keeps alive. Prints one JSON line:
 * `{ "sizes": { "<N>": { "endpoint": bytes, "balancer": bytes, "empty": bytes } } }`.
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import { p2c, peakEwma } from '@grpc-tower/balance';
import type { Change } from '@grpc-tower/core';
import { Subject } from 'rxjs';
import { CountingEndpoint, syntheticAddress } from './counting-endpoint.js';
import { runProbe, runProbeMain, settledHeap } from './fresh-process.js';

/**
 * Bytes per endpoint at one size: of the endpoint objects, and of what a
 * p2c balancer keeps for each.
 *
 * @example
 * ```ts
 * const h: HeapPerEndpoint = { endpoint: 400, balancer: 900, empty: 20_000 };
 * ```
 */
export interface HeapPerEndpoint {
  readonly endpoint: number;
  readonly balancer: number;
  /** Bytes of the balancer before any endpoint was inserted (not per endpoint). */
  readonly empty: number;
}

const SELF = fileURLToPath(import.meta.url);

/**
 * Runs this file in a child process for `sizes` and returns its measurements.
 *
 * @example
 * ```ts
 * const bySize = await measureHeap([10, 100]);
 * bySize.get(100)?.balancer; // bytes per endpoint
 * ```
 */
export async function measureHeap(sizes: readonly number[]): Promise<Map<number, HeapPerEndpoint>> {
  const parsed = await runProbe<{ sizes: Record<string, HeapPerEndpoint> }>(
    SELF,
    sizes.map(String),
    'heap probe',
  );
  return new Map(Object.entries(parsed.sizes).map(([n, v]) => [Number(n), v]));
}

async function probe(sizes: readonly number[]): Promise<object> {
  const used = settledHeap;
  const keep: unknown[] = [];
  const sizesOut: Record<string, HeapPerEndpoint> = {};
  let next = 0;
  // a first pass that is thrown away: code compiled and structures set up on
  // first use would otherwise be counted against the smallest size
  const warm = new Subject<Change<string, CountingEndpoint>>();
  const warmBalancer = p2c(warm, { target: 'warm-up', load: peakEwma() });
  for (let i = 0; i < 2_000; i++) {
    const ep = new CountingEndpoint(syntheticAddress(1_000_000 + i));
    warm.next({ type: 'insert', key: ep.address, endpoint: ep });
  }
  await warmBalancer.close();
  // let whatever the close left for later (timers, microtasks) run and be collected
  await new Promise((resolve) => setTimeout(resolve, 100));
  // the first size is measured twice and its first result dropped: the first
  // measurement still sees the warm-up's last objects go
  const steps = sizes.length > 0 ? [sizes[0] as number, ...sizes] : [];
  for (const [step, n] of steps.entries()) {
    const h0 = used();
    const endpoints: CountingEndpoint[] = [];
    for (let i = 0; i < n; i++) endpoints.push(new CountingEndpoint(syntheticAddress(next++)));
    keep.push(endpoints);
    const h1 = used();
    const changes = new Subject<Change<string, CountingEndpoint>>();
    const balancer = p2c(changes, { target: 'heap', load: peakEwma() });
    keep.push(changes, balancer);
    const h2 = used();
    for (const ep of endpoints) changes.next({ type: 'insert', key: ep.address, endpoint: ep });
    const h3 = used();
    if (balancer.stats().counts.ready !== n) throw new Error(`${n} endpoints inserted, not all ready`);
    if (step > 0) sizesOut[String(n)] = { endpoint: (h1 - h0) / n, balancer: (h3 - h2) / n, empty: h2 - h1 };
  }
  return { sizes: sizesOut, kept: keep.length };
}

runProbeMain(SELF, (args) => probe(args.map(Number)));
