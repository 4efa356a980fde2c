/**
 * The power-of-two-choices pick (Mitzenmacher, "The Power of Two Choices in
 * Randomized Load Balancing", 2001): two distinct members drawn uniformly at
 * random, the lower cost wins. With slow start (Envoy's), a member still
 * warming up is kept with probability equal to its weight, else drawn
 * again. O(1) in the number of ready endpoints.
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

/**
 * Power of two choices: two distinct members drawn uniformly at random,
 * the lower cost wins, a tie goes to the first draw (itself uniform, so
 * ties split evenly).
 *
 * @example
 * ```ts
 * const picker = p2cPicker<Slot>(Math.random, () => performance.now());
 * const slot = picker.pick(readySet, ctx.get(AvoidEndpoints));
 * ```
 */
export function p2cPicker<T extends Candidate>(
  random: () => number,
  clock: () => number,
  slowStart?: SlowStartWeight,
): Picker<T> {
  const better = (a: T, b: T): T => {
    const now = clock();
    return b.load.cost(now) < a.load.cost(now) ? b : a;
  };
  // With slow start, an index drawn for a warming member is kept with
  // probability equal to its weight, else drawn again.
  const draw = (set: PickSet<T>, n: number, skip: number): number => {
    const one = (): number => {
      if (skip < 0) return index(random, n);
      const j = index(random, n - 1);
      return j >= skip ? j + 1 : j;
    };
    let i = one();
    if (slowStart === undefined) return i;
    const now = clock();
    for (let k = 1; k < SLOW_START_DRAWS; k++) {
      if (random() < slowStart(set.at(i).readySince, now)) return i;
      i = one();
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
          if (n - avoided === 1) return a;
          const b = drawAvoiding(set, avoid, a, random);
          return b === undefined ? a : better(a, b);
        }
        // nothing to avoid among the ready members, or only avoided ones are ready
      }
      if (n === 1) return set.at(0);
      const i = draw(set, n, -1);
      const j = draw(set, n, i);
      return better(set.at(i), set.at(j));
    },
  };
}
