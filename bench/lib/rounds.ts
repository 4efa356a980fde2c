/**
 * Alternating rounds: in every round each contender runs once, and the
 * order turns by one place from round to round, so that no contender is
 * always first (after an idle pause) or always last (after the others
 * warmed the machine).
 *
 * @module
 */
import { closedLoopOf } from './load.js';
import type { MetricSpec, ResultRow } from './schema.js';
import { RoundRecorder } from './stats.js';

/**
 * The order of `items` in round `round` (0-based): rotated by `round`
 * places, and reversed every other round.
 *
 * @example
 * ```ts
 * roundOrder(['a', 'b', 'c'], 0); // ['a', 'b', 'c']
 * roundOrder(['a', 'b', 'c'], 1); // ['c', 'b', 'a']
 * roundOrder(['a', 'b', 'c'], 2); // ['b', 'c', 'a']
 * ```
 */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  const n = items.length;
  if (n === 0) return [];
  const shift = Math.floor(round / 2) % n;
  const rotated = [...items.slice(shift), ...items.slice(0, shift)];
  return round % 2 === 0 ? rotated : rotated.reverse();
}

/**
 * Sleeps `ms`.
 *
 * @example
 * ```ts
 * await sleep(100);
 * ```
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A contender of {@link throughputRounds}: its name and one call (resolving with the server's name). */
export interface RoundClient {
  readonly name: string;
  call(): Promise<string>;
}

/**
 * Measures `clients` in alternating rounds, each a closed loop of
 * `concurrency` calls for `throughputMs` (after one warm-up loop each):
 * calls/s (`rps`) and this process's CPU per call (`cpuUsPerCall`), and
 * both as ratios to `baseline`'s in the same round (`rpsRatio`,
 * `cpuRatio`). Returns a table row per client, the medians and the calls
 * that failed.
 *
 * @example
 * ```ts
 * const { rows, median } = await throughputRounds(clients, 'grpc-js', { rounds: 5, concurrency: 32, throughputMs: 3_000, warmupMs: 1_500, log, label: 'http2' });
 * ```
 */
export async function throughputRounds(
  clients: readonly RoundClient[],
  baseline: string,
  options: {
    readonly rounds: number;
    readonly concurrency: number;
    readonly throughputMs: number;
    readonly warmupMs: number;
    readonly log: (line: string) => void;
    readonly label: string;
  },
): Promise<{ rows: ResultRow[]; median: (row: string, metric: string) => number; failures: number }> {
  const { rounds, concurrency, throughputMs, warmupMs, log, label } = options;
  for (const c of clients) await closedLoopOf(() => c.call(), { concurrency, durationMs: warmupMs });
  const rec = new RoundRecorder();
  let failures = 0;
  for (let r = 0; r < rounds; r++) {
    for (const c of roundOrder(clients, r)) {
      const loop = await closedLoopOf(() => c.call(), { concurrency, durationMs: throughputMs });
      failures += loop.failures;
      rec.add(c.name, 'rps', (loop.calls / loop.elapsedMs) * 1000);
      rec.add(c.name, 'cpuUsPerCall', loop.cpuUs / Math.max(1, loop.calls + loop.failures));
    }
    log(`${label}: round ${r + 1}/${rounds} done`);
  }
  for (const c of clients) {
    rec.ratio(c.name, baseline, 'rps', 'rpsRatio');
    rec.ratio(c.name, baseline, 'cpuUsPerCall', 'cpuRatio');
  }
  const metrics = ['rps', 'rpsRatio', 'cpuUsPerCall', 'cpuRatio'];
  const rows = clients.map((c) => ({
    name: c.name,
    ...(c.name === baseline ? { baseline: true } : {}),
    metrics: Object.fromEntries(metrics.map((m) => [m, rec.spread(c.name, m)])),
  }));
  return { rows, median: (row, metric) => rec.spread(row, metric).median, failures };
}

/**
 * The columns of a {@link throughputRounds} table: `unit` is what is
 * counted (`call`, `req`).
 *
 * @example
 * ```ts
 * const metrics = throughputMetrics('requests/s', 'req');
 * ```
 */
export function throughputMetrics(rateLabel: string, unit: string): MetricSpec[] {
  return [
    { key: 'rps', label: rateLabel, unit: '', digits: 0, better: 'higher' },
    { key: 'rpsRatio', label: 'ratio', unit: '×', digits: 3, better: 'higher' },
    { key: 'cpuUsPerCall', label: 'client CPU', unit: `µs/${unit}`, digits: 1, better: 'lower' },
    { key: 'cpuRatio', label: 'CPU ratio', unit: '×', digits: 2, better: 'lower' },
  ];
}
