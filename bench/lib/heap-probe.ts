/**
 * Heap per endpoint, measured in a fresh process (started by
 * {@link measureHeap} with `--expose-gc`), so that no garbage of earlier
 * work blurs the numbers. The process runs without JIT and without
 * bytecode flushing (`--jitless --no-flush-bytecode`): compiled code
 * appearing, or bytecode being dropped, during a step would otherwise
 * count as that step's heap (object sizes are the same either way). For each size N, in increasing order: the used
 * heap after full garbage collections, then after making N counting
 * endpoints, then after making an empty p2c (PeakEWMA) balancer, then after
 * inserting the endpoints into it.
 * Everything made stays referenced until the end, so each difference is
 * exactly what the step keeps alive. Prints one JSON line:
 * `{ "sizes": { "<N>": { "endpoint": bytes, "balancer": bytes, "empty": bytes } } }`.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { p2c, peakEwma } from '@grpc-tower/balance';
import type { Change } from '@grpc-tower/discover';
import { Subject } from 'rxjs';
import { CountingEndpoint, syntheticAddress } from './counting-endpoint.js';

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

const REPO = fileURLToPath(new URL('../..', import.meta.url));
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
export function measureHeap(sizes: readonly number[]): Promise<Map<number, HeapPerEndpoint>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        '--jitless',
        '--no-flush-bytecode',
        '--conditions=@grpc-tower/source',
        '--import',
        'tsx',
        SELF,
        ...sizes.map(String),
      ],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      err = (err + c).slice(-4096);
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`heap probe exited with ${code}: ${err.trim()}`));
        return;
      }
      try {
        const parsed = JSON.parse(out.trim()) as { sizes: Record<string, HeapPerEndpoint> };
        resolve(new Map(Object.entries(parsed.sizes).map(([n, v]) => [Number(n), v])));
      } catch (e) {
        reject(new Error(`heap probe printed no result: ${out.slice(0, 200)} ${err.trim()}`, { cause: e }));
      }
    });
  });
}

async function probe(sizes: readonly number[]): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  const used = (): number => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
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
  process.stdout.write(`${JSON.stringify({ sizes: sizesOut, kept: keep.length })}\n`);
}

if (process.argv[1] === SELF) {
  probe(process.argv.slice(2).map(Number)).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
