/**
 * The snapshot shapes of `balancer.stats()` and `stats$`: the aggregate
 * readiness and counts, the calls waiting, and one row per endpoint with
 * its role, load and pick counters.
 *
 * @module
 */
import type { Readiness } from '@grpc-tower/core';
import type { EndpointRole } from './endpoint-set.js';
import type { EndpointCounts } from './errors.js';

/**
 * One endpoint in {@link BalancerStats}.
 *
 * @example
 * ```ts
 * for (const e of balancer.stats().endpoints) console.log(e.address, e.state, e.pending, e.ewmaMs);
 * ```
 */
export interface EndpointStats<K> {
  readonly key: K;
  readonly address: string;
  /** The endpoint's readiness. */
  readonly state: Readiness;
  readonly role: EndpointRole;
  /** Its calls in flight (`endpoint.pending`). */
  readonly pending: number;
  /** The PeakEWMA round-trip estimate in ms, `undefined` for metrics without one. */
  readonly ewmaMs: number | undefined;
  /** Its cost as the load metric computes it now. */
  readonly cost: number;
  /** Calls sent to it by this balancer. */
  readonly picks: number;
  /**
   * Of those, calls that failed on the server or its connection (not
   * counting cancellations, deadlines, and errors raised in this process).
   */
  readonly failures: number;
}

/**
 * A snapshot of a balancer.
 *
 * @example
 * ```ts
 * const s = balancer.stats();
 * console.log(s.readiness, s.counts.ready, '/', s.counts.known, 'ready;', s.waiting, 'calls waiting');
 * ```
 */
export interface BalancerStats<K> {
  readonly target: string;
  /** The aggregate readiness (see {@link Balancer.readiness}). */
  readonly readiness: Readiness;
  /** The active endpoints by readiness. */
  readonly counts: EndpointCounts;
  /** Calls waiting for a ready endpoint. */
  readonly waiting: number;
  /** Active endpoints first, then incoming, then draining ones. */
  readonly endpoints: readonly EndpointStats<K>[];
}
