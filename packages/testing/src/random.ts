/**
 * A seeded random source for tests and simulations that must draw the same
 * numbers on every run.
 *
 * @module
 */

/**
 * Numbers in [0, 1) from a seed (mulberry32): the same seed, the same
 * sequence.
 *
 * @example
 * ```ts
 * const random = seededRandom(42);
 * random(); // the same first number on every run
 * ```
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
