/**
 * What the retry and hedging layers ask of a protocol. The attempt loop
 * (backoff, budget, deadline, avoiding failed endpoints, transparent
 * re-sends) is the same for every protocol; what differs is a handful of
 * judgements, which the protocol of the endpoint kind makes: core's
 * `Protocol`, defined once next to its endpoint (`grpcProtocol` in
 * `@grpc-tower/core/grpc`, `httpProtocol` in `@grpc-tower/core/http2`)
 * and read by outlier detection and telemetry too; the layers here take it
 * as it is.
 *
 * @module
 */
import type { Protocol } from '@grpc-tower/core';

export { FailedResponseError } from '@grpc-tower/core';
export type { Protocol } from '@grpc-tower/core';
