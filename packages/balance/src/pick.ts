/**
 * The pick arithmetic over a {@link ReadySet}: power of two choices and
 * round robin. Every pick is O(1) in the number of endpoints (plus
 * O(|avoid|) when the call names endpoints to avoid).
 *
 * @internal
 * @module
 */
import type { EndpointLoad } from './load.js';
import type { ReadyMember, ReadySet } from './ready-set.js';

/** What a picker needs of a ready endpoint. */
export interface Candidate extends ReadyMember {
  readonly load: EndpointLoad;
}

/** Chooses one member of a ready set. */
export interface Picker<T extends Candidate> {
  /**
   * A ready member, or `undefined` when the set is empty. Members whose
   * address is in `avoid` are skipped when another member is ready.
   */
  pick(set: ReadySet<T>, avoid: ReadonlySet<string> | undefined): T | undefined;
}

/** How many random draws to try before scanning for a member outside `avoid`. */
const MAX_DRAWS = 32;

const index = (random: () => number, n: number): number => {
  const i = Math.floor(random() * n);
  return Math.min(n - 1, Math.max(0, i));
};

/**
 * A random member whose address is not in `avoid` (and that is not
 * `other`). Rejection sampling; the callers only use it when at least one
 * such member exists, and `avoid` is small (the endpoints a call already
 * tried), so a few draws suffice. The scan is a fallback against a
 * pathological random source.
 */
function drawAvoiding<T extends Candidate>(
  set: ReadySet<T>,
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
 */
export function p2cPicker<T extends Candidate>(random: () => number, clock: () => number): Picker<T> {
  const better = (a: T, b: T): T => {
    const now = clock();
    return b.load.cost(now) < a.load.cost(now) ? b : a;
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
      const i = index(random, n);
      let j = index(random, n - 1);
      if (j >= i) j++;
      return better(set.at(i), set.at(j));
    },
  };
}

/** Round robin over the ready set. Its order changes as members come and go. */
export function roundRobinPicker<T extends Candidate>(): Picker<T> {
  let cursor = 0;
  return {
    pick(set, avoid) {
      const n = set.size;
      if (n === 0) return undefined;
      if (cursor >= n) cursor = 0;
      if (avoid !== undefined && avoid.size > 0) {
        const avoided = set.countAddresses(avoid);
        if (avoided > 0 && avoided < n) {
          // at most `avoided` members are skipped
          for (let k = 0; k < n; k++) {
            const m = set.at(cursor);
            cursor = cursor + 1 < n ? cursor + 1 : 0;
            if (!avoid.has(m.address)) return m;
          }
        }
      }
      const m = set.at(cursor);
      cursor = cursor + 1 < n ? cursor + 1 : 0;
      return m;
    },
  };
}
