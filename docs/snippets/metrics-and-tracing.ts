// Snippets of docs/guides/metrics-and-tracing.md.
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import { ServiceBuilder, timeout } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { connect, dns } from '@grpc-tower/discover';
import { healthChecked, outlierDetection } from '@grpc-tower/health';
import { retry, retryBudget } from '@grpc-tower/retry';
import { callMetricsProducer, telemetry } from '@grpc-tower/telemetry';
import { SpanKind, type TextMapGetter, context, metrics, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, type SpanExporter, TracerProvider } from '@opentelemetry/sdk-trace';
import { towerChannel } from 'grpc-tower';
import { type TowerDispatcher, towerDispatcher } from 'grpc-tower/undici';

declare const OrdersService: grpc.ServiceDefinition;

// #region prometheus
export function startMetrics(): MeterProvider {
  // a pull reader: serves http://<host>:9464/metrics and collects when Prometheus scrapes it
  const exporter = new PrometheusExporter({ port: 9464 });
  const meterProvider = new MeterProvider({ readers: [exporter] });
  metrics.setGlobalMeterProvider(meterProvider);
  return meterProvider;
}
// #endregion prometheus

// #region producer
export function startCheapMetrics(): ReturnType<typeof callMetricsProducer> {
  // the per-call metrics aggregated by the package, read by the same exporter as the rest
  const callMetrics = callMetricsProducer();
  const exporter = new PrometheusExporter({ port: 9464, metricProducers: [callMetrics] });
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [exporter] }));
  return callMetrics;
}

export function cheapChannel(): grpc.ChannelInterface {
  const callMetrics = startCheapMetrics();
  return towerChannel('dns:///orders.internal:50051', grpc.credentials.createInsecure(), {
    services: [OrdersService],
    telemetry: telemetry({ callMetrics }),
  });
}
// #endregion producer

// #region tracing
export function startTracing(spanExporter: SpanExporter): TracerProvider {
  // spanExporter: OTLP, Zipkin, the console… any SpanExporter; the batch processor exports off the call path
  const tracerProvider = new TracerProvider({
    spanProcessors: [new BatchSpanProcessor({ exporter: spanExporter })],
  });
  trace.setGlobalTracerProvider(tracerProvider);
  // writes `traceparent` into each attempt's metadata; with no propagator registered nothing is sent
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return tracerProvider;
}
// #endregion tracing

export function oneLine(spanExporter: SpanExporter): grpc.ChannelInterface {
  // #region one-line
  // the SDK first: the channel looks its providers up when it is built, not per call
  startMetrics();
  startTracing(spanExporter);
  const channel = towerChannel('dns:///orders.internal:50051', grpc.credentials.createInsecure(), {
    services: [OrdersService], // the methods the channel knows; any other is grpc.method="other"
    telemetry: telemetry(),
  });
  // #endregion one-line
  return channel;
}

export function dispatcher(): TowerDispatcher {
  // #region dispatcher
  // the same telemetry() for an undici dispatcher: OpenTelemetry's HTTP client conventions per request
  const items = towerDispatcher('http://items.internal:8080', { telemetry: telemetry() });
  // #endregion dispatcher
  return items;
}

export function options(meterProvider: MeterProvider, tracerProvider: TracerProvider): void {
  // #region options
  const own = telemetry({
    meterProvider, // instead of the global providers: where the metrics…
    tracerProvider, // …and the spans go
    propagator: new W3CTraceContextPropagator(), // instead of the global propagator
  });
  const metricsOnly = telemetry({ tracing: false }); // or { metrics: false } for spans only
  // every method by its name in grpc.method, also those the channel was not told about:
  // only for a client whose set of method names is bounded
  const named = telemetry({ allMethods: true });
  // #endregion options
  void [own, metricsOnly, named];
}

export async function customStack(): Promise<void> {
  // #region custom-stack
  const credentials = grpc.credentials.createInsecure();
  const t = telemetry().instrument('dns:///orders.internal:50051'); // its grpc.target label
  if (!t.enabled.metrics) console.warn('no OpenTelemetry SDK registered yet: this stack records no metrics');
  const source = dns('orders.internal', 50051);
  const health = healthChecked();
  const outliers = outlierDetection();
  const endpoints = connect(source, (addr) =>
    // t.endpoint() follows the connection itself: the raw endpoint, inside the health check
    outliers.wrap(health(t.endpoint(grpcEndpoint(addr.address, { credentials })))),
  );
  const balancer = p2c(endpoints, { target: t.target });
  const retries = retry({ maxAttempts: 3, budget: retryBudget() });
  t.observe({
    balancer, // endpoint states, calls in flight, load, latency estimates, picks, failures
    health: health.events$, // health transitions
    outlier: outliers.events$, // ejections, enforced or not
    discovery: source, // resolutions, failures, endpoints found
    retry: retries, // the budget's level
  });
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(t.calls) // outermost: once per call (call duration, A96 retry counts, the call span)
    .layer(timeout({ ms: 2_000 }))
    .layer(retries)
    .layer(t.attempts) // just above the balancer: once per attempt (A66 attempt metrics, attempt spans)
    .service(balancer);
  const channel = createChannel(stack, { target: t.target, services: [OrdersService] });
  // #endregion custom-stack

  // #region close
  // on shutdown: the channel (and so the stack) first, then the telemetry's callbacks and subscriptions
  await channel.closeAsync();
  t.close();
  // #endregion close
}

export function server(lookUp: (request: unknown) => unknown): grpc.handleUnaryCall<unknown, unknown> {
  // #region server
  // a grpc-js server continuing the client's trace: the parent comes from the call's metadata
  const fromMetadata: TextMapGetter<grpc.Metadata> = {
    keys: (metadata) => Object.keys(metadata.getMap()),
    get: (metadata, key) => metadata.get(key).map(String),
  };
  const tracer = trace.getTracer('orders-server');
  const getOrder: grpc.handleUnaryCall<unknown, unknown> = (call, callback) => {
    const parent = propagation.extract(context.active(), call.metadata, fromMetadata);
    tracer.startActiveSpan('shop.Orders/GetOrder', { kind: SpanKind.SERVER }, parent, (span) => {
      callback(null, lookUp(call.request));
      span.end();
    });
  };
  // #endregion server
  return getOrder;
}
