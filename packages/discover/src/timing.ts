/**
 * Backoff, jitter and timers shared by the polling and watching sources.
 * Option checks are `@grpc-tower/core/internal`'s (one validator for every
 * package). Backoff is capped exponential with proportional jitter
 * (as in gRPC's connection backoff, `doc/connection-backoff.md`): the n-th
 * consecutive failure waits `min(max, initial × multiplier^(n-1))`, spread
 * by ±`jitter` and never above `max`.
 *
 * @internal
 * @module
 */
import { type BackoffValues, MAX_TIMER_MS, TIMER_RULE, optionChecks } from '@grpc-tower/core/internal';

/**
 * A delay of at least 1 ms that `setTimeout` honours.
 *
 * @example
 * ```ts
 * check.number('intervalMs', options.intervalMs, DELAY_RULE, 5000);
 * ```
 */
export const DELAY_RULE = Object.freeze({ ...TIMER_RULE, min: 1 });

/**
 * Backoff while a source is failing.
 *
 * @example
 * ```ts
 * const b: BackoffOptions = { initialMs: 500, maxMs: 10_000 };
 * ```
 */
export interface BackoffOptions {
  /** The first delay after a failure, in ms (> 0); default 1000. */
  readonly initialMs?: number;
  /** The longest delay; default 30 000 ms. */
  readonly maxMs?: number;
  /** Growth per consecutive failure; default 2. */
  readonly multiplier?: number;
  /** Spread of each delay as a fraction (0 to 1); default 0.1 (±10 %). */
  readonly jitter?: number;
}

/** Resolved backoff settings. */
export type Backoff = BackoffValues;

/** Backoff while a source fails: 1 s doubling to 30 s, ±10 %. */
const BACKOFF_DEFAULTS: Backoff = { initialMs: 1000, maxMs: 30_000, multiplier: 2, jitter: 0.1 };

/**
 * Checks and fills in backoff settings (`option` names them in errors).
 *
 * @example
 * ```ts
 * const b = backoffConfig('poll', { initialMs: 500 }); // 500 ms doubling to 30 s, ±10 %
 * ```
 */
export function backoffConfig(
  where: string,
  options: BackoffOptions | undefined,
  defaults: Backoff = BACKOFF_DEFAULTS,
  option = 'backoff',
): Backoff {
  return optionChecks(where).backoff(option, options, defaults);
}

/** `ms` spread uniformly by ±`fraction`. */
export function jittered(ms: number, fraction: number, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (1 - fraction + 2 * fraction * random())));
}

/** The delay after the `failures`-th consecutive failure (1-based). */
export function backoffDelay(failures: number, b: Backoff, random: () => number = Math.random): number {
  const base = Math.min(b.maxMs, b.initialMs * b.multiplier ** Math.max(0, failures - 1));
  return Math.min(b.maxMs, jittered(base, b.jitter, random));
}

/** A timer that does not keep the process alive. */
export function unrefTimer(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
  const timer = setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
  timer.unref();
  return timer;
}
