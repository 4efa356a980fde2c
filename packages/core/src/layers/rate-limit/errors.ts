/**
 * The error of the rate limit.
 *
 * @module
 */
import { type ErrorOptions, ResourceExhaustedError } from '../../errors.js';

/**
 * A `rateLimit` layer refused a call: no token was left and the layer was
 * told not to wait (`wait: false`), or the wait for a token would outlast the
 * call's deadline. Status RESOURCE_EXHAUSTED; `retryAfterMs` says when the
 * token this call would have needed is expected.
 *
 * @example
 * ```ts
 * if (err instanceof RateLimitedError) await sleep(err.retryAfterMs, ctx.signal);
 * ```
 */
export class RateLimitedError extends ResourceExhaustedError {
  /** Milliseconds until the bucket is expected to hold the token this call needed. */
  readonly retryAfterMs: number;

  constructor(message: string, retryAfterMs: number, options: ErrorOptions = {}) {
    super(message, options);
    this.retryAfterMs = retryAfterMs;
  }
}
