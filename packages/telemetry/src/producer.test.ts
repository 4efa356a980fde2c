// The producer against the SDK's own aggregation: the same values recorded
// through a real sdk-metrics histogram and counter and through the producer
// give the same points when a real reader collects both.
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { Histogram as SdkHistogram, MetricData } from '@opentelemetry/sdk-metrics';
import { background } from '@grpc-tower/core';
import { describe, expect, test } from 'vitest';
import { LATENCY_BUCKETS_S, MetricNames } from './names.js';
import { callMetricsProducer, producerInstruments } from './producer.js';
import { telemetry } from './telemetry.js';
import { PullReader } from './test/reader.js';

const byName = async (reader: PullReader): Promise<Map<string, MetricData[]>> => {
  const { resourceMetrics, errors } = await reader.collect();
  expect(errors).toEqual([]);
  const out = new Map<string, MetricData[]>();
  for (const scope of resourceMetrics.scopeMetrics) {
    expect(scope.scope.name).toBe('@grpc-tower/telemetry');
    for (const m of scope.metrics) out.set(m.descriptor.name, [...(out.get(m.descriptor.name) ?? []), m]);
  }
  return out;
};

describe('callMetricsProducer', () => {
  test('buckets, sums, counts, min and max as the SDK computes them, boundary values included', async () => {
    const producer = callMetricsProducer();
    const reader = new PullReader({ metricProducers: [producer] });
    const provider = new MeterProvider({ readers: [reader] });
    const sdkHistogram = provider.getMeter('@grpc-tower/telemetry').createHistogram('sdk.duration', {
      unit: 's',
      advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_S] },
    });
    const ours = producerInstruments(producer)!;
    const a = { 'grpc.method': 'pkg.S/M', 'grpc.target': 't', 'grpc.status': 'OK' };
    const values = [0, 0.00001, 0.0000100001, 0.0003, 0.04, 0.99, 1, 100, 250, -1, Number.NaN];
    for (const v of values) {
      sdkHistogram.record(v, a);
      // a copy of the label set: found by its contents, not only by identity
      ours.attemptDuration.record(v, values.indexOf(v) % 2 === 0 ? a : { ...a });
    }
    ours.attemptStarted.add(3, a);
    ours.attemptStarted.add(2, { ...a });
    const m = await byName(reader);
    const sdkPoint = m.get('sdk.duration')![0]!.dataPoints[0]!.value as SdkHistogram;
    const [ourData] = m.get(MetricNames.attemptDuration)!;
    expect(ourData!.descriptor).toMatchObject({ name: MetricNames.attemptDuration, unit: 's' });
    expect(ourData!.aggregationTemporality).toBe(1);
    expect(ourData!.dataPoints).toHaveLength(1);
    const ourPoint = ourData!.dataPoints[0]!;
    expect(ourPoint.attributes).toEqual(a);
    expect(ourPoint.value).toEqual(sdkPoint);
    const [started] = m.get(MetricNames.attemptStarted)!;
    expect(started).toMatchObject({ dataPointType: 3, isMonotonic: true });
    expect(started!.dataPoints.map((p) => p.value)).toEqual([5]);
    // cumulative: a second collection keeps the counts and adds the new ones
    ours.attemptStarted.add(1, a);
    const again = await byName(reader);
    expect(again.get(MetricNames.attemptStarted)![0]!.dataPoints[0]!.value).toBe(6);
    await provider.shutdown();
  });

  test('one producer, two targets: their series apart', async () => {
    const producer = callMetricsProducer();
    const reader = new PullReader({ metricProducers: [producer] });
    const provider = new MeterProvider({ readers: [reader] });
    const t = telemetry({ meterProvider: provider, callMetrics: producer, tracing: false });
    const inner = {
      call: () => Promise.reject(Object.assign(new Error('down'), { code: 14 })),
    };
    for (const target of ['a', 'b', 'b']) {
      const svc = t.instrument(target).attempts(inner);
      await expect(
        svc.call({ method: '/p.S/M', kind: 'unary', attempt: 0 } as never, background),
      ).rejects.toThrow();
    }
    const points = (await byName(reader)).get(MetricNames.attemptStarted)![0]!.dataPoints;
    expect(points.map((p) => [p.attributes['grpc.target'], p.value])).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
    await provider.shutdown();
  });

  test('a producer not made by callMetricsProducer is refused by name', () => {
    expect(() => telemetry({ callMetrics: { collect: async () => ({}) } as never })).toThrow(/callMetrics/);
  });
});
