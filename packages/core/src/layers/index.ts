/**
 * The generic layers: they work for any request and response type, so they
 * fit in front of a grpc-js endpoint, an HTTP/2 endpoint, a balancer, or any
 * in-process service.
 *
 * - `timeout` / `attemptTimeout`: a deadline for the call / for one attempt;
 * - `concurrencyLimit`: at most `max` calls at once, a bounded FIFO queue;
 * - `loadShed`: refuse at once when the inner service is not ready;
 * - `rateLimit`: a token bucket.
 *
 * @module
 */
export {
  timeout,
  attemptTimeout,
  AttemptTimeoutError,
  type TimeoutOptions,
  type AttemptTimeoutOptions,
} from './timeout/index.js';
export {
  concurrencyLimit,
  type ConcurrencyLimitOptions,
  type ConcurrencyLimitService,
} from './concurrency-limit/index.js';
export { loadShed, type LoadShedOptions } from './load-shed/index.js';
export {
  rateLimit,
  RateLimitedError,
  type RateLimitOptions,
  type RateLimitService,
} from './rate-limit/index.js';
export type { Ready } from './ready.js';
