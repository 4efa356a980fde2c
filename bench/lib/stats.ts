/**
 * Summary statistics for the benchmark suite: nearest-rank percentiles of
 * latency samples (the value below which `p` of the samples fall, as
 * HdrHistogram and wrk report them), and the spread of one measurement
 * across rounds (median, min and max), which is what every table shows.
 *
 * @module
 */
import type { Spread } from './schema.js';

/**
 * The `p`-quantile (0..1) of `sorted` by the nearest-rank method: the
 * smallest sample such that at least `p` of all samples are at or below it.
 * `NaN` for no samples.
 *
 * @example
 * ```ts
 * percentile([1, 2, 3, 4], 0.5); // 2
 * ```
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const rank = Math.ceil(p * n);
  return sorted[Math.min(n - 1, Math.max(0, rank - 1))] as number;
}

/**
 * The samples sorted ascending, as a Float64Array (fast to sort and to index).
 *
 * @example
 * ```ts
 * const s = sortedSamples([3, 1, 2]); // Float64Array [1, 2, 3]
 * ```
 */
export function sortedSamples(samples: readonly number[]): Float64Array {
  return Float64Array.from(samples).sort();
}

/**
 * The median of `values` (the mean of the two middle values for an even
 * count); `NaN` for none.
 *
 * @example
 * ```ts
 * median([5, 1, 3]); // 3
 * ```
 */
export function median(values: readonly number[]): number {
  const finite = values.filter((v) => !Number.isNaN(v));
  if (finite.length === 0) return Number.NaN;
  const s = [...finite].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/**
 * The spread of one measurement over rounds: median, min, max and how many
 * rounds it was measured in. `NaN` rounds (nothing to measure) are left out.
 *
 * @example
 * ```ts
 * spread([10, 12, 11]); // { median: 11, min: 10, max: 12, runs: 3 }
 * ```
 */
export function spread(values: readonly number[]): Spread {
  const finite = values.filter((v) => !Number.isNaN(v));
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs: 0 };
  return {
    median: median(finite),
    min: Math.min(...finite),
    max: Math.max(...finite),
    runs: finite.length,
  };
}

/**
 * A single value as a spread of one run (for results measured once).
 *
 * @example
 * ```ts
 * single(4); // { median: 4, min: 4, max: 4, runs: 1 }
 * ```
 */
export function single(value: number): Spread {
  return spread([value]);
}

/**
 * Collects one metric per row over rounds.
 *
 * @example
 * ```ts
 * const rec = new RoundRecorder();
 * rec.add('grpc-js', 'rps', 1000);
 * rec.add('grpc-js', 'rps', 1100);
 * rec.spread('grpc-js', 'rps'); // { median: 1050, min: 1000, max: 1100, runs: 2 }
 * ```
 */
export class RoundRecorder {
  readonly #values = new Map<string, Map<string, number[]>>();

  /** Records one round's `value` of `metric` for `row`. */
  add(row: string, metric: string, value: number): void {
    let byMetric = this.#values.get(row);
    if (byMetric === undefined) {
      byMetric = new Map();
      this.#values.set(row, byMetric);
    }
    const list = byMetric.get(metric);
    if (list === undefined) byMetric.set(metric, [value]);
    else list.push(value);
  }

  /** The values of `metric` for `row`, one per round, in order. */
  values(row: string, metric: string): readonly number[] {
    return this.#values.get(row)?.get(metric) ?? [];
  }

  /** The spread of `metric` for `row` across rounds. */
  spread(row: string, metric: string): Spread {
    return spread(this.values(row, metric));
  }

  /**
   * Records, for every round, `row`'s `metric` divided by `baseline`'s
   * `metric` of the same round, as metric `into`.
   */
  ratio(row: string, baseline: string, metric: string, into: string): void {
    const a = this.values(row, metric);
    const b = this.values(baseline, metric);
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      this.add(row, into, (a[i] as number) / (b[i] as number));
    }
  }

  /**
   * Records, for every round, `row`'s `metric` minus `baseline`'s `metric`
   * of the same round, as metric `into`.
   */
  difference(row: string, baseline: string, metric: string, into: string): void {
    const a = this.values(row, metric);
    const b = this.values(baseline, metric);
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      this.add(row, into, (a[i] as number) - (b[i] as number));
    }
  }
}
