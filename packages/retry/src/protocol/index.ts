/**
 * The protocols of the retry layer: what it asks of one ({@link RetryProtocol}),
 * gRPC A6's rules ({@link grpcRetryProtocol}, what `retry()` uses) and HTTP's
 * ({@link httpRetry}, {@link httpRetryProtocol}).
 *
 * @module
 */
export { FailedResponseError, type Protocol } from './protocol.js';
export { grpcRetryProtocol } from './grpc.js';
export {
  httpRetry,
  httpRetryProtocol,
  compileHttpRetryPolicy,
  httpHedge,
  httpHedgeRules,
  type HttpRetryPolicy,
  type HttpHedgePolicy,
} from './http.js';
