/**
 * The retry layer with gRPC A6 semantics.
 *
 * @module
 */
export { retry, retryWith, type RetryLayer, type RetryService } from './layer.js';
export type { RetryEvent, RetryStats, GiveUpReason } from './events.js';
export {
  compileRetryPolicy,
  type RetryPolicy,
  type RetrySettings,
  type RetryPredicate,
  type RetryPredicateInput,
  type StatusSpec,
  type CompiledRetryPolicy,
  type ResolvedRetrySettings,
} from './policy.js';
export {
  backoffCeiling,
  fullJitterDelay,
  DEFAULT_BACKOFF,
  type BackoffSettings,
  type Pushback,
} from './backoff.js';
export {
  RetryPolicyError,
  RetryBudgetExhaustedError,
  RETRY_VERDICT_METADATA_KEY,
  neverReachedServer,
} from './errors.js';
export { PREVIOUS_ATTEMPTS_HEADER } from './attempt.js';
