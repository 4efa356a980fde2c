/**
 * Retry delays: exponential backoff with full jitter, as gRPC A6
 * ("Exponential backoff": the n-th retry waits
 * `random(0, min(initialBackoff × multiplier^(n-1), maxBackoff))`) and the
 * AWS Architecture Blog's "Exponential Backoff and Jitter" describe it, and
 * the server pushback header of A6 (`grpc-retry-pushback-ms`).
 *
 * @module
 */
import type { CallContext } from '@grpc-tower/core';
import { noteCall } from '@grpc-tower/core/internal';

/**
 * The numbers that shape the backoff.
 *
 * @example
 * ```ts
 * const slow: BackoffSettings = { initialBackoffMs: 100, maxBackoffMs: 2_000, backoffMultiplier: 3 };
 * ```
 */
export interface BackoffSettings {
  /** The ceiling of the first retry's delay, in ms. */
  readonly initialBackoffMs: number;
  /** The largest ceiling, in ms. */
  readonly maxBackoffMs: number;
  /** How much the ceiling grows after each retry. */
  readonly backoffMultiplier: number;
}

/**
 * The defaults: 25 ms, growing ×2, capped at 250 ms (Envoy's retry backoff
 * values; gRPC A6 leaves them to the service config).
 *
 * @example
 * ```ts
 * backoffCeiling(0, DEFAULT_BACKOFF); // 25
 * ```
 */
export const DEFAULT_BACKOFF: BackoffSettings = Object.freeze({
  initialBackoffMs: 25,
  maxBackoffMs: 250,
  backoffMultiplier: 2,
});

/**
 * The upper bound of the delay before retry number `step + 1` (step 0 is the
 * first retry): `min(maxBackoffMs, initialBackoffMs × multiplier^step)`.
 *
 * @example
 * ```ts
 * backoffCeiling(3, DEFAULT_BACKOFF); // min(250, 25 × 8) = 200
 * ```
 */
export function backoffCeiling(step: number, settings: BackoffSettings): number {
  const grown = settings.initialBackoffMs * settings.backoffMultiplier ** Math.max(0, step);
  return Math.min(settings.maxBackoffMs, Number.isFinite(grown) ? grown : settings.maxBackoffMs);
}

/**
 * A full-jitter delay for retry number `step + 1`: uniform in
 * `[0, backoffCeiling(step)]`, rounded down to whole milliseconds.
 *
 * @example
 * ```ts
 * const ms = fullJitterDelay(0, DEFAULT_BACKOFF); // 0 ≤ ms ≤ 25
 * ```
 */
export function fullJitterDelay(
  step: number,
  settings: BackoffSettings,
  random: () => number = Math.random,
): number {
  const ceiling = backoffCeiling(step, settings);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.min(ceiling, Math.floor(r * (Math.floor(ceiling) + 1)));
}

export type { Pushback } from '@grpc-tower/core';

/**
 * Waits `ms` before a retry, on the call's context: rejects with the abort
 * reason as soon as the call stops, and tells the call that it waits in a
 * backoff (its deadline error says so). The timer and the hook are released
 * either way; no AbortSignal is created for a call that has none.
 *
 * @internal
 * @example
 * ```ts
 * await backoffSleep(fullJitterDelay(step, DEFAULT_BACKOFF), ctx);
 * ```
 */
export function backoffSleep(ms: number, ctx: CallContext): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (ctx.aborted) {
      reject(ctx.reason());
      return;
    }
    noteCall(ctx, 'backoff');
    const timer = setTimeout(() => {
      off();
      noteCall(ctx, 'endpoint');
      resolve();
    }, ms);
    const off = ctx.onAbort(() => {
      clearTimeout(timer);
      reject(ctx.reason());
    });
  });
}
