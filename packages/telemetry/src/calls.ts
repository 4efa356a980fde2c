/**
 * The two per-call layers: `calls` (outermost, one run per call) records
 * the call's duration and retry counts and opens the call span; `attempts`
 * (just above the balancer, one run per attempt: the first, each retry,
 * each hedge, each transparent re-send) records the attempt's metrics,
 * opens the attempt span as a child of the call's, and writes its trace
 * context into the attempt's metadata.
 *
 * The retry counts come from the retry and hedging layers themselves: the
 * call's record sits in the context under retry's `CallRetries`, and those
 * layers add to it as they decide (no second bookkeeping here). When a
 * call or an attempt ends is the gRPC protocol's to say (`grpcProtocol`'s
 * `statusOf` and `whenStatus`, as outlier detection reads it).
 *
 * @module
 */
import {
  type CallContext,
  type Layer,
  type Protocol,
  Status,
  type StatusCode,
  toGrpcTowerError,
} from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, grpcProtocol } from '@grpc-tower/core/grpc';
import { CallRetries, type RetryTally } from '@grpc-tower/retry';
import {
  type Context,
  type Counter,
  type Histogram,
  type Meter,
  type Span,
  SpanStatusCode,
  type TextMapPropagator,
  type TextMapSetter,
  type Tracer,
  context,
  diag,
  trace,
} from '@opentelemetry/api';
import type { LabelCache, MethodLabels } from './labels.js';
import { COUNT_BUCKETS, LATENCY_BUCKETS_S, MetricNames, SIZE_BUCKETS_BY } from './names.js';

type GrpcLayer = Layer<GrpcRequest, GrpcResponse>;
const protocol: Protocol<GrpcRequest, GrpcResponse> = grpcProtocol;
type Metadata = GrpcRequest['metadata'];

/** The per-call and per-attempt instruments (gRFC A66 and A96). */
export interface CallInstruments {
  readonly attemptStarted: Pick<Counter, 'add'>;
  readonly attemptDuration: Pick<Histogram, 'record'>;
  readonly sentSize: Pick<Histogram, 'record'>;
  readonly rcvdSize: Pick<Histogram, 'record'>;
  readonly callDuration: Pick<Histogram, 'record'>;
  readonly retries: Pick<Histogram, 'record'>;
  readonly transparentRetries: Pick<Histogram, 'record'>;
  readonly hedges: Pick<Histogram, 'record'>;
  readonly retryDelay: Pick<Histogram, 'record'>;
}

/** One per-call instrument: its name, unit, description, and buckets for a histogram. */
export interface CallInstrumentSpec {
  readonly key: keyof CallInstruments;
  readonly name: string;
  readonly unit: string;
  readonly description: string;
  /** The bucket boundaries of a histogram; `undefined` for the counter. */
  readonly boundaries: readonly number[] | undefined;
}

const histogram = (
  key: keyof CallInstruments,
  name: string,
  unit: string,
  boundaries: readonly number[],
  description: string,
): CallInstrumentSpec => ({ key, name, unit, description, boundaries });

/** The per-call instruments, with A66's and A96's units and buckets. */
export const CALL_INSTRUMENTS: readonly CallInstrumentSpec[] = [
  {
    key: 'attemptStarted',
    name: MetricNames.attemptStarted,
    unit: '{attempt}',
    description: 'Attempts started, retries, hedges and transparent re-sends included.',
    boundaries: undefined,
  },
  histogram(
    'attemptDuration',
    MetricNames.attemptDuration,
    's',
    LATENCY_BUCKETS_S,
    'From the start of an attempt to its end.',
  ),
  histogram(
    'sentSize',
    MetricNames.attemptSentSize,
    'By',
    SIZE_BUCKETS_BY,
    'Bytes of request messages an attempt sent (serialized, before any grpc-js compression).',
  ),
  histogram(
    'rcvdSize',
    MetricNames.attemptRcvdSize,
    'By',
    SIZE_BUCKETS_BY,
    'Bytes of response messages an attempt received (serialized, after any decompression).',
  ),
  histogram(
    'callDuration',
    MetricNames.callDuration,
    's',
    LATENCY_BUCKETS_S,
    'From the start of a call to its end, every attempt and backoff included.',
  ),
  histogram('retries', MetricNames.callRetries, '{retry}', COUNT_BUCKETS, 'Retries of a call that had any.'),
  histogram(
    'transparentRetries',
    MetricNames.callTransparentRetries,
    '{transparent_retry}',
    COUNT_BUCKETS,
    'Transparent re-sends of a call that had any.',
  ),
  histogram(
    'hedges',
    MetricNames.callHedges,
    '{hedge}',
    COUNT_BUCKETS,
    'Hedged attempts of a call that had any.',
  ),
  histogram(
    'retryDelay',
    MetricNames.callRetryDelay,
    's',
    LATENCY_BUCKETS_S,
    'Time a retried call spent in backoff, no attempt in flight.',
  ),
];

/** Creates the per-call instruments on `meter`. */
export function callInstruments(meter: Meter): CallInstruments {
  const out: Record<string, unknown> = {};
  for (const spec of CALL_INSTRUMENTS) {
    const options = { description: spec.description, unit: spec.unit };
    out[spec.key] =
      spec.boundaries === undefined
        ? meter.createCounter(spec.name, options)
        : meter.createHistogram(spec.name, {
            ...options,
            advice: { explicitBucketBoundaries: [...spec.boundaries] },
          });
  }
  return out as unknown as CallInstruments;
}

/** Where the tracing of a stack goes. */
export interface Tracing {
  readonly tracer: Tracer;
  readonly propagator: Pick<TextMapPropagator, 'inject'>;
}

const metadataSetter: TextMapSetter<Metadata> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

/** One call as the telemetry layers follow it: its retry counts, its start and its span. */
class CallRecord implements RetryTally {
  retries = 0;
  transparentRetries = 0;
  hedges = 0;
  delayMs = 0;
  readonly labels: MethodLabels;
  readonly start: number;
  readonly span: Span | undefined;
  /** The OpenTelemetry context with the call span (recording or not), the parent of its attempts'. */
  readonly otel: Context | undefined;

  constructor(labels: MethodLabels, start: number, span: Span | undefined, otel: Context | undefined) {
    this.labels = labels;
    this.start = start;
    this.span = span;
    this.otel = otel;
  }
}

const reported = new Set<string>();

/**
 * Telemetry never fails a call: an exception from the SDK, a propagator or
 * a provider of the application's is reported once per place through the
 * API's diagnostic logger (`diag`), and the call goes on without it.
 */
export function telemetryFailed(where: string, err: unknown): void {
  if (reported.has(where)) return;
  reported.add(where);
  diag.error(`@grpc-tower/telemetry: ${where} threw; calls go on without it`, err);
}

const endSpan = (span: Span, code: StatusCode, message: string | undefined): void => {
  span.setAttribute('rpc.grpc.status_code', code);
  if (code !== Status.OK) span.setStatus({ code: SpanStatusCode.ERROR, ...(message ? { message } : {}) });
  span.end();
};

/** The code, message and endpoint of a failed call or attempt. */
const failureOf = (err: unknown): { code: StatusCode; message: string; endpoint: string | undefined } => {
  const e = toGrpcTowerError(err);
  return { code: e.code, message: e.message, endpoint: e.endpoint };
};

/**
 * The outermost layer: `grpc.client.call.duration`, A96's retry metrics,
 * and the call span (a child of the active OpenTelemetry context).
 */
export function callsLayer(
  labels: LabelCache,
  meters: CallInstruments | undefined,
  tracing: Tracing | undefined,
): GrpcLayer {
  const finish = (l: MethodLabels, rec: CallRecord, code: StatusCode, message: string | undefined): void => {
    try {
      if (meters !== undefined) {
        meters.callDuration.record((performance.now() - rec.start) / 1000, l.status(code));
        if (rec.retries > 0) {
          meters.retries.record(rec.retries, l.base);
          meters.retryDelay.record(rec.delayMs / 1000, l.base);
        }
        if (rec.transparentRetries > 0) meters.transparentRetries.record(rec.transparentRetries, l.base);
        if (rec.hedges > 0) meters.hedges.record(rec.hedges, l.base);
      }
      if (rec.span !== undefined) endSpan(rec.span, code, message);
    } catch (err) {
      telemetryFailed('recording a call', err);
    }
  };
  return (inner) => ({
    call(req: GrpcRequest, ctx: CallContext): Promise<GrpcResponse> {
      const l = labels.of(req);
      let span: Span | undefined;
      let otel: Context | undefined;
      if (tracing !== undefined) {
        try {
          const parent = context.active();
          const s = tracing.tracer.startSpan(l.spanName, l.callSpan, parent);
          if (s.isRecording()) span = s;
          // kept when the sampler dropped the call too: its attempts carry the decision to the server
          otel = trace.setSpan(parent, s);
        } catch (err) {
          span = undefined;
          otel = undefined;
          telemetryFailed('starting a call span', err);
        }
      }
      const rec = new CallRecord(l, performance.now(), span, otel);
      return inner.call(req, ctx.withValue(CallRetries, rec)).then(
        (res) => {
          const now = protocol.statusOf(res);
          if (now !== undefined) finish(l, rec, now.code, now.details || undefined);
          else protocol.whenStatus(res, (s) => finish(l, rec, s.code, s.details));
          return res;
        },
        (err: unknown) => {
          const f = failureOf(err);
          finish(l, rec, f.code, f.message);
          throw err;
        },
      );
    },
  });
}

/**
 * The layer above the balancer: A66's attempt metrics, and the attempt
 * span (a child of the call span when the calls layer is above, else of the
 * active context) whose context goes into the attempt's metadata.
 */
export function attemptsLayer(
  labels: LabelCache,
  meters: CallInstruments | undefined,
  tracing: Tracing | undefined,
): GrpcLayer {
  const finish = (
    l: MethodLabels,
    req: GrpcRequest,
    start: number,
    span: Span | undefined,
    code: StatusCode,
    endpoint: string | undefined,
    received: number,
    message: string | undefined,
  ): void => {
    try {
      if (meters !== undefined) {
        const attrs = l.status(code);
        meters.attemptDuration.record((performance.now() - start) / 1000, attrs);
        meters.sentSize.record(req.messages.bytes, attrs);
        meters.rcvdSize.record(received, attrs);
      }
      if (span !== undefined) {
        if (endpoint !== undefined) span.setAttributes(labels.server(endpoint));
        endSpan(span, code, message);
      }
    } catch (err) {
      telemetryFailed('recording an attempt', err);
    }
  };
  return (inner) => ({
    call(req: GrpcRequest, ctx: CallContext): Promise<GrpcResponse> {
      const found = ctx.get(CallRetries);
      const rec = found instanceof CallRecord ? found : undefined;
      const l = rec?.labels ?? labels.of(req);
      const start = performance.now();
      let span: Span | undefined;
      let sent = req;
      try {
        meters?.attemptStarted.add(1, l.base);
        if (tracing !== undefined) {
          const parent = rec !== undefined ? rec.otel : context.active();
          if (parent !== undefined) {
            // below a calls layer, an attempt is traced when its call is; an
            // untraced one still sends its call's context (marked not sampled)
            let carried = parent;
            if (rec === undefined || rec.span !== undefined) {
              const s = tracing.tracer.startSpan(l.attemptName, l.attemptSpan(req.attempt), parent);
              if (s.isRecording()) span = s;
              carried = trace.setSpan(parent, s);
            }
            const metadata = req.metadata.clone();
            tracing.propagator.inject(carried, metadata, metadataSetter);
            sent = { ...req, metadata };
          }
        }
      } catch (err) {
        span?.end();
        span = undefined;
        sent = req;
        telemetryFailed('starting an attempt', err);
      }
      return inner.call(sent, ctx).then(
        (res) => {
          const now = protocol.statusOf(res);
          if (now !== undefined) {
            finish(
              l,
              req,
              start,
              span,
              now.code,
              res.endpoint,
              res.receivedBytes ?? 0,
              now.details || undefined,
            );
          } else {
            protocol.whenStatus(res, (s) =>
              finish(l, req, start, span, s.code, res.endpoint, res.receivedBytes ?? 0, s.details),
            );
          }
          return res;
        },
        (err: unknown) => {
          const f = failureOf(err);
          finish(l, req, start, span, f.code, f.endpoint, 0, f.message);
          throw err;
        },
      );
    },
  });
}
