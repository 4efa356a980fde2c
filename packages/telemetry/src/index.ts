/**
 * `@grpc-tower/telemetry`: OpenTelemetry metrics with gRPC's own names and
 * traces per call and attempt, for the one-call channel
 * (`towerChannel(target, creds, { telemetry: telemetry() })`) and, layer by
 * layer, for stacks of your own.
 *
 * @packageDocumentation
 */
export {
  telemetry,
  type Telemetry,
  type TelemetryOptions,
  type Instrumentation,
  type ObservedParts,
} from './telemetry.js';
export { callMetricsProducer, type CallMetricsProducer } from './producer.js';
export type {
  ObservedBalancer,
  ObservedEndpoint,
  ObservedEndpointStats,
  ObservedHealthEvent,
  ObservedDiscoveryEvent,
  ObservedRetry,
} from './observe.js';
export { MetricNames, Labels, LATENCY_BUCKETS_S, SIZE_BUCKETS_BY, COUNT_BUCKETS } from './names.js';
