/**
 * The error of the per-attempt timeout.
 *
 * @module
 */
import { DeadlineExceededError, type ErrorOptions } from '../../errors.js';

/**
 * One attempt of a call ran past the limit of an `attemptTimeout` layer. It
 * is a {@link DeadlineExceededError} (status DEADLINE_EXCEEDED), and its own
 * class so that a retry layer around `attemptTimeout` can tell "this attempt
 * was too slow, another may not be" apart from "the whole call ran out of
 * time": retry the former while the call's own signal has not aborted.
 *
 * @example
 * ```ts
 * if (err instanceof AttemptTimeoutError && !ctx.signal.aborted) retryAgain();
 * ```
 */
export class AttemptTimeoutError extends DeadlineExceededError {
  /** The limit that passed, in milliseconds. */
  readonly limitMs: number;

  constructor(limitMs: number, options: ErrorOptions = {}) {
    super(`attempt timeout layer: ${limitMs} ms passed`, options);
    this.limitMs = limitMs;
  }
}
