/**
 * The gRPC A6 judgements of the retry layer: core's `grpcProtocol`,
 * defined next to the gRPC endpoints, under the name the retry layer has
 * always given it.
 *
 * @module
 */
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import { grpcProtocol } from '@grpc-tower/core/grpc';
import type { Protocol } from './protocol.js';

/**
 * The protocol of {@link retry}: gRPC A6 (`grpcProtocol` of
 * `@grpc-tower/core/grpc`, the same object).
 *
 * @example
 * ```ts
 * const layer = retryWith(grpcRetryProtocol, compileRetryPolicy({ maxAttempts: 3 })); // the same as retry({ maxAttempts: 3 })
 * ```
 */
export const grpcRetryProtocol: Protocol<GrpcRequest, GrpcResponse> = grpcProtocol;
