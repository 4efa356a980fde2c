/**
 * Alternating rounds: in every round each contender runs once, and the
 * order turns by one place from round to round, so that no contender is
 * always first (after an idle pause) or always last (after the others
 * warmed the machine).
 *
 * @module
 */

/**
 * The order of `items` in round `round` (0-based): rotated by `round`
 * places, and reversed every other round.
 *
 * @example
 * ```ts
 * roundOrder(['a', 'b', 'c'], 0); // ['a', 'b', 'c']
 * roundOrder(['a', 'b', 'c'], 1); // ['c', 'b', 'a']
 * roundOrder(['a', 'b', 'c'], 2); // ['b', 'c', 'a']
 * ```
 */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  const n = items.length;
  if (n === 0) return [];
  const shift = Math.floor(round / 2) % n;
  const rotated = [...items.slice(shift), ...items.slice(0, shift)];
  return round % 2 === 0 ? rotated : rotated.reverse();
}

/**
 * Sleeps `ms`.
 *
 * @example
 * ```ts
 * await sleep(100);
 * ```
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
