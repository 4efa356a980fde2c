/**
 * Retries for plain HTTP/2 requests (`@grpc-tower/core/http2`): the retry
 * layer's attempt loop with HTTP's rules in place of gRPC A6's, as core's
 * `httpProtocol` (beside the HTTP/2 endpoint) defines them: a request the
 * server never processed goes again whatever its method; a 502, 503 or 504
 * answer and a connection lost in flight only for idempotent requests; the
 * commit point is the response headers; `Retry-After` is the pushback (no
 * attempt that would end after the call's deadline); a body goes again only
 * while it is held. When the layer gives up on an answer it judged failed
 * (the last 503), the caller gets that response, as the server sent it;
 * other failures reject as usual.
 *
 * @module
 */
import type { GrpcTowerError, StatusCode } from '@grpc-tower/core';
import type { Http2Request, Http2Response, HttpProtocolOptions } from '@grpc-tower/core/http2';
import { POSITIVE_TIMER_RULE, checkedHttpProtocol } from '@grpc-tower/core/internal';
import { DEFAULT_BACKOFF } from '../retry/backoff.js';
import { type RetryLayer, retryWith } from '../retry/layer.js';
import {
  type CompiledRetryPolicy,
  type ResolvedRetrySettings,
  type RetryPredicate,
  compilePolicy,
  policyChecks,
  resolveBackoff,
  ATTEMPTS,
} from '../retry/policy.js';
import type { RetryLimiter } from '../budget/budget.js';
import { type HedgeLayer, type HedgeRules, hedgeWith } from '../hedge/layer.js';
import { compileHedgePolicy } from '../hedge/policy.js';
import type { Protocol } from './protocol.js';

/**
 * The policy of {@link httpRetry}.
 *
 * @example
 * ```ts
 * const policy: HttpRetryPolicy = { maxAttempts: 3, retryableStatuses: [503], budget: retryBudget() };
 * ```
 */
export interface HttpRetryPolicy {
  /** All attempts of a request, the first included: an integer ≥ 1, capped at `maxAttemptsLimit`. Default 3. */
  readonly maxAttempts?: number;
  /** The cap on `maxAttempts`; default 5 (as gRPC's A6). */
  readonly maxAttemptsLimit?: number;
  /** The answers that count as failed and are retried for idempotent requests; default `[502, 503, 504]`. */
  readonly retryableStatuses?: readonly number[];
  /** The first retry waits a random time up to this, in ms (≥ 0); default 25. */
  readonly initialBackoffMs?: number;
  /** The cap of the backoff ceiling, in ms; default 250. */
  readonly maxBackoffMs?: number;
  /** How much the ceiling grows per retry (≥ 1); default 2. */
  readonly backoffMultiplier?: number;
  /**
   * A time limit for each attempt until its response headers, in ms (> 0);
   * an attempt past it is cancelled and, for an idempotent request,
   * retried. Default: none.
   */
  readonly perAttemptTimeoutMs?: number;
  /** The longest `Retry-After` honoured, in ms; a longer one stops the retries. Default: the call's deadline alone limits it. */
  readonly maxRetryAfterMs?: number;
  /**
   * Decides per failure, after the rules above: `true` retries, `false`
   * stops, `undefined` keeps the rules' verdict. A request that was not
   * held (its body streamed past the replay buffer) is never re-sent.
   */
  readonly shouldRetry?: RetryPredicate<Http2Request>;
  /** A budget or throttle shared by all requests of the client; default none. */
  readonly budget?: RetryLimiter;
  /** Re-send, once per request and at once, a request the server never processed, without counting it or paying the budget; default true. */
  readonly transparentRetry?: boolean;
}

/**
 * The HTTP rules of the retry layer (see the module documentation), for
 * {@link retryWith}: core's `httpProtocol`, whose bad options are this
 * layer's `RetryPolicyError`; {@link httpRetry} builds the layer with it.
 *
 * @example
 * ```ts
 * const layer = retryWith(httpRetryProtocol({ retryableStatuses: [503] }), compileHttpRetryPolicy({}));
 * ```
 */
export function httpRetryProtocol(options: HttpProtocolOptions = {}): Protocol<Http2Request, Http2Response> {
  return checkedHttpProtocol(policyChecks('httpRetry'), options);
}

const SETTINGS = new Set([
  'maxAttempts',
  'initialBackoffMs',
  'maxBackoffMs',
  'backoffMultiplier',
  'perAttemptTimeoutMs',
  'shouldRetry',
  'retryableStatuses',
  'maxRetryAfterMs',
]);

/**
 * Checks an {@link HttpRetryPolicy}'s attempt, backoff and budget settings;
 * throws `RetryPolicyError` naming the first bad field.
 *
 * @example
 * ```ts
 * compileHttpRetryPolicy({ maxAttempts: 9 }).defaults.maxAttempts; // 5: capped by maxAttemptsLimit
 * ```
 */
export function compileHttpRetryPolicy(policy: HttpRetryPolicy = {}): CompiledRetryPolicy<Http2Request> {
  return compilePolicy<HttpRetryPolicy, ResolvedRetrySettings<Http2Request>>(
    'httpRetry',
    policy,
    SETTINGS,
    (check, prefix, s, base, limit) => ({
      maxAttempts:
        s.maxAttempts === undefined
          ? Math.min(3, limit)
          : Math.min(limit, check.number(`${prefix}maxAttempts`, s.maxAttempts, ATTEMPTS)),
      // HTTP answers are judged by the protocol, not by gRPC codes
      retryableStatusCodes: new Set<StatusCode>(),
      backoff: resolveBackoff(check, prefix, s, base?.backoff ?? DEFAULT_BACKOFF),
      perAttemptTimeoutMs:
        s.perAttemptTimeoutMs === undefined
          ? undefined
          : check.number(`${prefix}perAttemptTimeoutMs`, s.perAttemptTimeoutMs, POSITIVE_TIMER_RULE),
      shouldRetry:
        s.shouldRetry === undefined
          ? undefined
          : check.function<RetryPredicate<Http2Request>>(`${prefix}shouldRetry`, s.shouldRetry),
    }),
  );
}

/**
 * A retry layer for HTTP/2 requests (see the module documentation): put it
 * above a balancer of `http2Endpoint`s, so each retry is a fresh pick that
 * avoids the endpoints that failed. Its rules are `protocol`'s (the
 * stack's HTTP protocol) unless the policy names `retryableStatuses` or
 * `maxRetryAfterMs`, which make a protocol of their own.
 *
 * @throws RetryPolicyError naming the first bad field of `policy`.
 *
 * @example
 * ```ts
 * const stack = new ServiceBuilder<Http2Request, Http2Response>()
 *   .layer(httpRetry({ maxAttempts: 3, budget: retryBudget() }))
 *   .service(p2c(endpoints));
 * const res = await stack.call({ path: '/items/7' }, newContext({ timeoutMs: 2000 }));
 * ```
 */
export function httpRetry(
  policy: HttpRetryPolicy = {},
  protocol?: Protocol<Http2Request, Http2Response>,
): RetryLayer<Http2Request, Http2Response> {
  const compiled = compileHttpRetryPolicy(policy);
  if (
    protocol !== undefined &&
    policy.retryableStatuses === undefined &&
    policy.maxRetryAfterMs === undefined
  ) {
    return retryWith(protocol, compiled);
  }
  const own = httpRetryProtocol({
    ...(policy.retryableStatuses === undefined ? {} : { retryableStatuses: policy.retryableStatuses }),
    ...(policy.maxRetryAfterMs === undefined ? {} : { maxRetryAfterMs: policy.maxRetryAfterMs }),
  });
  return retryWith(own, compiled);
}

/**
 * The policy of {@link httpHedge}.
 *
 * @example
 * ```ts
 * const policy: HttpHedgePolicy = { maxAttempts: 2, hedgingDelayMs: 20, budget: retryBudget() };
 * ```
 */
export interface HttpHedgePolicy {
  /** All attempts of a request, the first included; default 2. */
  readonly maxAttempts?: number;
  /** The cap on `maxAttempts`; default 5. */
  readonly maxAttemptsLimit?: number;
  /** How long to wait after an attempt before sending the next, in ms; default 0 (all at once). */
  readonly hedgingDelayMs?: number;
  /** The answers after which the next attempt goes out at once instead of ending the request; default `[502, 503, 504]`. */
  readonly retryableStatuses?: readonly number[];
  /** A budget or throttle; each hedge after the first asks it. */
  readonly budget?: RetryLimiter;
  /** Re-send once, at once, a request the server never processed (not counted). Default true. */
  readonly transparentRetry?: boolean;
}

/** The protocol ignores the gRPC settings it is handed. */
const NO_SETTINGS: ResolvedRetrySettings<Http2Request> = Object.freeze({
  maxAttempts: 1,
  retryableStatusCodes: new Set<StatusCode>(),
  backoff: DEFAULT_BACKOFF,
  perAttemptTimeoutMs: undefined,
  shouldRetry: undefined,
});

/**
 * HTTP's hedging rules: only idempotent requests are hedged (any other
 * request gets one attempt, plus the re-send of a refused stream), and a
 * failure that the HTTP protocol would retry lets the next attempt
 * go out at once; any other failure ends the request.
 *
 * @example
 * ```ts
 * const layer = hedgeWith(httpHedgeRules(), compileHedgePolicy({ maxAttempts: 2, hedgingDelayMs: 20 }));
 * ```
 */
export function httpHedgeRules(
  options: { readonly retryableStatuses?: readonly number[] } = {},
): HedgeRules<Http2Request, Http2Response> {
  const protocol = httpRetryProtocol(options);
  return Object.freeze({
    protocol,
    nonFatal: (error: GrpcTowerError, req: Http2Request) =>
      protocol.retryable(error, req, NO_SETTINGS, false),
    hedgeable: protocol.hedgeable,
  });
}

/**
 * A hedging layer for HTTP/2 requests: an idempotent request goes to a
 * second server when the first has not answered within `hedgingDelayMs`,
 * and the first answer that is not a failure wins (the others are
 * cancelled with RST_STREAM). Put it above a balancer of `http2Endpoint`s.
 *
 * @throws RetryPolicyError naming the first bad field of `policy`.
 *
 * @example
 * ```ts
 * const stack = new ServiceBuilder<Http2Request, Http2Response>()
 *   .layer(httpHedge({ maxAttempts: 2, hedgingDelayMs: 30 }))
 *   .service(p2c(endpoints));
 * ```
 */
export function httpHedge(policy: HttpHedgePolicy = {}): HedgeLayer<Http2Request, Http2Response> {
  const { retryableStatuses, ...rest } = policy;
  if (typeof policy !== 'object' || policy === null) {
    throw policyChecks('httpHedge').error('policy', policy, 'an object');
  }
  const compiled = compileHedgePolicy(rest);
  return hedgeWith(httpHedgeRules(retryableStatuses === undefined ? {} : { retryableStatuses }), compiled);
}
