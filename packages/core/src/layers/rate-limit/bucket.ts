/**
 * A token bucket with continuous refill: the bucket holds at most `burst`
 * tokens and gains `perSecond` tokens a second, in proportion to the time
 * passed since it was last looked at (no refill timer). One call spends one
 * token. Over a long window of `t` seconds it admits at most
 * `burst + perSecond × t` calls.
 *
 * @internal
 * @module
 */

/** Rounding slack so that a refill computed in floating point still reaches a whole token. */
const EPSILON = 1e-9;

/**
 * The bucket's arithmetic; it starts full.
 *
 * @internal
 * @example
 * ```ts
 * const bucket = new TokenBucket(10, 2, Date.now());
 * bucket.tryTake(Date.now()); // true, then true, then false until 100 ms pass
 * ```
 */
export class TokenBucket {
  readonly perSecond: number;
  readonly burst: number;
  #tokens: number;
  #at: number;

  constructor(perSecond: number, burst: number, now: number) {
    this.perSecond = perSecond;
    this.burst = burst;
    this.#tokens = burst;
    this.#at = now;
  }

  /** The tokens held at `now` (fractional). */
  tokens(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** Spends one token when there is one at `now`. */
  tryTake(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1 - EPSILON) return false;
    this.#tokens = Math.max(0, this.#tokens - 1);
    return true;
  }

  /** Milliseconds from `now` until the bucket holds `count` tokens (0 when it does now). */
  msUntil(count: number, now: number): number {
    this.#refill(now);
    const missing = count - this.#tokens;
    return missing <= EPSILON ? 0 : (missing * 1000) / this.perSecond;
  }

  #refill(now: number): void {
    // A clock that steps back adds nothing (and takes nothing away).
    const elapsed = now - this.#at;
    if (elapsed > 0) {
      this.#tokens = Math.min(this.burst, this.#tokens + (elapsed * this.perSecond) / 1000);
    }
    this.#at = now;
  }
}
