/**
 * Option checks, jitter and backoff shared by the polling and watching
 * sources. Backoff is capped exponential with proportional jitter
 * (as in gRPC's connection backoff, `doc/connection-backoff.md`): the n-th
 * consecutive failure waits `min(max, initial × multiplier^(n-1))`, spread
 * by ±`jitter` and never above `max`.
 *
 * @internal
 * @module
 */
import { ConfigError } from '@grpc-tower/core';

/** The longest delay `setTimeout` honours. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Backoff while a source is failing.
 *
 * @example
 * ```ts
 * const b: BackoffOptions = { initialMs: 500, maxMs: 10_000 };
 * ```
 */
export interface BackoffOptions {
  /** The first delay after a failure; default 1000 ms. */
  readonly initialMs?: number;
  /** The longest delay; default 30 000 ms. */
  readonly maxMs?: number;
  /** Growth per consecutive failure; default 2. */
  readonly multiplier?: number;
  /** Spread of each delay as a fraction (0 to 1); default 0.1 (±10 %). */
  readonly jitter?: number;
}

/** Resolved backoff settings. */
export interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  readonly jitter: number;
}

/** Throws {@link ConfigError} unless `value` is a finite number in `[min, max]`. */
export function checkNumber(
  where: string,
  option: string,
  value: unknown,
  min: number,
  max: number = MAX_TIMER_MS,
): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(where, option, value, `a finite number from ${min} to ${max}`);
  }
  return value;
}

/** Checks and fills in backoff settings. */
export function backoffConfig(where: string, options: BackoffOptions | undefined): Backoff {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new ConfigError(where, 'backoff', options, 'an object');
  }
  const initialMs = checkNumber(where, 'backoff.initialMs', options?.initialMs ?? 1000, 1);
  const maxMs = checkNumber(where, 'backoff.maxMs', options?.maxMs ?? Math.max(30_000, initialMs), initialMs);
  const multiplier = checkNumber(where, 'backoff.multiplier', options?.multiplier ?? 2, 1, 100);
  const jitter = checkNumber(where, 'backoff.jitter', options?.jitter ?? 0.1, 0, 1);
  return { initialMs, maxMs, multiplier, jitter };
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
