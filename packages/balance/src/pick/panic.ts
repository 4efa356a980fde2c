/**
 * Panic mode (Envoy's and Finagle's panic threshold): the one decision
 * ({@link belowPanicThreshold}, for the whole set and for the local zone
 * of zone-aware routing) and the wrapper of a picker that applies it.
 * When fewer than `thresholdPercent` of the known endpoints are
 * ready, health checking is probably wrong or the whole set is degraded,
 * and sending every call to the few ready ones would overload them: the
 * wrapper then picks among every known endpoint whose connection is up
 * (`connected`), including those a health check or outlier detection holds
 * out. Otherwise it hands the pick to the picker it wraps, unchanged.
 *
 * The balancer re-decides on every membership or readiness change
 * ({@link PanicPicker.update}), never on the pick path, and sends its calls
 * through the wrapper only while it is active, so that out of panic a call
 * costs what the wrapped picker costs. A pick in panic is O(number of
 * endpoints), but only while the pool is mostly unusable.
 *
 * @internal
 * @module
 */
import type { Readiness } from '@grpc-tower/core';
import type { Candidate, PickSet, Picker } from './picker.js';

/**
 * What panic mode reads of a known endpoint.
 *
 * @example
 * ```ts
 * const usable = (m: PanicCandidate) => m.readiness !== 'closed' && m.connected;
 * ```
 */
export interface PanicCandidate extends Candidate {
  readonly readiness: Readiness;
  /** Whether its connection is up, even when it is held out of the ready set. */
  readonly connected: boolean;
}

/**
 * A {@link PickSet} over a plain array (panic mode builds one per pick).
 *
 * @example
 * ```ts
 * const slot = picker.pick(new ArrayPickSet(connectedSlots), avoid);
 * ```
 */
export class ArrayPickSet<T extends { readonly address: string; readonly weight: number }>
  implements PickSet<T>
{
  readonly totalWeight: number;
  readonly maxWeight: number;
  readonly minWeight: number;

  constructor(readonly items: readonly T[]) {
    let total = 0;
    let max = items.length === 0 ? 1 : 0;
    let min = items.length === 0 ? 1 : Number.POSITIVE_INFINITY;
    for (const m of items) {
      total += m.weight;
      if (m.weight > max) max = m.weight;
      if (m.weight < min) min = m.weight;
    }
    this.totalWeight = total;
    this.maxWeight = max;
    this.minWeight = min;
  }
  get size(): number {
    return this.items.length;
  }
  at(index: number): T {
    return this.items[index] as T;
  }
  countAddresses(addresses: ReadonlySet<string>): number {
    let n = 0;
    for (const m of this.items) if (addresses.has(m.address)) n++;
    return n;
  }
}

/**
 * Whether `ready` of `known` endpoints is below the panic threshold:
 * fewer than `thresholdPercent` % of them ready. Never with no endpoint
 * known (nothing to balance over), never with a threshold of 0 (off);
 * exactly at the threshold is not panic.
 *
 * @example
 * ```ts
 * belowPanicThreshold(4, 1, 50); // true: 25 % ready
 * belowPanicThreshold(4, 2, 50); // false: exactly 50 %
 * ```
 */
export function belowPanicThreshold(known: number, ready: number, thresholdPercent: number): boolean {
  return thresholdPercent > 0 && known > 0 && ready * 100 < thresholdPercent * known;
}

/**
 * A picker that balances over every connected endpoint while too few are ready.
 *
 * @example
 * ```ts
 * const panic = new PanicPicker(p2cPicker(Math.random, clock), 50, set.active);
 * if (panic.update(4, 1)) console.log('panic', panic.active); // panic true: 25 % ready
 * ```
 */
export class PanicPicker<T extends PanicCandidate> implements Picker<T> {
  readonly #inner: Picker<T>;
  readonly #thresholdPercent: number;
  readonly #known: { values(): Iterable<T> };
  #active = false;

  /**
   * @param inner - the picker used in and out of panic
   * @param thresholdPercent - in (0, 100]
   * @param known - the known (active) endpoints, read when a pick happens in panic
   */
  constructor(inner: Picker<T>, thresholdPercent: number, known: { values(): Iterable<T> }) {
    this.#inner = inner;
    this.#thresholdPercent = thresholdPercent;
    this.#known = known;
  }

  /** Whether picks are in panic now. */
  get active(): boolean {
    return this.#active;
  }

  /** Re-decides from the counts (`known` excludes closed endpoints); true when the decision changed. */
  update(known: number, ready: number): boolean {
    const active = belowPanicThreshold(known, ready, this.#thresholdPercent);
    if (active === this.#active) return false;
    this.#active = active;
    return true;
  }

  pick(set: PickSet<T>, avoid: ReadonlySet<string> | undefined): T | undefined {
    if (!this.#active) return this.#inner.pick(set, avoid);
    const candidates: T[] = [];
    for (const m of this.#known.values()) {
      if (m.readiness !== 'closed' && m.connected) candidates.push(m);
    }
    if (candidates.length <= set.size) return this.#inner.pick(set, avoid);
    return this.#inner.pick(new ArrayPickSet(candidates), avoid);
  }
}
