/**
 * Retry throttling of gRPC A6 ("Throttling Retry Attempts and Hedged RPCs"):
 * a token count that starts at `maxTokens`, loses 1 for each failed
 * attempt (a retryable or non-fatal code, or a pushback that forbids
 * retrying) and gains `tokenRatio` for each success, never leaving
 * `[0, maxTokens]`. Retries and hedges are sent only while the count is
 * above half of `maxTokens`. Unlike the budget, it does not count calls:
 * it reacts to the failure rate of the servers. Tokens are kept in
 * thousandths, as A6 asks, so that `tokenRatio` has three decimal places.
 *
 * @module
 */
import type { RetryLimiter } from './budget.js';
import { policyChecks } from '../retry/policy.js';

/**
 * Options of {@link retryThrottling}, as in a gRPC service config's
 * `retryThrottling`.
 *
 * @example
 * ```ts
 * const options: RetryThrottlingOptions = { maxTokens: 10, tokenRatio: 0.1 };
 * ```
 */
export interface RetryThrottlingOptions {
  /** The token count's maximum and start value: more than 0, at most 1000. */
  readonly maxTokens: number;
  /** Tokens regained per success: from 0.001 to 1000 (kept to three decimal places). */
  readonly tokenRatio: number;
}

/**
 * The A6 retry throttle: see the module documentation.
 *
 * @example
 * ```ts
 * const throttle = new RetryThrottling({ maxTokens: 100, tokenRatio: 0.5 });
 * ```
 */
export class RetryThrottling implements RetryLimiter {
  readonly kind = 'throttling';
  /** The maximum in thousandths of a token. */
  readonly #max: number;
  readonly #ratio: number;
  #tokens: number;

  constructor(options: RetryThrottlingOptions) {
    const check = policyChecks('retryThrottling');
    check.object('options', options);
    const max = check.number('maxTokens', options.maxTokens, { min: 0, exclusive: true, max: 1000 });
    // kept in thousandths, so a thousandth is the least that regains anything
    const ratio = check.number('tokenRatio', options.tokenRatio, { min: 0.001, max: 1000 });
    this.#max = Math.round(max * 1000);
    this.#ratio = Math.round(ratio * 1000);
    this.#tokens = this.#max;
  }

  onCall(): void {
    // throttling reacts to outcomes only
  }

  onOutcome(outcome: 'success' | 'failure'): void {
    this.#tokens =
      outcome === 'success'
        ? Math.min(this.#max, this.#tokens + this.#ratio)
        : Math.max(0, this.#tokens - 1000);
  }

  /** Grants a retry while the tokens are above half of the maximum; takes nothing. */
  tryAcquire(): boolean {
    return this.#tokens > this.#max / 2;
  }

  /** The tokens now. */
  get level(): number {
    return this.#tokens / 1000;
  }
}

/**
 * Creates an A6 {@link RetryThrottling}, the alternative to a retry budget.
 * Share one per channel, as A6 does per server name.
 *
 * @throws RetryPolicyError naming `maxTokens` or `tokenRatio` when out of range.
 *
 * @example
 * ```ts
 * const throttle = retryThrottling({ maxTokens: 10, tokenRatio: 0.1 });
 * const layer = retry({ maxAttempts: 3, budget: throttle });
 * ```
 */
export function retryThrottling(options: RetryThrottlingOptions): RetryThrottling {
  return new RetryThrottling(options);
}
