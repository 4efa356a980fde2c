/**
 * The names, units, labels and histogram buckets of every metric the
 * package records, in one place so that the guide, the tests and the code
 * agree. Per-call names and buckets are gRPC's (gRFC A66, A96), and for
 * HTTP/2 stacks OpenTelemetry's HTTP client conventions'; connection
 * names are A94's subchannel metrics, ejections A91's; the balancer's,
 * the health checker's and discovery's have the `grpc_tower.` prefix,
 * since gRPC defines none for them.
 *
 * @module
 */

/** The instrumentation scope of the meter and the tracer. */
export const SCOPE_NAME = '@grpc-tower/telemetry';
/** The package version, as the instrumentation scope reports it. */
export const SCOPE_VERSION = '0.1.0';

/**
 * Every metric name, by what it measures.
 *
 * @example
 * ```ts
 * const started = reader.find(MetricNames.attemptStarted);
 * ```
 */
export const MetricNames = {
  // gRFC A66: per attempt and per call
  attemptStarted: 'grpc.client.attempt.started',
  attemptDuration: 'grpc.client.attempt.duration',
  attemptSentSize: 'grpc.client.attempt.sent_total_compressed_message_size',
  attemptRcvdSize: 'grpc.client.attempt.rcvd_total_compressed_message_size',
  callDuration: 'grpc.client.call.duration',
  // gRFC A96: retries per call
  callRetries: 'grpc.client.call.retries',
  callTransparentRetries: 'grpc.client.call.transparent_retries',
  callHedges: 'grpc.client.call.hedges',
  callRetryDelay: 'grpc.client.call.retry_delay',
  // gRFC A94: connections of an endpoint
  connectionAttemptsSucceeded: 'grpc.subchannel.connection_attempts_succeeded',
  connectionAttemptsFailed: 'grpc.subchannel.connection_attempts_failed',
  disconnections: 'grpc.subchannel.disconnections',
  openConnections: 'grpc.subchannel.open_connections',
  // gRFC A91: outlier detection
  ejectionsEnforced: 'grpc.lb.outlier_detection.ejections_enforced',
  ejectionsUnenforced: 'grpc.lb.outlier_detection.ejections_unenforced',
  // the balancer and its endpoints
  endpointState: 'grpc_tower.lb.endpoint.state',
  endpointCallsInFlight: 'grpc_tower.lb.endpoint.calls_in_flight',
  endpointLoad: 'grpc_tower.lb.endpoint.load',
  endpointLatencyEstimate: 'grpc_tower.lb.endpoint.latency_estimate',
  endpointPicks: 'grpc_tower.lb.endpoint.picks',
  endpointFailures: 'grpc_tower.lb.endpoint.failures',
  callsWaiting: 'grpc_tower.lb.calls_waiting',
  panic: 'grpc_tower.lb.panic',
  retryBudgetLevel: 'grpc_tower.retry.budget_level',
  // health checks
  healthTransitions: 'grpc_tower.health.transitions',
  // discovery
  discoveryResolutions: 'grpc_tower.discovery.resolutions',
  discoveryFailures: 'grpc_tower.discovery.failures',
  discoveryEndpoints: 'grpc_tower.discovery.endpoints',
  // OpenTelemetry's HTTP client conventions: one point per HTTP request sent (an attempt)
  httpRequestDuration: 'http.client.request.duration',
} as const;

/**
 * Every label (attribute) name.
 *
 * @example
 * ```ts
 * point.attributes[Labels.method]; // 'pkg.Echo/Unary'
 * ```
 */
export const Labels = {
  method: 'grpc.method',
  target: 'grpc.target',
  status: 'grpc.status',
  disconnectError: 'grpc.disconnect_error',
  detectionMethod: 'grpc.lb.outlier_detection.detection_method',
  unenforcedReason: 'grpc.lb.outlier_detection.unenforced_reason',
  endpoint: 'grpc_tower.endpoint',
  endpointState: 'grpc_tower.endpoint.state',
  healthState: 'grpc_tower.health.state',
  source: 'grpc_tower.discovery.source',
} as const;

/**
 * The attribute names of an HTTP/2 stack's requests (OpenTelemetry's HTTP
 * client conventions).
 *
 * @example
 * ```ts
 * point.attributes[HttpLabels.statusCode]; // 503
 * ```
 */
export const HttpLabels = {
  method: 'http.request.method',
  statusCode: 'http.response.status_code',
  errorType: 'error.type',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  urlScheme: 'url.scheme',
  urlFull: 'url.full',
  resendCount: 'http.request.resend_count',
  peerAddress: 'network.peer.address',
  peerPort: 'network.peer.port',
} as const;

/** The buckets OpenTelemetry's conventions advise for `http.client.request.duration`, in seconds: 5 ms to 10 s. */
export const HTTP_DURATION_BUCKETS_S: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];

/**
 * A66's latency buckets, in seconds: 0, 10 µs, 50 µs, 100 µs, 300 µs, 600 µs,
 * 800 µs, 1 ms, 2 ms … 100 s.
 */
export const LATENCY_BUCKETS_S: readonly number[] = [
  0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01,
  0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65,
  0.8, 1, 2, 5, 10, 20, 50, 100,
];

/** A66's size buckets, in bytes: 0, 1 KiB, 2 KiB, 4 KiB, 16 KiB, 64 KiB … 4 GiB. */
export const SIZE_BUCKETS_BY: readonly number[] = [
  0, 1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456, 1073741824,
  4294967296,
];

/** A96's buckets of retry counts: 1 to 5 (the most attempts A6 allows). */
export const COUNT_BUCKETS: readonly number[] = [1, 2, 3, 4, 5];
