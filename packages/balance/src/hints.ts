/**
 * What a balancer reads from, and reports through, a call's context: the
 * balancer's side of its contract with the layers above it (retry and
 * hedging set the hints; any balancer may honour them).
 *
 * @module
 */
import { type ContextKey, contextKey } from '@grpc-tower/core';

/**
 * A hint for balancers: addresses this call should avoid when another ready
 * endpoint exists. Retry layers set it to the endpoints that already failed
 * the call; hedging sets it to the endpoints already tried.
 *
 * @example
 * ```ts
 * const next = ctx.withValue(AvoidEndpoints, new Set(['127.0.0.2:50051']));
 * ```
 */
export const AvoidEndpoints: ContextKey<ReadonlySet<string>> = contextKey<ReadonlySet<string>>(
  'grpc-tower.avoid-endpoints',
);

/**
 * A callback through which a balancer reports the endpoint it picked for an
 * attempt, just before sending it there. Hedging uses it to keep a hedge off
 * endpoints where earlier hedges of the same call are still running (a
 * failure names its endpoint, an attempt in flight does not). A balancer
 * that does not call it still works; hedges then avoid only endpoints that
 * already failed.
 *
 * @example
 * ```ts
 * // in a balancer's call():
 * const ep = pick(ctx.get(AvoidEndpoints));
 * ctx.get(EndpointPicked)?.(ep.address);
 * return ep.call(req, ctx);
 * ```
 */
export const EndpointPicked: ContextKey<(address: string) => void> = contextKey<(address: string) => void>(
  'grpc-tower.endpoint-picked',
);
