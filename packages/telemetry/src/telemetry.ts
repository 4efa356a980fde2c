/**
 * `telemetry()`: OpenTelemetry metrics and traces for grpc-tower stacks,
 * through `@opentelemetry/api` only. The application registers an SDK (or
 * passes providers); without one, the API's no-op providers are found when
 * a stack is instrumented, and its layers are then the inner service
 * itself: no span, no clock read, no label lookup per call.
 *
 * @module
 */
import { ConfigError, type Layer, type Service } from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import type { Http2Request, Http2Response } from '@grpc-tower/core/http2';
import { discoveryEventsOf } from '@grpc-tower/core/internal';
import {
  type Meter,
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
import { type Tracing, attemptsLayer, callInstruments, callsLayer } from './calls.js';
import { httpLayers } from './http.js';
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
 * The telemetry of one stack (one `grpc.target`, or one origin): a gRPC
 * stack's by default, an HTTP/2 stack's from {@link Telemetry.instrumentHttp}.
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
export interface Instrumentation<Req = GrpcRequest, Res = GrpcResponse> {
  /** The target every metric of this stack is labelled with. */
  readonly target: string;
  /** Whether metrics and spans are recorded (an SDK or provider was found). */
  readonly enabled: { readonly metrics: boolean; readonly tracing: boolean };
  /**
   * The outermost layer (one run per call). gRPC: call duration, A96's
   * retry counts, the call span. HTTP: the context and retry counts the
   * attempts' spans read.
   */
  readonly calls: Layer<Req, Res>;
  /**
   * The layer just above the balancer (one run per attempt). gRPC: A66's
   * attempt metrics, the attempt span, `traceparent` in the attempt's
   * metadata. HTTP: `http.client.request.duration`, a client span,
   * `traceparent` in the request's headers.
   */
  readonly attempts: Layer<Req, Res>;
  /** Follows an endpoint's connection (A94's metrics); returns it. Pass the endpoint before health gating. */
  endpoint<E extends ObservedEndpoint>(endpoint: E): E;
  /** Reads the metrics of the stack's other parts. */
  observe(parts: ObservedParts): void;
  /** Stops the collection callbacks and the subscriptions (call it after the stack closed). */
  close(): void;
}

/**
 * Makes {@link Instrumentation}s, one per stack; give it to `towerChannel`'s
 * or `towerDispatcher`'s `telemetry` option, or call
 * {@link Telemetry.instrument} for a stack of your own.
 *
 * @example
 * ```ts
 * const t: Telemetry = telemetry();
 * const channel = towerChannel('dns:///orders:50051', creds, { telemetry: t });
 * const dispatcher = towerDispatcher('http://orders:8080', { telemetry: t });
 * ```
 */
export interface Telemetry {
  /** The telemetry of a gRPC stack whose calls go to `target` (its `grpc.target` label). */
  instrument(target: string): Instrumentation;
  /**
   * The telemetry of an HTTP/2 stack (`http2Endpoint`s) whose requests go
   * to `origin` (`http://orders.internal:8080`: its `server.address`,
   * `server.port` and `url.scheme` labels; the other parts' metrics carry
   * it as `grpc.target`).
   */
  instrumentHttp(origin: string): Instrumentation<Http2Request, Http2Response>;
}

const noopMeterClass = createNoopMeter().constructor;
const noopTracerProvider = new ProxyTracerProvider().getDelegate();

/** Whether `provider` is the API's no-op (no SDK registered). */
const isNoopTracerProvider = (provider: TracerProvider): boolean => {
  const delegate = provider instanceof ProxyTracerProvider ? provider.getDelegate() : provider;
  return delegate === noopTracerProvider || delegate.constructor === noopTracerProvider.constructor;
};

const identity = <Req, Res>(inner: Service<Req, Res>): Service<Req, Res> => inner;

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
  const named = (method: string, target: unknown, example: string): string => {
    if (typeof target !== 'string' || target === '') {
      throw new ConfigError(`${WHERE}.${method}`, 'target', target, example);
    }
    return target;
  };
  return {
    instrument(target: string): Instrumentation {
      const name = named('instrument', target, 'the target name, such as dns:///orders:50051');
      const { meter, tracing } = providersOf(o);
      // metrics: false turns off the producer's per-call metrics too
      const meters =
        o.metrics === false
          ? undefined
          : o.callMetrics !== undefined
            ? producerInstruments(o.callMetrics)
            : meter && callInstruments(meter);
      const labels = new LabelCache(name, o.allMethods === true);
      const on = meters !== undefined || tracing !== undefined;
      return instrumentation(name, meter, tracing, meters !== undefined, {
        calls: on ? callsLayer(labels, meters, tracing) : identity,
        attempts: on ? attemptsLayer(labels, meters, tracing) : identity,
      });
    },
    instrumentHttp(origin: string): Instrumentation<Http2Request, Http2Response> {
      const name = named('instrumentHttp', origin, 'the origin, such as http://orders.internal:8080');
      const { meter, tracing } = providersOf(o);
      const layers =
        meter !== undefined || tracing !== undefined
          ? httpLayers(name, meter, tracing)
          : { calls: identity, attempts: identity };
      return instrumentation(name, meter, tracing, meter !== undefined, layers);
    },
  };
}

/** The meter (`undefined` when metrics are off or no SDK is registered) and the tracing, looked up now. */
function providersOf(o: TelemetryOptions): { meter: Meter | undefined; tracing: Tracing | undefined } {
  let meter: Meter | undefined;
  if (o.metrics !== false) {
    const found = (o.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE_NAME, SCOPE_VERSION);
    if (found.constructor !== noopMeterClass) meter = found;
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
  return { meter, tracing };
}

/** One stack's instrumentation: its per-call layers, and the parts' metrics, which every protocol shares. */
function instrumentation<Req, Res>(
  target: string,
  meter: Meter | undefined,
  tracing: Tracing | undefined,
  callMetrics: boolean,
  layers: { readonly calls: Layer<Req, Res>; readonly attempts: Layer<Req, Res> },
): Instrumentation<Req, Res> {
  const observer = meter === undefined ? undefined : new PartsObserver(meter, target);
  return {
    target,
    enabled: { metrics: callMetrics || observer !== undefined, tracing: tracing !== undefined },
    calls: layers.calls,
    attempts: layers.attempts,
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
