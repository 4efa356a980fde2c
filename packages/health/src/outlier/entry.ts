/**
 * What an outlier detector keeps of one address (gRPC A50's map entry): its
 * call counts, its ejection and multiplier, its typical latency, the
 * wrappers that share it; and the snapshot of it in the detector's stats.
 *
 * @module
 */
import type { OutlierEndpoint } from './endpoint.js';

/**
 * One address in {@link OutlierStats}.
 *
 * @example
 * ```ts
 * for (const e of detector.stats().endpoints) if (e.ejected) console.log(e.address, e.multiplier);
 * ```
 */
export interface OutlierEndpointStats {
  readonly address: string;
  /** Whether it is ejected now. */
  readonly ejected: boolean;
  /** The ejection multiplier (times ejected, decayed by healthy intervals). */
  readonly multiplier: number;
  /** Ejections since it was first wrapped. */
  readonly ejections: number;
  /** Failed calls in a row so far. */
  readonly consecutiveFailures: number;
  /** Successful calls in the current interval. */
  readonly successes: number;
  /** Failed calls in the current interval. */
  readonly failures: number;
  /** Its typical latency (moving average of its successful calls) in ms; `undefined` before one succeeded. */
  readonly typicalLatencyMs: number | undefined;
}

/** The calls of one counting interval. */
export interface Bucket {
  successes: number;
  failures: number;
}

/**
 * The state of one address (A50's map entry).
 *
 * @internal
 */
export class Entry {
  readonly wrappers = new Set<OutlierEndpoint<unknown, unknown>>();
  consecutive = 0;
  lastFailure = '';
  active: Bucket = { successes: 0, failures: 0 };
  inactive: Bucket = { successes: 0, failures: 0 };
  ejectedAt: number | undefined;
  /** Why it was last ejected, such as `5 consecutive failures, the last UNAVAILABLE: …`. */
  reason = '';
  durationMs = 0;
  multiplier = 0;
  ejections = 0;
  /** Moving average of its successful calls' durations, in ms. */
  latencyMs: number | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly address: string) {}

  get ejected(): boolean {
    return this.ejectedAt !== undefined;
  }
}
