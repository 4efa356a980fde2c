/**
 * Limits on retries shared by all calls of a channel: the Finagle/tower
 * retry budget and gRPC A6 retry throttling.
 *
 * @module
 */
export { RetryBudget, retryBudget, type RetryBudgetOptions, type RetryLimiter } from './budget.js';
export { RetryThrottling, retryThrottling, type RetryThrottlingOptions } from './throttling.js';
