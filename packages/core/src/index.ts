/**
 * `@grpc-tower/core`: the {@link Service} and {@link Layer} model, the
 * {@link ServiceBuilder}, per-call contexts with AbortSignal and deadline,
 * named errors, and the {@link Endpoint} contract that balancers use.
 *
 * The grpc-js `ChannelInterface` lives in the `@grpc-tower/core/grpc`
 * subpath, the `node:http2` endpoint in `@grpc-tower/core/http2`.
 *
 * @example
 * ```ts
 * import { ServiceBuilder, serviceFn, background } from '@grpc-tower/core';
 * const svc = new ServiceBuilder().service(serviceFn(async (s: string) => s.length));
 * await svc.call('four', background); // 4
 * ```
 * @packageDocumentation
 */
export { Status, statusName, parseStatus, type StatusCode, type StatusName } from './status.js';
export {
  GrpcTowerError,
  DeadlineExceededError,
  CancelledError,
  ClosedError,
  GraceExpiredError,
  OverloadedError,
  ResourceExhaustedError,
  UnavailableError,
  ConfigError,
  toGrpcTowerError,
  type Delivery,
  type ErrorOptions,
} from './errors.js';
export {
  CallContext,
  background,
  contextKey,
  newContext,
  withDeadline,
  withTimeout,
  linkedScope,
  abortReason,
  sleep,
  raceSignal,
  type ContextKey,
  type Scope,
} from './context/index.js';
export {
  ServiceBuilder,
  serviceFn,
  mapRequest,
  mapResponse,
  mapError,
  filter,
  type Service,
  type Layer,
  type Unset,
} from './service.js';
export {
  FailedResponseError,
  neverReachedServer,
  type Protocol,
  type Pushback,
  type ResponseStatus,
  type FailureOrigin,
  type RetryableCodes,
} from './protocol.js';
export { DelegatingEndpoint, type Endpoint, type Readiness } from './endpoint.js';
export type { Change, Discover, EndpointMetadata, Insert, Remove } from './discover.js';
export {
  parseAddress,
  tryParseAddress,
  formatAddress,
  isHost,
  isHostName,
  isPort,
  isServiceName,
  type HostPort,
} from './address.js';
export type { Stack, Lifecycle, CloseOptions } from './stack.js';
export {
  timeout,
  attemptTimeout,
  AttemptTimeoutError,
  concurrencyLimit,
  loadShed,
  rateLimit,
  RateLimitedError,
  type TimeoutOptions,
  type AttemptTimeoutOptions,
  type ConcurrencyLimitOptions,
  type LoadShedOptions,
  type RateLimitOptions,
} from './layers/index.js';
export type { ConnectionEvent, ConnectionState } from './transport/connection.js';
