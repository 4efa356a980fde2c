/**
 * Priority levels: an endpoint carries the priority it was discovered
 * with (`EndpointMetadata.priority`, an integer ≥ 0, 0 the highest; none counts
 * as 0), as an xDS locality does. Calls go to one level at a time:
 *
 * 1. a level is usable when at least one of its known endpoints is ready
 *    and its ready share (ready ÷ known, closed ones left out) is at least
 *    `priorityReadyPercent`;
 * 2. calls go to the lowest-numbered usable level;
 * 3. when no level is usable, to the lowest-numbered level that has a
 *    ready endpoint (a degraded level serves rather than none);
 * 4. when no endpoint is ready at all, the choice is left to the whole
 *    set, which is empty: calls wait as they do without priorities.
 *
 * So a level fails over as soon as it stops being usable, and calls fail
 * back as soon as a higher level is usable again: gRPC's priority policy
 * (A56: the first child that is READY, and back to a higher one the moment
 * it reports READY) when `priorityReadyPercent` is 0, its default; a
 * higher threshold fails over earlier, as Envoy's priority levels start
 * spilling below 1 ÷ 1.4 (its overprovisioning factor) of healthy hosts,
 * though all at once rather than by share. gRPC's failover timer (a
 * CONNECTING priority holds calls up to 10 s before the next is tried) has
 * no counterpart: a level with no ready endpoint never holds calls.
 *
 * The decision ({@link decidePriority}, a pure function) is made on every
 * membership or readiness change, never per call, and only when the known
 * endpoints span more than one level; the pick set of the chosen level is
 * then built once, and panic mode and zone-aware routing work within that
 * level. With a single level nothing changes on the call path.
 *
 * @internal
 * @module
 */
import type { Readiness } from '@grpc-tower/core';
import type { Candidate } from './picker.js';
import { MemberSet } from './zones.js';

/**
 * What priority routing reads of a known endpoint.
 *
 * @example
 * ```ts
 * const standby = (m: PriorityCandidate) => m.priority > 0;
 * ```
 */
export interface PriorityCandidate extends Candidate {
  readonly readiness: Readiness;
  /** Its priority level: an integer ≥ 0, 0 the highest. */
  readonly priority: number;
}

/**
 * One level's endpoints as the decision saw them.
 *
 * @example
 * ```ts
 * const level: PriorityLevel<Slot> = { priority: 0, known: [a, b], ready: [a] };
 * ```
 */
export interface PriorityLevel<T> {
  readonly priority: number;
  /** Its endpoints that are not closed. */
  readonly known: readonly T[];
  /** Of those, the ready ones. */
  readonly ready: readonly T[];
}

/**
 * The level calls go to, with how many levels there are; `level` is
 * `undefined` when the known endpoints span one level or none is ready.
 *
 * @example
 * ```ts
 * const { level, levels } = decidePriority(slots, 0);
 * ```
 */
export interface PriorityDecision<T> {
  readonly level: PriorityLevel<T> | undefined;
  /** How many distinct priorities the known endpoints have. */
  readonly levels: number;
}

/**
 * The level calls go to over the `known` endpoints (closed ones are
 * skipped): the steps of the module documentation. O(number of endpoints
 * + levels × log levels).
 *
 * @param readyPercent - the ready share a level needs, in [0, 100]; 0: one
 *   ready endpoint is enough
 *
 * @example
 * ```ts
 * decidePriority(slots, 0).level?.priority; // 0 while an endpoint of priority 0 is ready
 * ```
 */
export function decidePriority<T extends PriorityCandidate>(
  known: Iterable<T>,
  readyPercent: number,
): PriorityDecision<T> {
  const levels = new Map<number, { known: T[]; ready: T[] }>();
  for (const m of known) {
    if (m.readiness === 'closed') continue;
    let level = levels.get(m.priority);
    if (level === undefined) {
      level = { known: [], ready: [] };
      levels.set(m.priority, level);
    }
    level.known.push(m);
    if (m.readiness === 'ready') level.ready.push(m);
  }
  if (levels.size <= 1) return { level: undefined, levels: levels.size };
  const order = [...levels.keys()].sort((a, b) => a - b);
  let degraded: PriorityLevel<T> | undefined;
  for (const priority of order) {
    const { known: k, ready } = levels.get(priority) as { known: T[]; ready: T[] };
    if (ready.length === 0) continue;
    const level = { priority, known: k, ready };
    if (ready.length * 100 >= readyPercent * k.length) return { level, levels: levels.size };
    degraded ??= level;
  }
  return { level: degraded, levels: levels.size };
}

/**
 * Priority routing for one balancer: re-decides on each
 * {@link PriorityRouter.update} and holds the chosen level's pick set and
 * known endpoints (`undefined` when one level or none is in play, and the
 * balancer's whole ready set serves).
 *
 * @example
 * ```ts
 * const router = new PriorityRouter<Slot>(0);
 * if (router.update(set.active.values())) console.log('calls go to priority', router.priority);
 * const pickSet = router.set ?? set.ready;
 * ```
 */
export class PriorityRouter<T extends PriorityCandidate> {
  readonly #readyPercent: number;
  #level: PriorityLevel<T> | undefined;
  #set: MemberSet<T> | undefined;

  /** @param readyPercent - the ready share a level needs, in [0, 100] */
  constructor(readyPercent: number) {
    this.#readyPercent = readyPercent;
  }

  /** The priority calls go to, or `undefined` when priorities play no part now. */
  get priority(): number | undefined {
    return this.#level?.priority;
  }

  /** The chosen level's ready endpoints as a pick set, or `undefined`. */
  get set(): MemberSet<T> | undefined {
    return this.#set;
  }

  /** The chosen level's known endpoints (not closed), or `undefined`. */
  get known(): readonly T[] | undefined {
    return this.#level?.known;
  }

  /** Re-decides over the known endpoints; true when the priority calls go to changed. */
  update(known: Iterable<T>): boolean {
    const previous = this.#level?.priority;
    const { level } = decidePriority(known, this.#readyPercent);
    this.#level = level;
    this.#set = level === undefined ? undefined : new MemberSet(level.ready);
    return level?.priority !== previous;
  }
}
