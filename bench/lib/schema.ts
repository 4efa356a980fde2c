/**
 * The shape of `bench/results/*.json`: the machine, then one result per
 * scenario. A scenario's result is one or more tables (a row per
 * contender, a column per metric, each cell the median and min–max over
 * rounds) and its targets, each with the value measured and whether it is
 * met.
 *
 * @module
 */

/** The version of this schema, written into every result file. */
export const SCHEMA = 'grpc-tower-bench/1';

/** The scenarios, in the order the suite runs them. */
export const SCENARIO_NAMES = [
  'overhead',
  'heterogeneous',
  'even-shares',
  'churn',
  'proxy',
  'scale',
  'subsetting',
  'http2',
  'transport',
  'connect',
  'xds',
] as const;

/**
 * A scenario's name.
 *
 * @example
 * ```ts
 * const name: ScenarioName = 'churn';
 * ```
 */
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/**
 * One measurement over rounds: the median, the least and the greatest value,
 * and the number of rounds it was measured in.
 *
 * @example
 * ```ts
 * const s: Spread = { median: 11, min: 10, max: 12, runs: 3 };
 * ```
 */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
}

/**
 * A column of a table.
 *
 * @example
 * ```ts
 * const m: MetricSpec = { key: 'p99Ms', label: 'p99', unit: 'ms', digits: 2, better: 'lower' };
 * ```
 */
export interface MetricSpec {
  /** The key in each row's `metrics`. */
  readonly key: string;
  /** The column heading. */
  readonly label: string;
  /** The unit, printed after the heading (`''` for none). */
  readonly unit: string;
  /** Decimal places printed. */
  readonly digits: number;
  /** Which way is better, when one is. */
  readonly better?: 'higher' | 'lower';
}

/**
 * A row of a table: one contender (or one case), its metrics over rounds.
 *
 * @example
 * ```ts
 * const row: ResultRow = { name: 'grpc-js', baseline: true, metrics: { rps: { median: 9000, min: 8800, max: 9100, runs: 5 } } };
 * ```
 */
export interface ResultRow {
  readonly name: string;
  /** Whether the ratios in this table are relative to this row. */
  readonly baseline?: boolean;
  readonly metrics: Readonly<Record<string, Spread>>;
  /** A remark shown beside the row (such as "not seen within 35 s"). */
  readonly note?: string;
}

/**
 * A table of results.
 *
 * @example
 * ```ts
 * const t: ResultTable = { title: 'unary calls', metrics: [], rows: [] };
 * ```
 */
export interface ResultTable {
  readonly title: string;
  readonly metrics: readonly MetricSpec[];
  readonly rows: readonly ResultRow[];
}

/**
 * A target of the suite and whether this run met it.
 *
 * @example
 * ```ts
 * const t: TargetResult = {
 *   id: 'full-throughput', description: 'full stack ≥ 95 % of plain grpc-js throughput',
 *   row: 'createChannel (full stack)', metric: 'rpsRatio', op: '>=', target: 0.95, value: 0.97, unit: '×', met: true,
 * };
 * ```
 */
export interface TargetResult {
  readonly id: string;
  readonly description: string;
  /** The row and metric the value comes from. */
  readonly row: string;
  readonly metric: string;
  readonly op: '>=' | '<=';
  readonly target: number;
  /** The median over rounds (or, for counts, the worst round when the target says so). */
  readonly value: number;
  readonly unit: string;
  readonly met: boolean;
}

/**
 * Load average of the machine (1, 5, 15 minutes) before and after a
 * scenario: a high load means other processes competed for the cores.
 *
 * @example
 * ```ts
 * const l: LoadAverages = { before: [0.5, 0.4, 0.3], after: [1.9, 0.8, 0.4] };
 * ```
 */
export interface LoadAverages {
  readonly before: readonly number[];
  readonly after: readonly number[];
}

/**
 * What a scenario hands back to the runner.
 *
 * @example
 * ```ts
 * const body: ScenarioBody = { title: 'x', description: 'y', rounds: 3, config: {}, tables: [], targets: [], notes: [] };
 * ```
 */
export interface ScenarioBody {
  readonly title: string;
  /** What is measured and how, in a few sentences. */
  readonly description: string;
  /** Rounds each contender was measured in. */
  readonly rounds: number;
  /** The settings of the run (durations, concurrency, latencies...). */
  readonly config: Readonly<Record<string, string | number | boolean>>;
  readonly tables: readonly ResultTable[];
  readonly targets: readonly TargetResult[];
  readonly notes: readonly string[];
}

/**
 * A scenario that completed.
 *
 * @example
 * ```ts
 * if (result.status === 'ok') console.log(result.targets.every((t) => t.met));
 * ```
 */
export interface ScenarioResult extends ScenarioBody {
  readonly name: ScenarioName;
  readonly status: 'ok';
  readonly durationMs: number;
  readonly load: LoadAverages;
}

/**
 * A scenario that failed to run.
 *
 * @example
 * ```ts
 * const e: ScenarioError = { name: 'proxy', status: 'error', error: 'nginx is not installed', durationMs: 3 };
 * ```
 */
export interface ScenarioError {
  readonly name: ScenarioName;
  readonly status: 'error';
  readonly error: string;
  readonly durationMs: number;
}

/**
 * The machine and software the suite ran on.
 *
 * @example
 * ```ts
 * const m: MachineInfo = await machineInfo();
 * m.cores; // 2
 * ```
 */
export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryMiB: number;
  readonly os: string;
  readonly kernel: string;
  readonly arch: string;
  readonly node: string;
  readonly v8: string;
  readonly grpcJs: string;
  readonly nginx: string | null;
  readonly dnsmasq: string | null;
  readonly loadAverage: readonly number[];
}

/**
 * The whole result file.
 *
 * @example
 * ```ts
 * const results = JSON.parse(readFileSync('bench/results/latest.json', 'utf8')) as BenchResults;
 * ```
 */
export interface BenchResults {
  readonly schema: typeof SCHEMA;
  readonly date: string;
  readonly quick: boolean;
  readonly command: string;
  readonly durationMs: number;
  readonly machine: MachineInfo;
  readonly scenarios: Partial<Record<ScenarioName, ScenarioResult | ScenarioError>>;
}

/**
 * How a scenario is told to run.
 *
 * @example
 * ```ts
 * const opts: ScenarioOptions = { quick: true, log: console.log };
 * ```
 */
export interface ScenarioOptions {
  readonly quick: boolean;
  /** Progress lines (to stderr). */
  readonly log: (line: string) => void;
}

/**
 * A scenario: a function that measures and returns its tables and targets.
 *
 * @example
 * ```ts
 * const run: Scenario = async ({ quick }) => ({ title: '', description: '', rounds: 1, config: { quick }, tables: [], targets: [], notes: [] });
 * ```
 */
export type Scenario = (options: ScenarioOptions) => Promise<ScenarioBody>;

/**
 * Builds a {@link TargetResult}, deciding `met` from the value.
 *
 * @example
 * ```ts
 * target({ id: 'p99', description: 'p99 ≤ 0.2× grpc-js', row: 'p2c', metric: 'p99Ratio', op: '<=', target: 0.2, value: 0.05, unit: '×' }).met; // true
 * ```
 */
export function target(t: Omit<TargetResult, 'met'>): TargetResult {
  const met = Number.isNaN(t.value) ? false : t.op === '>=' ? t.value >= t.target : t.value <= t.target;
  return { ...t, met };
}
