/**
 * Heap figures for leak checks. `collect()` runs a full garbage collection
 * when one can be had: `global.gc` when Node runs with `--expose-gc`, else a
 * `gc` function obtained by turning the V8 flag on at run time (which V8
 * allows for a context created afterwards). Without either, figures are
 * taken as they are and say so.
 *
 * @module
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = () => void;

let gcFn: Gc | undefined;

/** A full-GC function, or `undefined` when none can be had. */
export function gcFunction(): Gc | undefined {
  if (gcFn !== undefined) return gcFn;
  const global = (globalThis as { gc?: Gc }).gc;
  if (typeof global === 'function') {
    gcFn = global;
    return gcFn;
  }
  try {
    setFlagsFromString('--expose-gc');
    const fn: unknown = runInNewContext('gc');
    if (typeof fn === 'function') gcFn = fn as Gc;
  } catch {
    gcFn = undefined;
  }
  return gcFn;
}

/**
 * Collects garbage (several passes, with turns of the event loop between
 * them so finalizers and closed handles are released) and returns the heap
 * in use, in bytes.
 *
 * @example
 * ```ts
 * const before = await collect();
 * ```
 */
export async function collect(): Promise<number> {
  const gc = gcFunction();
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

/** Bytes as MiB with one decimal. */
export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
