/**
 * The OpenTelemetry SDK as the bench runs it under the telemetry rows:
 * sdk-metrics with an in-memory (pull) reader, collected between runs as a
 * Prometheus scrape would, and sdk-trace-base with a batch span processor
 * into the in-memory span exporter, emptied between runs; the W3C
 * propagator. Every span is sampled (the SDK's default), the dearest case.
 *
 * @module
 */
import { telemetry, type Telemetry } from '@grpc-tower/telemetry';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';

class PullReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
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
export function startBenchSdk(): BenchSdk {
  const reader = new PullReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const spans = new InMemorySpanExporter();
  const processor = new BatchSpanProcessor(spans, { maxQueueSize: 65_536, maxExportBatchSize: 4_096 });
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [processor] });
  return {
    telemetry: telemetry({ meterProvider, tracerProvider, propagator: new W3CTraceContextPropagator() }),
    async drain() {
      const { resourceMetrics } = await reader.collect();
      await processor.forceFlush();
      const n = spans.getFinishedSpans().length;
      spans.reset();
      return { metrics: resourceMetrics.scopeMetrics.reduce((k, s) => k + s.metrics.length, 0), spans: n };
    },
    async shutdown() {
      await meterProvider.shutdown();
      await tracerProvider.shutdown();
    },
  };
}
