/**
 * The real OpenTelemetry SDK for the tests: a `MeterProvider` whose reader
 * keeps what it collects in memory, a `TracerProvider` with the
 * in-memory span exporter, and the W3C trace-context propagator; plus
 * helpers that find a metric's points by name and labels.
 *
 * @module
 */
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { type DataPoint, type Histogram, MeterProvider, type MetricData } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { expect } from 'vitest';
import { type CallMetricsProducer, callMetricsProducer } from '../producer.js';
import { PullReader } from './reader.js';

/** One SDK: its providers, and readers of what they recorded. */
export interface Sdk {
  /** The producer the per-call metrics go to, when they are aggregated by the package. */
  readonly callMetrics: CallMetricsProducer | undefined;
  readonly meterProvider: MeterProvider;
  readonly tracerProvider: TracerProvider;
  readonly spans: InMemorySpanExporter;
  readonly propagator: W3CTraceContextPropagator;
  /** Collects now; every metric by name. */
  metrics(): Promise<Map<string, MetricData>>;
  shutdown(): Promise<void>;
}

/**
 * Starts the SDK. `producer`: the per-call metrics go through a
 * {@link CallMetricsProducer} given to the reader, not through the meter.
 */
export function startSdk(mode: 'meter' | 'producer' = 'meter'): Sdk {
  const callMetrics = mode === 'producer' ? callMetricsProducer() : undefined;
  const reader = new PullReader(callMetrics === undefined ? {} : { metricProducers: [callMetrics] });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const spans = new InMemorySpanExporter();
  const tracerProvider = new TracerProvider({
    spanProcessors: [new SimpleSpanProcessor({ exporter: spans })],
  });
  return {
    callMetrics,
    meterProvider,
    tracerProvider,
    spans,
    propagator: new W3CTraceContextPropagator(),
    async metrics() {
      const { resourceMetrics, errors } = await reader.collect();
      expect(errors).toEqual([]);
      const out = new Map<string, MetricData>();
      for (const scope of resourceMetrics.scopeMetrics)
        for (const m of scope.metrics) out.set(m.descriptor.name, m);
      return out;
    },
    async shutdown() {
      await meterProvider.shutdown();
      await tracerProvider.shutdown();
    },
  };
}

type Labels = Record<string, string | number>;

const matches = (point: DataPoint<unknown>, labels: Labels): boolean =>
  Object.entries(labels).every(([k, v]) => point.attributes[k] === v);

/** The metric `name`, which must be there. */
export function metric(all: Map<string, MetricData>, name: string): MetricData {
  const m = all.get(name);
  if (m === undefined) throw new Error(`no metric ${name}; have ${[...all.keys()].join(', ')}`);
  return m;
}

/** The points of `name` whose labels include `labels`. */
export function points(
  all: Map<string, MetricData>,
  name: string,
  labels: Labels = {},
): DataPoint<unknown>[] {
  return (metric(all, name).dataPoints as DataPoint<unknown>[]).filter((p) => matches(p, labels));
}

/** The sum of a counter's (or gauge's) points with `labels`. */
export function total(all: Map<string, MetricData>, name: string, labels: Labels = {}): number {
  return points(all, name, labels).reduce((n, p) => n + (p.value as number), 0);
}

/** A histogram's merged count and sum over the points with `labels`. */
export function histogram(
  all: Map<string, MetricData>,
  name: string,
  labels: Labels = {},
): { count: number; sum: number; boundaries: number[] } {
  const ps = points(all, name, labels);
  let count = 0;
  let sum = 0;
  for (const p of ps) {
    const h = p.value as Histogram;
    count += h.count;
    sum += h.sum ?? 0;
  }
  return { count, sum, boundaries: (ps[0]?.value as Histogram | undefined)?.buckets.boundaries ?? [] };
}
