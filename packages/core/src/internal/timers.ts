/**
 * The limit of Node's timers, for the packages that take a delay from
 * their options: `setTimeout` fires at once (with a warning) for a delay
 * above 2^31 - 1 ms, so a longer delay must be refused or left to the
 * call's own signal.
 *
 * @internal
 * @module
 */

/**
 * The longest delay `setTimeout` honours, in ms (about 24.8 days).
 *
 * @internal
 * @example
 * ```ts
 * if (delayMs <= MAX_TIMER_MS) timer = setTimeout(onTimeout, delayMs);
 * ```
 */
export const MAX_TIMER_MS = 2_147_483_647;
