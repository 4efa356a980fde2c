/**
 * The OpenTelemetry SDK as the bench runs it under the telemetry rows:
 * sdk-metrics with an in-memory (pull) reader, collected between runs as a
 * Prometheus scrape would, and sdk-trace with a batch span processor
 * into an in-process exporter that counts the spans and lets them go (as a
 * network exporter lets them go once sent; the SDK's InMemorySpanExporter
 * keeps every span, and the bench would then measure the garbage collector
 * walking tens of thousands of retained spans); the W3C propagator. Every
 * span is sampled (the SDK's default), the dearest case.
 *
 * @module
 */
import { type Telemetry, callMetricsProducer, telemetry } from '@grpc-tower/telemetry';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { ExportResult } from '@opentelemetry/core';
import { PullReader } from '../../packages/telemetry/src/test/reader.js';
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  type ReadableSpan,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';

/** Counts the spans it is given and keeps none. */
class CountingExporter implements SpanExporter {
  spans = 0;
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.spans += spans.length;
    done({ code: 0 });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** What {@link startBenchSdk} records. */
export interface BenchSdkOptions {
  readonly metrics?: boolean;
  readonly tracing?: boolean;
  /** The per-call metrics through the package's `callMetricsProducer()` given to the reader, not the Meter API. */
  readonly producer?: boolean;
  /** The share of calls traced (a parent-based ratio sampler); default 1, every call. */
  readonly sampleRatio?: number;
}

/** One SDK for the bench. */
export interface BenchSdk {
  /** `telemetry()` recording into this SDK. */
  readonly telemetry: Telemetry;
  /** Collects the metrics and drops the finished spans (between measured runs). */
  drain(): Promise<{ metrics: number; spans: number }>;
  shutdown(): Promise<void>;
}

/**
 * Starts the SDK.
 *
 * @example
 * ```ts
 * const sdk = startBenchSdk();
 * const c = fullStack('full + telemetry', staticList([address]), { telemetry: sdk.telemetry });
 * ```
 */
export function startBenchSdk(options: BenchSdkOptions = {}): BenchSdk {
  const callMetrics = options.producer === true ? callMetricsProducer() : undefined;
  const reader = new PullReader(callMetrics === undefined ? {} : { metricProducers: [callMetrics] });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const spans = new CountingExporter();
  const processor = new BatchSpanProcessor({
    exporter: spans,
    maxQueueSize: 8_192,
    maxExportBatchSize: 1_024,
  });
  const tracerProvider = new TracerProvider({
    spanProcessors: [processor],
    ...(options.sampleRatio === undefined
      ? {}
      : { sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio) }) }),
  });
  return {
    telemetry: telemetry({
      meterProvider,
      tracerProvider,
      propagator: new W3CTraceContextPropagator(),
      ...(options.metrics === false ? { metrics: false } : {}),
      ...(options.tracing === false ? { tracing: false } : {}),
      ...(callMetrics === undefined ? {} : { callMetrics }),
    }),
    async drain() {
      const { resourceMetrics } = await reader.collect();
      await processor.forceFlush();
      const n = spans.spans;
      spans.spans = 0;
      return { metrics: resourceMetrics.scopeMetrics.reduce((k, s) => k + s.metrics.length, 0), spans: n };
    },
    async shutdown() {
      await meterProvider.shutdown();
      await tracerProvider.shutdown();
    },
  };
}
