/**
 * `@grpc-tower/telemetry`: OpenTelemetry metrics with gRPC's own names and
 * traces per call and attempt, for the one-call channel
 * (`towerChannel(target, creds, { telemetry: telemetry() })`), the undici
 * dispatcher (`towerDispatcher(origin, { telemetry: telemetry() })`, with
 * OpenTelemetry's HTTP client conventions per request) and, layer by
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
export type {
  ObservedBalancer,
  ObservedEndpoint,
  ObservedEndpointStats,
  ObservedHealthEvent,
  ObservedDiscoveryEvent,
  ObservedRetry,
} from './observe.js';
export { callMetricsProducer, type CallMetricsProducer } from './producer.js';
export { MetricNames, Labels, HttpLabels, LATENCY_BUCKETS_S, SIZE_BUCKETS_BY } from './names.js';
