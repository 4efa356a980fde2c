// Snippets of docs/guides/retries.md.
import type { Balancer } from '@grpc-tower/balance';
import { ServiceBuilder, Status, timeout } from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import type { Http2Request, Http2Response } from '@grpc-tower/core/http2';
import { hedge, httpHedge, httpRetry, retry, retryBudget, retryThrottling } from '@grpc-tower/retry';

declare const balancer: Balancer<GrpcRequest, GrpcResponse, string>;

export function basic(): void {
  // #region basic
  // above the balancer, so that every attempt is a new pick (and avoids the servers that failed)
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(timeout({ ms: 2_000 })) // one deadline over all attempts and backoffs
    .layer(retry({ maxAttempts: 3, budget: retryBudget() }))
    .service(balancer);
  // #endregion basic
  void stack;
}

export function policy(): void {
  // #region policy
  const budget = retryBudget({ percent: 0.2, minPerSec: 10, ttlMs: 10_000 }); // the defaults
  const retries = retry({
    maxAttempts: 4, // all attempts, the first included; at most 5 (A6)
    retryableStatusCodes: ['UNAVAILABLE', 'RESOURCE_EXHAUSTED'], // default: UNAVAILABLE only
    initialBackoffMs: 25, // first retry after a random wait in [0, 25 ms)
    maxBackoffMs: 250, // the ceiling doubles per retry up to 250 ms
    perAttemptTimeoutMs: 500, // an attempt that has not committed after 500 ms is retried
    budget, // share one budget between all calls of a channel
    overrides: {
      'shop.Orders/Create': { maxAttempts: 1 }, // not idempotent: never retried
      'shop.Catalog': { perAttemptTimeoutMs: 200 }, // every method of a service
    },
    shouldRetry: ({ error, attempts }) => (error.code === Status.ABORTED && attempts < 2 ? true : undefined),
  });
  // #endregion policy
  void retries;
}

export function throttling(): void {
  // #region throttling
  // A6 throttling instead of a budget: retries stop while more than half the tokens are gone
  const throttled = retry({ maxAttempts: 3, budget: retryThrottling({ maxTokens: 10, tokenRatio: 0.1 }) });
  // #endregion throttling
  void throttled;
}

export function hedging(): void {
  // #region hedge
  // for tail latency: send a second attempt to another server if the first has not
  // committed after 20 ms; the first to commit wins, the other is cancelled
  const budget = retryBudget({ percent: 0.1 });
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(timeout({ ms: 1_000 }))
    .layer(
      hedge({
        maxAttempts: 2,
        hedgingDelayMs: 20,
        nonFatalStatusCodes: ['UNAVAILABLE'],
        budget, // hedges are extra load: pay them from a budget
        overrides: { 'shop.Orders/Create': { maxAttempts: 1 } }, // only hedge idempotent methods
      }),
    )
    .service(balancer);
  // #endregion hedge
  void stack;
}

export function observing(): void {
  // #region events
  const retries = retry({ maxAttempts: 3, budget: retryBudget() });
  retries.events$.subscribe((e) => {
    if (e.type === 'retry') console.info(`${e.method}: attempt ${e.attempt} in ${e.delayMs} ms (${e.cause})`);
    if (e.type === 'give-up') console.warn(`${e.method}: gave up after ${e.attempts} (${e.reason})`);
  });
  setInterval(() => {
    const s = retries.stats();
    console.info(`retried ${s.retries} of ${s.calls} calls; ${s.budgetExhausted} refused by the budget`);
  }, 10_000).unref();
  // #endregion events
}

declare const httpBalancer: Balancer<Http2Request, Http2Response, string>;

export function http(): void {
  // #region http
  const budget = retryBudget();
  const stack = new ServiceBuilder<Http2Request, Http2Response>()
    .layer(timeout({ ms: 2_000 }))
    // GET/HEAD/OPTIONS/PUT/DELETE retried on 502, 503, 504 and lost connections; any request the server refused
    .layer(httpRetry({ maxAttempts: 3, budget }))
    // a second server for an idempotent request that has not answered within 50 ms
    .layer(httpHedge({ maxAttempts: 2, hedgingDelayMs: 50, budget }))
    .service(httpBalancer);
  // #endregion http
  void stack;
}
