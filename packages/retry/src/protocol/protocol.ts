/**
 * What the retry and hedging layers ask of a protocol. The attempt loop
 * (backoff, budget, deadline, avoiding failed endpoints, transparent
 * re-sends) is the same for every protocol; what differs is a handful of
 * judgements, which the protocol of the endpoint kind makes: core's
 * `Protocol`, defined once next to its endpoint (`grpcProtocol` in
 * `@grpc-tower/core/grpc`, `httpProtocol` in `@grpc-tower/core/http2`)
 * and read by outlier detection and telemetry too. {@link RetryProtocol}
 * is that same object, under the name these layers have always used.
 *
 * @module
 */
import type { Protocol } from '@grpc-tower/core';

export { FailedResponseError } from '@grpc-tower/core';
export type { Protocol } from '@grpc-tower/core';

/**
 * The judgements the retry layer leaves to a protocol: core's `Protocol`
 * (what the call is called, how a request is re-sent, whether it can be,
 * where the commit point is, which failures may be retried, what the
 * server's pushback says, whether an answer that arrived is in fact a
 * failure, whether an attempt reached the server).
 *
 * @example
 * ```ts
 * const layer = retryWith(httpRetryProtocol(), compileHttpRetryPolicy({ maxAttempts: 3 }));
 * const same: RetryProtocol<GrpcRequest, GrpcResponse> = grpcProtocol;
 * ```
 */
export type RetryProtocol<Req, Res> = Protocol<Req, Res>;
