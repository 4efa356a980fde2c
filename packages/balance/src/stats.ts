/**
 * The snapshot shapes of `balancer.stats()` and `stats$`: the aggregate
 * readiness and counts, the calls waiting, one row per endpoint with its
 * role, load and pick counters, and the zone-aware routing decision.
 *
 * @module
 */
import type { Readiness } from '@grpc-tower/core';
import type { EndpointRole } from './slot.js';
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
  /** The zone it runs in (its insert's `metadata.zone`), or `undefined`. */
  readonly zone: string | undefined;
  /** Its priority level (`endpoint.priority`, 0 when it has none). */
  readonly priority: number;
  /** Its group (`endpoint.group`), when it has one. */
  readonly group?: string;
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
  /** Where calls go by zone, with zone-aware routing on (the `zones` option); absent when it is off. */
  readonly zones?: ZoneRouting;
  /** The priority level calls go to, while the endpoints span more than one and one is ready; absent otherwise. */
  readonly priority?: number;
  /** Each group's share of the calls, while the endpoints span more than one group (`EndpointMetadata.group`); absent otherwise. */
  readonly groups?: Readonly<Record<string, number>>;
}

/**
 * How zone-aware routing sends calls now:
 * - `all`: to every ready endpoint, whatever its zone, for the `reason`
 *   given;
 * - `local`: only to the local zone, which has enough ready capacity for
 *   its share of the clients;
 * - `spill`: to the local zone with probability `localShare`, the rest to
 *   the other zones in proportion to their spare capacity;
 * - `hints`: only to the endpoints whose topology hints (`forZones`) name
 *   the local zone.
 *
 * @example
 * ```ts
 * const mode: ZoneRoutingMode = balancer.zoneRouting?.mode ?? 'all';
 * ```
 */
export type ZoneRoutingMode = 'all' | 'local' | 'spill' | 'hints';

/**
 * Why zone-aware routing sends calls to every zone:
 * - `panic`: the balancer is in panic mode (`panicThresholdPercent`),
 *   which wins;
 * - `too-few-endpoints`: fewer endpoints are known than `zones.minEndpoints`;
 * - `no-local-endpoint`: no endpoint of the local zone is ready;
 * - `local-panic`: fewer than `panicThresholdPercent` of the local zone's
 *   known endpoints are ready.
 *
 * @example
 * ```ts
 * const degraded = (r: ZoneRoutingReason | undefined) => r === 'no-local-endpoint' || r === 'local-panic';
 * ```
 */
export type ZoneRoutingReason = 'panic' | 'too-few-endpoints' | 'no-local-endpoint' | 'local-panic';

/**
 * The zone-aware routing decision (`stats().zones`, `balancer.zoneRouting`,
 * and the `zones` event when it changes), re-made on every membership or
 * readiness change.
 *
 * @example
 * ```ts
 * const z = balancer.zoneRouting;
 * if (z?.mode === 'spill') console.warn(`only ${(z.localShare * 100).toFixed(0)} % of calls stay local`, z.shares);
 * ```
 */
export interface ZoneRouting {
  readonly mode: ZoneRoutingMode;
  /** Why calls go to every zone; only in mode `all`. */
  readonly reason?: ZoneRoutingReason;
  /** The probability that a call goes to an endpoint of the local zone. */
  readonly localShare: number;
  /**
   * The probability that a call goes to each zone (zones with none left
   * out). In modes `local` and `spill` these are the draws themselves; in
   * `all` and `hints` the zones' shares of the ready capacity (the sum of
   * the weights) the picker chooses among, which it follows when the
   * endpoints are equally loaded. Endpoints without a zone are in none.
   */
  readonly shares: Readonly<Record<string, number>>;
}
