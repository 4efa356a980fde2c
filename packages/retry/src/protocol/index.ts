/**
 * The protocols of the retry layer: what it asks of one (core's `Protocol`),
 * gRPC A6's rules (core's `grpcProtocol`, what `retry()` uses) and HTTP's
 * ({@link httpRetry}, over core's `httpProtocol()`).
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
