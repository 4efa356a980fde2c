/**
 * The per-call metrics aggregated in this process and handed to the SDK's
 * metric reader as a `MetricProducer`, instead of through the Meter API.
 *
 * Through the API, each measurement costs the SDK a lookup of its series
 * by a hash of its attributes (their keys sorted and serialized) and a
 * clock read: five of them per call, 1.5–2 µs each on the bench's
 * machine. The per-call layers keep one label set per method and status,
 * so here a series is found by the identity of that object, and a
 * measurement is a bucket search and three additions. The reader (a
 * `PrometheusExporter`, a `PeriodicExportingMetricReader`) merges what
 * `collect()` returns with the SDK's own metrics. Points are cumulative.
 *
 * @module
 */
import { type Attributes, type HrTime, ValueType } from '@opentelemetry/api';
import type {
  AggregationTemporality,
  CollectionResult,
  DataPointType,
  HistogramMetricData,
  MetricData,
  MetricProducer,
  SumMetricData,
} from '@opentelemetry/sdk-metrics';
import { CALL_INSTRUMENTS, type CallInstrumentSpec, type CallInstruments } from './calls.js';
import { SCOPE_NAME, SCOPE_VERSION } from './names.js';

const CUMULATIVE = 1 as AggregationTemporality.CUMULATIVE;
const HISTOGRAM = 0 as DataPointType.HISTOGRAM;
const SUM = 3 as DataPointType.SUM;

const hrTime = (ms: number): HrTime => [Math.floor(ms / 1000), Math.round((ms % 1000) * 1e6)];

/** A stable key of a label set, for label sets that are not the same object. */
const keyOf = (attributes: Attributes): string =>
  JSON.stringify(
    Object.keys(attributes)
      .sort()
      .map((k) => [k, attributes[k]]),
  );

interface HistogramPoint {
  readonly attributes: Attributes;
  count: number;
  sum: number;
  min: number;
  max: number;
  readonly counts: number[];
}

interface SumPoint {
  readonly attributes: Attributes;
  value: number;
}

/** The series of one instrument: found by label-set identity first, then by key. */
class Series<P extends { readonly attributes: Attributes }> {
  readonly #byObject = new WeakMap<Attributes, P>();
  readonly #byKey = new Map<string, P>();
  readonly #make: (attributes: Attributes) => P;

  constructor(make: (attributes: Attributes) => P) {
    this.#make = make;
  }

  get(attributes: Attributes): P {
    let point = this.#byObject.get(attributes);
    if (point === undefined) {
      const key = keyOf(attributes);
      point = this.#byKey.get(key);
      if (point === undefined) {
        point = this.#make({ ...attributes });
        this.#byKey.set(key, point);
      }
      this.#byObject.set(attributes, point);
    }
    return point;
  }

  get points(): IterableIterator<P> {
    return this.#byKey.values();
  }

  get size(): number {
    return this.#byKey.size;
  }
}

class LocalHistogram {
  readonly spec: CallInstrumentSpec;
  readonly #boundaries: readonly number[];
  readonly series: Series<HistogramPoint>;

  constructor(spec: CallInstrumentSpec, boundaries: readonly number[]) {
    this.spec = spec;
    this.#boundaries = boundaries;
    const buckets = boundaries.length + 1;
    this.series = new Series((attributes) => ({
      attributes,
      count: 0,
      sum: 0,
      min: Number.POSITIVE_INFINITY,
      max: Number.NEGATIVE_INFINITY,
      counts: new Array<number>(buckets).fill(0),
    }));
  }

  record(value: number, attributes: Attributes = {}): void {
    // as the SDK's histograms: no NaN, no negative value
    if (!(value >= 0)) return;
    const p = this.series.get(attributes);
    p.count++;
    p.sum += value;
    if (value < p.min) p.min = value;
    if (value > p.max) p.max = value;
    // the first bucket whose (inclusive) upper boundary is at least the value
    const b = this.#boundaries;
    let lo = 0;
    let hi = b.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((b[mid] as number) < value) lo = mid + 1;
      else hi = mid;
    }
    (p.counts[lo] as number)++;
  }
}

class LocalCounter {
  readonly spec: CallInstrumentSpec;
  readonly series = new Series<SumPoint>((attributes) => ({ attributes, value: 0 }));

  constructor(spec: CallInstrumentSpec) {
    this.spec = spec;
  }

  add(value: number, attributes: Attributes = {}): void {
    if (!(value >= 0)) return;
    this.series.get(attributes).value += value;
  }
}

/**
 * A `MetricProducer` that holds the per-call metrics of every stack whose
 * `telemetry({ callMetrics })` names it; give it to the metric reader's
 * `metricProducers`.
 *
 * @example
 * ```ts
 * const callMetrics = callMetricsProducer();
 * const exporter = new PrometheusExporter({ metricProducers: [callMetrics] });
 * metrics.setGlobalMeterProvider(new MeterProvider({ readers: [exporter] }));
 * const channel = towerChannel(target, creds, { telemetry: telemetry({ callMetrics }) });
 * ```
 */
export interface CallMetricsProducer extends MetricProducer {
  /** Marks a producer made by {@link callMetricsProducer}. */
  readonly kind: 'grpc-tower-call-metrics';
}

/** The instruments each producer's per-call layers record into. */
const instrumentsOf = new WeakMap<CallMetricsProducer, CallInstruments>();

/** The instruments of a producer made by {@link callMetricsProducer}, or `undefined`. */
export function producerInstruments(producer: unknown): CallInstruments | undefined {
  return typeof producer === 'object' && producer !== null
    ? instrumentsOf.get(producer as CallMetricsProducer)
    : undefined;
}

/**
 * Creates a {@link CallMetricsProducer}. One can serve any number of
 * channels (their series differ by `grpc.target`).
 *
 * @example
 * ```ts
 * const callMetrics = callMetricsProducer();
 * const reader = new PeriodicExportingMetricReader({ exporter, metricProducers: [callMetrics] });
 * ```
 */
export function callMetricsProducer(): CallMetricsProducer {
  const start = hrTime(Date.now());
  const histograms: LocalHistogram[] = [];
  const counters: LocalCounter[] = [];
  const instruments: Record<string, unknown> = {};
  for (const spec of CALL_INSTRUMENTS) {
    if (spec.boundaries === undefined) {
      const c = new LocalCounter(spec);
      counters.push(c);
      instruments[spec.key] = c;
    } else {
      const h = new LocalHistogram(spec, [...spec.boundaries]);
      histograms.push(h);
      instruments[spec.key] = h;
    }
  }
  const descriptor = (spec: CallInstrumentSpec) => ({
    name: spec.name,
    description: spec.description,
    unit: spec.unit,
    valueType: ValueType.DOUBLE,
  });
  const producer: CallMetricsProducer = {
    kind: 'grpc-tower-call-metrics',
    collect(): Promise<CollectionResult> {
      const end = hrTime(Date.now());
      const out: MetricData[] = [];
      for (const c of counters) {
        if (c.series.size === 0) continue;
        const data: SumMetricData = {
          descriptor: descriptor(c.spec),
          aggregationTemporality: CUMULATIVE,
          dataPointType: SUM,
          isMonotonic: true,
          dataPoints: [...c.series.points].map((p) => ({
            startTime: start,
            endTime: end,
            attributes: p.attributes,
            value: p.value,
          })),
        };
        out.push(data);
      }
      for (const h of histograms) {
        if (h.series.size === 0) continue;
        const boundaries = [...(h.spec.boundaries as readonly number[])];
        const data: HistogramMetricData = {
          descriptor: descriptor(h.spec),
          aggregationTemporality: CUMULATIVE,
          dataPointType: HISTOGRAM,
          dataPoints: [...h.series.points].map((p) => ({
            startTime: start,
            endTime: end,
            attributes: p.attributes,
            value: {
              buckets: { boundaries, counts: [...p.counts] },
              count: p.count,
              sum: p.sum,
              min: p.min,
              max: p.max,
            },
          })),
        };
        out.push(data);
      }
      return Promise.resolve({
        // a reader keeps its own resource and takes only the scope metrics of the producers it is given
        resourceMetrics: {
          resource: undefined as never,
          scopeMetrics:
            out.length === 0 ? [] : [{ scope: { name: SCOPE_NAME, version: SCOPE_VERSION }, metrics: out }],
        },
        errors: [],
      });
    },
  };
  instrumentsOf.set(producer, instruments as unknown as CallInstruments);
  return producer;
}
