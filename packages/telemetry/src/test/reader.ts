/**
 * A metric reader of the real SDK that exports nowhere: `collect()` on
 * demand, as a Prometheus scrape would. For the tests and the bench (no
 * test framework imported here).
 *
 * @module
 */
import { MetricReader } from '@opentelemetry/sdk-metrics';

/**
 * A pull reader: `reader.collect()` gives what the SDK holds now.
 *
 * @example
 * ```ts
 * const reader = new PullReader({ metricProducers: [callMetricsProducer()] });
 * const provider = new MeterProvider({ readers: [reader] });
 * ```
 */
export class PullReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}
