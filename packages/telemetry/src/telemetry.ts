/**
 * `telemetry()`: OpenTelemetry metrics and traces for grpc-tower stacks,
 * through `@opentelemetry/api` only. The application registers an SDK (or
 * passes providers); without one, the API's no-op providers are found when
 * a stack is instrumented, and its layers are then the inner service
 * itself: no span, no clock read, no label lookup per call.
 *
 * @module
 */
import { ConfigError, type Layer } from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import { discoveryEventsOf } from '@grpc-tower/core/internal';
import {
  type MeterProvider,
  ProxyTracerProvider,
  type TextMapPropagator,
  type TracerProvider,
  createNoopMeter,
  metrics,
  propagation,
  trace,
} from '@opentelemetry/api';
import type { Observable } from 'rxjs';
import { type CallInstruments, type Tracing, attemptsLayer, callInstruments, callsLayer } from './calls.js';
import { LabelCache } from './labels.js';
import { type CallMetricsProducer, producerInstruments } from './producer.js';
import { SCOPE_NAME, SCOPE_VERSION } from './names.js';
import {
  type ObservedBalancer,
  type ObservedDiscoveryEvent,
  type ObservedEndpoint,
  type ObservedHealthEvent,
  type ObservedRetry,
  PartsObserver,
} from './observe.js';

const WHERE = 'telemetry';

/**
 * Options of {@link telemetry}.
 *
 * @example
 * ```ts
 * const options: TelemetryOptions = { tracing: false, allMethods: true };
 * ```
 */
export interface TelemetryOptions {
  /** Where metrics go. Default: the global provider (`metrics.setGlobalMeterProvider`, or an SDK that registers itself). */
  readonly meterProvider?: MeterProvider;
  /** Where spans go. Default: the global provider (`trace.setGlobalTracerProvider`). */
  readonly tracerProvider?: TracerProvider;
  /**
   * How an attempt's trace context is written into its metadata. Default:
   * the global propagator (`propagation.setGlobalPropagator`; the SDK's
   * W3C `traceparent` one when the application registers it).
   */
  readonly propagator?: Pick<TextMapPropagator, 'inject'>;
  /** Record metrics; default `true`. */
  readonly metrics?: boolean;
  /**
   * Aggregate the per-call metrics (A66's and A96's) in this process, in
   * this producer, instead of through the Meter API: on the bench, about
   * 5 µs of client CPU per call instead of about 13. Give the same producer to the metric reader
   * (`new PrometheusExporter({ metricProducers: [callMetrics] })`). The
   * other metrics still go through the meter provider. Points are
   * cumulative. Default: none (everything through the meter provider).
   */
  readonly callMetrics?: CallMetricsProducer;
  /** Record spans; default `true`. */
  readonly tracing?: boolean;
  /**
   * Label every method with its name. By default a method the channel was
   * not told about (no service definitions) is labelled `other`, gRFC A66's
   * rule against unbounded label values; span names always carry the method.
   */
  readonly allMethods?: boolean;
}

/**
 * The parts of a stack whose metrics {@link Instrumentation.observe} reads;
 * each is optional.
 *
 * @example
 * ```ts
 * instrumentation.observe({ balancer, health: checker.events$, outlier: detector.events$, discovery: source, retry: layer });
 * ```
 */
export interface ObservedParts {
  /** The balancer: per-endpoint state, calls in flight, load, picks, failures; waiting calls; panic mode. */
  readonly balancer?: ObservedBalancer;
  /** A health checker's `events$`: health transitions. */
  readonly health?: Observable<ObservedHealthEvent>;
  /** An outlier detector's `events$`: ejections, enforced or not. */
  readonly outlier?: Observable<ObservedHealthEvent>;
  /** A discovery source (its `events$`, when it has one): resolutions, failures, endpoints known. */
  readonly discovery?: unknown;
  /** A retry or hedging layer: its budget's level. */
  readonly retry?: ObservedRetry;
}

/**
 * The telemetry of one stack (one `grpc.target`).
 *
 * @example
 * ```ts
 * const t = telemetry().instrument('dns:///orders:50051');
 * const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
 *   .layer(t.calls)
 *   .layer(retry())
 *   .layer(t.attempts)
 *   .service(balancer);
 * t.observe({ balancer });
 * // when the stack closes:
 * t.close();
 * ```
 */
export interface Instrumentation {
  /** The target every metric of this stack is labelled with. */
  readonly target: string;
  /** Whether metrics and spans are recorded (an SDK or provider was found). */
  readonly enabled: { readonly metrics: boolean; readonly tracing: boolean };
  /** The outermost layer (one run per call): call duration, A96's retry counts, the call span. */
  readonly calls: Layer<GrpcRequest, GrpcResponse>;
  /**
   * The layer just above the balancer (one run per attempt): A66's attempt
   * metrics, the attempt span, `traceparent` in the attempt's metadata.
   */
  readonly attempts: Layer<GrpcRequest, GrpcResponse>;
  /** Follows an endpoint's connection (A94's metrics); returns it. Pass the endpoint before health gating. */
  endpoint<E extends ObservedEndpoint>(endpoint: E): E;
  /** Reads the metrics of the stack's other parts. */
  observe(parts: ObservedParts): void;
  /** Stops the collection callbacks and the subscriptions (call it after the stack closed). */
  close(): void;
}

/**
 * Makes {@link Instrumentation}s, one per stack; give it to `towerChannel`'s
 * `telemetry` option, or call {@link Telemetry.instrument} for a stack of
 * your own.
 */
export interface Telemetry {
  /** The telemetry of a stack whose calls go to `target` (its `grpc.target` label). */
  instrument(target: string): Instrumentation;
}

const noopMeterClass = createNoopMeter().constructor;
const noopTracerProvider = new ProxyTracerProvider().getDelegate();

/** Whether `provider` is the API's no-op (no SDK registered). */
const isNoopTracerProvider = (provider: TracerProvider): boolean => {
  const delegate = provider instanceof ProxyTracerProvider ? provider.getDelegate() : provider;
  return delegate === noopTracerProvider || delegate.constructor === noopTracerProvider.constructor;
};

const identity: Layer<GrpcRequest, GrpcResponse> = (inner) => inner;

function checkOptions(options: unknown): TelemetryOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(WHERE, 'options', options, 'an object');
  }
  const o = options as Record<string, unknown>;
  for (const flag of ['metrics', 'tracing', 'allMethods']) {
    if (o[flag] !== undefined && typeof o[flag] !== 'boolean') {
      throw new ConfigError(WHERE, flag, o[flag], 'true or false');
    }
  }
  const has = (name: string, method: string): void => {
    const v = o[name];
    if (
      v !== undefined &&
      (typeof v !== 'object' || v === null || typeof (v as Record<string, unknown>)[method] !== 'function')
    ) {
      throw new ConfigError(WHERE, name, v, `an object with ${method}()`);
    }
  };
  has('meterProvider', 'getMeter');
  has('tracerProvider', 'getTracer');
  has('propagator', 'inject');
  if (o.callMetrics !== undefined && producerInstruments(o.callMetrics) === undefined) {
    throw new ConfigError(WHERE, 'callMetrics', o.callMetrics, 'a producer made by callMetricsProducer()');
  }
  return o as TelemetryOptions;
}

/**
 * OpenTelemetry metrics (gRPC's names: A66, A96, A94, A91; the balancer's,
 * health checks' and discovery's under `grpc_tower.`) and traces (a span
 * per call, a child span per attempt, W3C trace context in each attempt's
 * metadata) for grpc-tower stacks.
 *
 * Providers are looked up when a stack is instrumented: register the SDK
 * before creating the channel. A stack instrumented while none is
 * registered records nothing, at no cost per call.
 *
 * @throws ConfigError naming a bad option.
 *
 * @example
 * ```ts
 * import { telemetry } from '@grpc-tower/telemetry';
 * const channel = towerChannel('dns:///orders:50051', creds, { telemetry: telemetry() });
 * ```
 */
export function telemetry(options?: TelemetryOptions): Telemetry {
  const o = checkOptions(options);
  return {
    instrument(target: string): Instrumentation {
      if (typeof target !== 'string' || target === '') {
        throw new ConfigError(
          `${WHERE}.instrument`,
          'target',
          target,
          'the target name, such as dns:///orders:50051',
        );
      }
      return instrument(target, o);
    },
  };
}

function instrument(target: string, o: TelemetryOptions): Instrumentation {
  let meters: CallInstruments | undefined;
  let observer: PartsObserver | undefined;
  if (o.metrics !== false) {
    const meter = (o.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE_NAME, SCOPE_VERSION);
    if (meter.constructor !== noopMeterClass) {
      meters = o.callMetrics === undefined ? callInstruments(meter) : undefined;
      observer = new PartsObserver(meter, target);
    }
    if (o.callMetrics !== undefined) meters = producerInstruments(o.callMetrics);
  }
  let tracing: Tracing | undefined;
  if (o.tracing !== false) {
    const provider = o.tracerProvider ?? trace.getTracerProvider();
    if (!isNoopTracerProvider(provider)) {
      tracing = {
        tracer: provider.getTracer(SCOPE_NAME, SCOPE_VERSION),
        propagator: o.propagator ?? propagation,
      };
    }
  }
  const on = meters !== undefined || tracing !== undefined;
  const labels = new LabelCache(target, o.allMethods === true);
  return {
    target,
    enabled: { metrics: meters !== undefined || observer !== undefined, tracing: tracing !== undefined },
    calls: on ? callsLayer(labels, meters, tracing) : identity,
    attempts: on ? attemptsLayer(labels, meters, tracing) : identity,
    endpoint(endpoint) {
      observer?.endpoint(endpoint);
      return endpoint;
    },
    observe(parts) {
      if (observer === undefined) return;
      if (parts.balancer !== undefined) observer.balancer(parts.balancer);
      if (parts.retry !== undefined) observer.retry(parts.retry);
      if (parts.health !== undefined) observer.health(parts.health);
      if (parts.outlier !== undefined) observer.health(parts.outlier);
      const events = parts.discovery === undefined ? undefined : discoveryEventsOf(parts.discovery);
      if (events !== undefined) observer.discovery(events as Observable<ObservedDiscoveryEvent>);
    },
    close() {
      observer?.close();
    },
  };
}
