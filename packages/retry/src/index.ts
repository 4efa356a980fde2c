/**
 * `@grpc-tower/retry`: retries with gRPC A6 semantics (commit point,
 * bounded replay, server pushback, transparent retry), the same loop with
 * HTTP's rules for plain HTTP/2 requests ({@link httpRetry}: idempotent
 * methods, `Retry-After`, refused streams), the retry budget of Finagle and
 * tower, A6 retry throttling, and A6 hedging, as layers over a grpc-tower
 * stack.
 *
 * @example
 * ```ts
 * import { retry, retryBudget } from '@grpc-tower/retry';
 * const budget = retryBudget();
 * const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
 *   .layer(retry({ maxAttempts: 4, budget }))
 *   .service(balancer);
 * ```
 * @packageDocumentation
 */
export {
  retry,
  retryWith,
  compileRetryPolicy,
  RetryPolicyError,
  RetryBudgetExhaustedError,
  type RetryLayer,
  type RetryService,
  type RetryEvent,
  type RetryStats,
  type GiveUpReason,
  type RetryPolicy,
  type RetrySettings,
  type RetryPredicate,
  type RetryPredicateInput,
  type StatusSpec,
  type CompiledRetryPolicy,
  type ResolvedRetrySettings,
  type BackoffSettings,
} from './retry/index.js';
export { CallRetries, type RetryTally } from './tally.js';
export {
  httpRetry,
  httpHedge,
  httpHedgeRules,
  type HttpRetryPolicy,
  type HttpHedgePolicy,
} from './protocol/index.js';
export {
  RetryBudget,
  retryBudget,
  RetryThrottling,
  retryThrottling,
  type RetryBudgetOptions,
  type RetryThrottlingOptions,
  type RetryLimiter,
} from './budget/index.js';
export {
  hedge,
  hedgeWith,
  compileHedgePolicy,
  grpcHedgeRules,
  type HedgeRules,
  type HedgeLayer,
  type HedgeService,
  type HedgeEvent,
  type HedgeStats,
  type HedgeEndReason,
  type HedgePolicy,
  type HedgeSettings,
  type CompiledHedgePolicy,
  type ResolvedHedgeSettings,
} from './hedge/index.js';
