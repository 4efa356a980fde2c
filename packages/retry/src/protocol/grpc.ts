/**
 * The gRPC A6 judgements of the retry layer: the call is named by its
 * method, attempt n carries `grpc-previous-rpc-attempts` (the endpoint
 * writes it from `GrpcRequest.attempt`), the replay buffer of the call's
 * messages decides whether it can be sent again, unary and
 * client-streaming responses are whole (held until their status) while
 * streams commit at their headers, the retryable status codes come from
 * the policy, `grpc-retry-pushback-ms` is the server's pushback, and a
 * response that arrived is never a failure (the endpoint rejects with the
 * status before the commit point).
 *
 * @module
 */
import { type GrpcTowerError, Status } from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import { attemptRequest } from '../retry/attempt.js';
import { readPushback } from '../retry/backoff.js';
import { neverReachedServer } from '../retry/errors.js';
import type { ResolvedRetrySettings } from '../retry/policy.js';
import type { RetryProtocol } from './protocol.js';

/**
 * The protocol of {@link retry}: gRPC A6.
 *
 * @example
 * ```ts
 * const layer = retryWith(grpcRetryProtocol, { maxAttempts: 3 }); // the same as retry({ maxAttempts: 3 })
 * ```
 */
export const grpcRetryProtocol: RetryProtocol<GrpcRequest, GrpcResponse> = Object.freeze({
  name: 'grpc',
  method: (req: GrpcRequest) => req.method,
  attemptOf: (req: GrpcRequest) => req.attempt,
  attempt: attemptRequest,
  replayable: (req: GrpcRequest) => req.messages.replayable,
  wholeResponse: (req: GrpcRequest) => req.kind === 'unary' || req.kind === 'clientStream',
  failureOf: () => undefined,
  retryable: (error: GrpcTowerError, _req: GrpcRequest, settings: ResolvedRetrySettings, timedOut: boolean) =>
    settings.retryableStatusCodes.has(error.code) || timedOut,
  pushback: readPushback,
  neverReachedServer,
  whenDone(res: GrpcResponse, done: (ok: boolean) => void): void {
    if (res.unary !== undefined) done(res.unary.status.code === Status.OK);
    else void res.done.then((status) => done(status.code === Status.OK));
  },
  abandon(res: GrpcResponse): void {
    if (res.unary === undefined) res.stream.cancel(Status.CANCELLED, 'attempt abandoned');
  },
  endpointOf: (res: GrpcResponse) => res.endpoint,
});
