/**
 * The power-of-two-choices pick (Mitzenmacher, "The Power of Two Choices in
 * Randomized Load Balancing", 2001): two distinct members drawn at random,
 * the lower cost wins. O(1) in the number of ready endpoints.
 *
 * - **Weights.** Members are drawn in proportion to their weight (rejection
 *   sampling against the set's largest weight, so the common case of equal
 *   weights draws uniformly with no extra work), their turns in a tie come
 *   round in proportion to it, and the balancer counts a weighted member's
 *   calls in flight per unit of weight in its load. Among equally loaded
 *   members the shares follow the weights; a slow or busy member still
 *   loses, whatever its weight.
 * - **Ties take turns.** Two candidates with the same calls in flight and
 *   costs within `tieTolerance` of each other (equal costs, for a metric
 *   that does not report its calls in flight) count as equally loaded, and
 *   the member whose turn it is wins: each member has a pass,
 *   which advances by its stride (the set's total weight over its own) each
 *   time it is chosen, and the lower pass wins a tie (stride scheduling,
 *   Waldspurger and Weihl, 1995). A member that fell behind (not drawn, out
 *   of the set, or losing on cost) catches up at most two of its turns, so
 *   a server coming back gets no burst. With no call in flight every
 *   candidate's cost is its latency estimate alone, and without this rule
 *   the lower estimate would win every comparison, so that noise in the
 *   estimates, not the servers, decided the shares. Taking turns makes
 *   identical servers share evenly (and weighted ones in proportion) while
 *   a server clearly slower than the tolerance still loses.
 * - **Slow start** (Envoy's): a member still warming up is kept with
 *   probability equal to its slow-start weight, else drawn again.
 *
 * The pick alone: `p2c()` in `../p2c.ts` checks the options and builds the
 * balancer over it.
 *
 * @internal
 * @module
 */
import type { Candidate, PickSet, Picker, SlowStartWeight } from './picker.js';

const SLOW_START_DRAWS = 8;

/** How many random draws to try before scanning for a member outside `avoid`. */
const MAX_DRAWS = 32;

const index = (random: () => number, n: number): number => {
  const i = Math.floor(random() * n);
  // a random source that returns NaN (or a non-number) draws the first member
  return Number.isNaN(i) ? 0 : Math.min(n - 1, Math.max(0, i));
};

/**
 * A random member whose address is not in `avoid` (and that is not
 * `other`). Rejection sampling; the callers only use it when at least one
 * such member exists, and `avoid` is small (the endpoints a call already
 * tried), so a few draws suffice. The scan is a fallback against a
 * pathological random source.
 */
function drawAvoiding<T extends Candidate>(
  set: PickSet<T>,
  avoid: ReadonlySet<string>,
  other: T | undefined,
  random: () => number,
): T | undefined {
  const n = set.size;
  for (let k = 0; k < MAX_DRAWS; k++) {
    const m = set.at(index(random, n));
    if (m !== other && !avoid.has(m.address)) return m;
  }
  for (let i = 0; i < n; i++) {
    const m = set.at(i);
    if (m !== other && !avoid.has(m.address)) return m;
  }
  return undefined;
}

/** Rejection draws before a weighted draw settles for the member it drew last. */
const WEIGHT_DRAWS = 16;

/** How many of its own turns a member that fell behind may catch up. */
const MAX_CREDIT = 2;

/**
 * Power of two choices: two distinct members drawn at random (in proportion
 * to their weights), the lower cost wins; costs within `tieTolerance` of
 * each other take turns (see the module documentation).
 *
 * @example
 * ```ts
 * const picker = p2cPicker<Slot>(Math.random, () => performance.now(), undefined, 0.25);
 * const slot = picker.pick(readySet, ctx.get(AvoidEndpoints));
 * ```
 */
export function p2cPicker<T extends Candidate>(
  random: () => number,
  clock: () => number,
  slowStart?: SlowStartWeight,
  tieTolerance = 0,
): Picker<T> {
  // stride scheduling's virtual time: the pass of the last member chosen
  let virtual = 0;
  // a warming member's turns come round more slowly too, so that taking
  // turns does not undo slow start
  const stride = (m: T, set: PickSet<T>, now: number): number => {
    const w = slowStart === undefined ? 1 : slowStart(m.readySince, now);
    return set.totalWeight / (m.weight * (w > 0 && w < 1 ? w : 1));
  };
  // a member behind (not drawn, or out) catches up at most MAX_CREDIT turns of its own
  const passOf = (m: T, s: number): number => Math.max(m.pass, virtual - MAX_CREDIT * s);
  /** `m` is picked: its pass (with stride `s`) advances, and the virtual time with it. */
  const take = (m: T, s: number): T => {
    const pass = passOf(m, s);
    if (pass > virtual) virtual = pass;
    m.pass = pass + s;
    return m;
  };
  const chosen = (m: T, set: PickSet<T>): T => take(m, stride(m, set, clock()));
  const better = (a: T, b: T, set: PickSet<T>): T => {
    const now = clock();
    const ca = a.load.cost(now);
    const cb = b.load.cost(now);
    const lo = ca < cb ? ca : cb;
    const hi = ca < cb ? cb : ca;
    const pa = a.load.pendingAtCost;
    // a tie: equal costs, or the same calls in flight and estimates within the tolerance
    if (ca === cb || (pa !== undefined && pa === b.load.pendingAtCost && hi <= lo * (1 + tieTolerance))) {
      const sa = stride(a, set, now);
      const sb = stride(b, set, now);
      return passOf(b, sb) < passOf(a, sa) ? take(b, sb) : take(a, sa);
    }
    const winner = cb < ca ? b : a;
    return take(winner, stride(winner, set, now));
  };
  // One index: uniform, or in proportion to the weights; with slow start, an
  // index drawn for a warming member is kept with probability equal to its
  // slow-start weight, else drawn again.
  const draw = (set: PickSet<T>, n: number, skip: number): number => {
    const one = (): number => {
      if (skip < 0) return index(random, n);
      const j = index(random, n - 1);
      return j >= skip ? j + 1 : j;
    };
    const weighted = (): number => {
      let i = one();
      const max = set.maxWeight;
      if (max === set.minWeight) return i;
      for (let k = 1; k < WEIGHT_DRAWS && random() * max >= set.at(i).weight; k++) i = one();
      return i;
    };
    let i = weighted();
    if (slowStart === undefined) return i;
    const now = clock();
    for (let k = 1; k < SLOW_START_DRAWS; k++) {
      if (random() < slowStart(set.at(i).readySince, now)) return i;
      i = weighted();
    }
    return i;
  };
  return {
    pick(set, avoid) {
      const n = set.size;
      if (n === 0) return undefined;
      if (avoid !== undefined && avoid.size > 0) {
        const avoided = set.countAddresses(avoid);
        if (avoided > 0 && avoided < n) {
          const a = drawAvoiding(set, avoid, undefined, random) as T;
          if (n - avoided === 1) return chosen(a, set);
          const b = drawAvoiding(set, avoid, a, random);
          return b === undefined ? chosen(a, set) : better(a, b, set);
        }
        // nothing to avoid among the ready members, or only avoided ones are ready
      }
      if (n === 1) return chosen(set.at(0), set);
      const i = draw(set, n, -1);
      const j = draw(set, n, i);
      return better(set.at(i), set.at(j), set);
    },
  };
}
