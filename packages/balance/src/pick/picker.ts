/**
 * What a picker is: the choice of one endpoint among the ready ones, for
 * each call. A picker reads a {@link PickSet} (the balancer's dense array of
 * ready endpoints, or the list panic mode builds) and returns one member,
 * in O(1) in the number of endpoints (plus O(|avoid|) when the call names
 * endpoints to avoid). The implementations are one file each: power of two
 * choices (`p2c.ts`), round robin (`round-robin.ts`), and panic mode, a
 * wrapper of either (`panic.ts`).
 *
 * @internal
 * @module
 */
import type { EndpointLoad } from '../load/metric.js';
import type { ReadyMember } from '../ready-set.js';

/**
 * What a picker needs of a ready endpoint.
 *
 * @example
 * ```ts
 * const c: Candidate = { readyIndex: -1, address: '127.0.0.2:50051', load, readySince: 0, weight: 1, pass: 0 };
 * ```
 */
export interface Candidate extends ReadyMember {
  readonly load: EndpointLoad;
  /** When it last became ready (the picker's clock), for slow start. */
  readySince: number;
  /** Its share among equally loaded members, relative to the others' (> 0; 1 unless discovery set one). */
  readonly weight: number;
  /** Its pass in the stride scheduling that breaks ties between equal costs (managed by the picker). */
  pass: number;
}

/**
 * What a picker reads of the set it picks from (a ReadySet, or a panic-mode list).
 *
 * @example
 * ```ts
 * const first = (set: PickSet<Candidate>) => (set.size > 0 ? set.at(0) : undefined);
 * ```
 */
export interface PickSet<T> {
  readonly size: number;
  at(index: number): T;
  countAddresses(addresses: ReadonlySet<string>): number;
  /** The sum of the members' weights. */
  readonly totalWeight: number;
  /** The largest and the smallest weight of a member (both 1 when the set is empty). */
  readonly maxWeight: number;
  readonly minWeight: number;
}

/**
 * Chooses one member of a ready set.
 *
 * @example
 * ```ts
 * const first: Picker<Candidate> = { pick: (set) => (set.size > 0 ? set.at(0) : undefined) };
 * ```
 */
export interface Picker<T extends Candidate> {
  /**
   * A ready member, or `undefined` when the set is empty. Members whose
   * address is in `avoid` are skipped when another member is ready.
   */
  pick(set: PickSet<T>, avoid: ReadonlySet<string> | undefined): T | undefined;
}

/**
 * A slow-start weight: `(readySince, now) => weight` in (0, 1]; a member
 * drawn with weight w is kept with probability w, else drawn again (at most
 * 8 times), as Envoy's slow start does.
 *
 * @example
 * ```ts
 * // linear ramp over 30 s, starting at 10 %
 * const weight: SlowStartWeight = (since, now) => Math.min(1, Math.max(0.1, (now - since) / 30_000));
 * const balancer = p2c(discover, { slowStart: weight });
 * ```
 */
export type SlowStartWeight = (readySinceMs: number, nowMs: number) => number;
