/**
 * `@grpc-tower/health`: keeps unhealthy servers out of rotation, and brings
 * them back when they recover.
 *
 * - {@link healthChecked}: active checking with the standard
 *   `grpc.health.v1` service (Watch stream per connection, or Check
 *   polling), following gRPC A17;
 * - {@link httpHealthChecked}: active checking of HTTP/2 endpoints with
 *   `GET <path>` every interval, following Envoy's HTTP health checker;
 * - {@link outlierDetection}: passive ejection from call results
 *   (consecutive failures, success rate, failure percentage), following
 *   Envoy and gRPC A50, never ejecting more than a share of the set; for
 *   HTTP/2 endpoints with `httpProtocol()` from `@grpc-tower/core/http2` (5xx responses
 *   and failed connections fail, 4xx never do);
 * - {@link slowStart}: the weight of a warming endpoint, for a balancer's
 *   slow start (`p2c`'s `slowStart` option).
 *
 * The wrappers gate an endpoint's readiness (`failed` while unhealthy or
 * ejected), so any balancer that picks only ready endpoints — `p2c` from
 * `@grpc-tower/balance` — honours them without knowing they exist.
 *
 * @example
 * ```ts
 * import * as grpc from '@grpc/grpc-js';
 * import { healthChecked, outlierDetection } from '@grpc-tower/health';
 * import { connect, dns } from '@grpc-tower/discover';
 * import { grpcEndpoint } from '@grpc-tower/core/grpc';
 * import { p2c } from '@grpc-tower/balance';
 *
 * const health = healthChecked();
 * const detector = outlierDetection();
 * const endpoints = connect(dns('orders.internal', 50051), (a) =>
 *   detector.wrap(health(grpcEndpoint(a.address, { credentials: grpc.credentials.createInsecure() }))),
 * );
 * const balancer = p2c(endpoints, { target: 'dns:orders.internal:50051' });
 * merge(health.events$, detector.events$).subscribe((e) => console.log(e));
 * ```
 * @packageDocumentation
 */
export { HealthGatedEndpoint } from './health-check/gated.js';
export {
  healthChecked,
  HealthCheckedEndpoint,
  type HealthChecker,
} from './health-check/endpoint.js';
export type {
  HealthCheckOptions,
  HealthCheckMode,
  HealthBackoffOptions,
  ResolvedHealthCheckOptions,
} from './health-check/options.js';
export {
  httpHealthChecked,
  HttpHealthCheckedEndpoint,
  type HttpHealthChecker,
} from './http-check/endpoint.js';
export type {
  HttpHealthCheckOptions,
  HttpStatusRange,
  ResolvedHttpHealthCheckOptions,
} from './http-check/options.js';
export type { ServingStatus } from './health-check/proto.js';
export {
  outlierDetection,
  OutlierDetector,
  OutlierEndpoint,
  type OutlierStats,
  type OutlierEndpointStats,
} from './outlier/detector.js';
export type { OutlierProtocol, ResponseFailure } from './outlier/protocol.js';
export type {
  OutlierDetectionOptions,
  SuccessRateEjectionOptions,
  FailurePercentageEjectionOptions,
  ResolvedOutlierDetectionOptions,
} from './outlier/options.js';
export { slowStart, type SlowStartOptions } from './pick/slow-start.js';
export type {
  HealthEvent,
  HealthState,
  HealthTransition,
  HealthUnimplemented,
  EndpointEjected,
  EjectionUnenforced,
  EndpointReturned,
  EjectionAlgorithm,
} from './events.js';
