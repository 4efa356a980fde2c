/**
 * The options of {@link outlierDetection}: gRPC A50's fields and defaults
 * (which are Envoy's `OutlierDetection` message), with Envoy's
 * consecutive-failure rule counting gRPC status codes instead of HTTP 5xx
 * (HTTP responses are mapped into them by the `protocol` option).
 *
 * @module
 */
import { Status, type StatusCode, type StatusName, parseStatus } from '@grpc-tower/core';
import {
  type DeadlineRule,
  type NumberRule,
  POSITIVE_TIMER_RULE,
  TIMER_RULE,
  deadlineRuleOptions,
  optionChecks,
} from '@grpc-tower/core/internal';
import type { Protocol } from '@grpc-tower/core';
import type { OutlierProtocol } from './protocol.js';

/**
 * A50's success-rate ejection: every interval, among the endpoints with at
 * least `requestVolume` calls, eject those whose success rate is below
 * `mean − stdev × stdevFactor / 1000`.
 *
 * @example
 * ```ts
 * const sr: SuccessRateEjectionOptions = { stdevFactor: 1900, requestVolume: 100 };
 * ```
 */
export interface SuccessRateEjectionOptions {
  /** The factor × 1000 applied to the standard deviation (≥ 0); default 1900 (1.9 σ). */
  readonly stdevFactor?: number;
  /** The chance, in percent, that a detected outlier is really ejected (0–100); default 100. */
  readonly enforcementPercentage?: number;
  /** How many endpoints need `requestVolume` calls in the interval for the rule to run (≥ 1); default 5. */
  readonly minimumHosts?: number;
  /** The calls an endpoint needs in the interval to be judged (≥ 1); default 100. */
  readonly requestVolume?: number;
}

/**
 * A50's failure-percentage ejection: every interval, eject each endpoint
 * with at least `requestVolume` calls whose failure percentage reaches
 * `threshold`.
 *
 * @example
 * ```ts
 * const fp: FailurePercentageEjectionOptions = { threshold: 85, requestVolume: 50 };
 * ```
 */
export interface FailurePercentageEjectionOptions {
  /** The failure percentage that ejects (0–100); default 85. */
  readonly threshold?: number;
  /** The chance, in percent, that a detected outlier is really ejected (0–100); default 100. */
  readonly enforcementPercentage?: number;
  /** How many endpoints must be known for the rule to run (≥ 1); default 5. */
  readonly minimumHosts?: number;
  /** The calls an endpoint needs in the interval to be judged (≥ 1); default 50. */
  readonly requestVolume?: number;
}

/**
 * Options of {@link outlierDetection}. Every field is optional; the
 * defaults are gRPC A50's and Envoy's.
 *
 * @example
 * ```ts
 * const opts: OutlierDetectionOptions = {
 *   consecutiveFailures: 5,
 *   baseEjectionTimeMs: 30_000,
 *   maxEjectionPercent: 10,
 *   failurePercentageEjection: true, // with A50's defaults
 * };
 * ```
 */
export interface OutlierDetectionOptions {
  /**
   * Eject an endpoint after this many failed calls in a row, at once
   * (Envoy's `consecutive_5xx`); an integer ≥ 0, 0 turns the rule off.
   * Default 5.
   */
  readonly consecutiveFailures?: number;
  /**
   * The status codes that count as a failure, by name or number (not OK).
   * Default `UNAVAILABLE`, `INTERNAL`, `UNKNOWN`, `DEADLINE_EXCEEDED`.
   * Only what the server or the connection produced is judged: any other
   * status from them counts as a success, while a call the caller
   * cancelled, a call a layer above stopped, and an error raised in this
   * process (a request refused before it was sent, a draining endpoint)
   * count as neither. `DEADLINE_EXCEEDED` counts only when the endpoint had
   * a fair chance (see `deadlineMinMs`). With a `protocol`, its responses
   * are judged by the codes it maps them to (with `httpOutcomes`,
   * `['UNAVAILABLE']` counts only 502, 503, 504 and failed connections).
   */
  readonly failureCodes?: readonly (StatusName | StatusCode)[];
  /**
   * A call that ended at its deadline (`DEADLINE_EXCEEDED`, from the call's
   * own timer or from the server enforcing it) counts against the endpoint
   * only when it had been on the endpoint for at least this long, in ms
   * (≥ 0), or for `deadlineLatencyFactor` × the endpoint's typical latency.
   * Otherwise the caller's deadline was too short and it counts as neither.
   * Default 1000.
   */
  readonly deadlineMinMs?: number;
  /**
   * ...or when it had been there at least this many times (≥ 1) the
   * endpoint's typical latency (a moving average of its successful calls,
   * taken as at least 10 ms; unknown until one succeeded). Default 10.
   */
  readonly deadlineLatencyFactor?: number;
  /** The time between analysis sweeps (rates, multiplier decay), in ms (> 0); default 10 000. */
  readonly intervalMs?: number;
  /** The base ejection time, in ms (≥ 0); an ejection lasts base × times ejected. Default 30 000. */
  readonly baseEjectionTimeMs?: number;
  /** The longest ejection, in ms (≥ 0); the cap is the larger of this and the base. Default 300 000. */
  readonly maxEjectionTimeMs?: number;
  /**
   * The largest share of the known endpoints that may be ejected at once,
   * in percent (0–100); at least one endpoint may always be ejected (A50).
   * Default 10.
   */
  readonly maxEjectionPercent?: number;
  /** Success-rate ejection: `true` for A50's defaults, an object to set them; default off. */
  readonly successRateEjection?: boolean | SuccessRateEjectionOptions;
  /** Failure-percentage ejection: `true` for A50's defaults, an object to set them; default off. */
  readonly failurePercentageEjection?: boolean | FailurePercentageEjectionOptions;
  /**
   * How responses are read: the protocol of the endpoint kind (core's
   * `Protocol`). Default: `grpcProtocol`, gRPC statuses (a unary
   * response's status, a stream's final status; a response without a
   * status is a success). `httpProtocol()` (or `httpOutcomes`) for HTTP
   * endpoints: 5xx responses fail (mapped to `UNAVAILABLE` or `INTERNAL`,
   * then judged by `failureCodes`), 4xx never do. Or a policy of your own
   * ({@link OutlierProtocol}).
   */
  readonly protocol?: OutlierProtocol | Protocol<unknown, unknown>;
  /** The random source for the enforcement percentages, uniform in [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

/**
 * {@link OutlierDetectionOptions} with every default filled in; a rule that
 * is off is `undefined`.
 *
 * @example
 * ```ts
 * outlierDetection().options.baseEjectionTimeMs; // 30000
 * ```
 */
export interface ResolvedOutlierDetectionOptions {
  readonly consecutiveFailures: number;
  readonly failureCodes: ReadonlySet<StatusCode>;
  /** When a deadline counts against the endpoint (`deadlineMinMs`, `deadlineLatencyFactor`). */
  readonly deadlineRule: DeadlineRule;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
  readonly successRateEjection: Required<SuccessRateEjectionOptions> | undefined;
  readonly failurePercentageEjection: Required<FailurePercentageEjectionOptions> | undefined;
  /** The protocol or policy, `undefined` for gRPC statuses. */
  readonly protocol: OutlierProtocol | Protocol<unknown, unknown> | undefined;
  readonly random: () => number;
}

const WHERE = 'outlierDetection';

/**
 * The default failure codes: the ones that say the server, not the
 * request, is at fault (`UNAVAILABLE`, `INTERNAL`, `UNKNOWN`,
 * `DEADLINE_EXCEEDED`) when the server or the connection produced them
 * (and, for `DEADLINE_EXCEEDED`, when the endpoint had a fair chance).
 *
 * @example
 * ```ts
 * outlierDetection({ failureCodes: [...DEFAULT_FAILURE_CODES, Status.RESOURCE_EXHAUSTED] });
 * ```
 */
export const DEFAULT_FAILURE_CODES: readonly StatusCode[] = [
  Status.UNAVAILABLE,
  Status.INTERNAL,
  Status.UNKNOWN,
  Status.DEADLINE_EXCEEDED,
];

const check = optionChecks(WHERE);
const percent: NumberRule = { min: 0, max: 100 };
const count: NumberRule = { min: 1, integer: true };

/** Checks `options` and fills in the defaults; throws `ConfigError` naming the first bad option. */
export function resolveOutlierOptions(
  options: OutlierDetectionOptions | undefined,
): ResolvedOutlierDetectionOptions {
  const o = check.object<OutlierDetectionOptions>('options', options, {});
  const consecutiveFailures = check.number(
    'consecutiveFailures',
    o.consecutiveFailures,
    { min: 0, integer: true },
    5,
  );
  const codes = o.failureCodes ?? DEFAULT_FAILURE_CODES;
  if (!Array.isArray(codes)) {
    throw check.error('failureCodes', codes, 'a list of status codes (names or numbers)');
  }
  const failureCodes = new Set<StatusCode>();
  codes.forEach((c: unknown, i: number) => {
    const code = parseStatus(c);
    if (code === undefined || code === Status.OK) {
      throw check.error(`failureCodes[${i}]`, c, 'a gRPC status code other than OK');
    }
    failureCodes.add(code);
  });
  const intervalMs = check.number('intervalMs', o.intervalMs, POSITIVE_TIMER_RULE, 10_000);
  const baseEjectionTimeMs = check.number('baseEjectionTimeMs', o.baseEjectionTimeMs, TIMER_RULE, 30_000);
  const maxEjectionTimeMs = check.number('maxEjectionTimeMs', o.maxEjectionTimeMs, TIMER_RULE, 300_000);
  const maxEjectionPercent = check.number('maxEjectionPercent', o.maxEjectionPercent, percent, 10);
  return {
    consecutiveFailures,
    failureCodes,
    deadlineRule: deadlineRuleOptions(check, o),
    intervalMs,
    baseEjectionTimeMs,
    maxEjectionTimeMs,
    maxEjectionPercent,
    successRateEjection: resolveSuccessRate(o.successRateEjection),
    failurePercentageEjection: resolveFailurePercentage(o.failurePercentageEjection),
    protocol: resolveProtocol(o.protocol),
    random: check.function('random', o.random, 'a function returning [0, 1)', Math.random),
  };
}

function resolveProtocol<P extends OutlierProtocol | Protocol<unknown, unknown>>(
  value: P | undefined,
): P | undefined {
  if (value === undefined) return undefined;
  const p = value as { name?: unknown; classify?: unknown; statusOf?: unknown; whenStatus?: unknown } | null;
  const reads =
    typeof p === 'object' &&
    p !== null &&
    typeof p.name === 'string' &&
    (typeof p.classify === 'function' ||
      (typeof p.statusOf === 'function' && typeof p.whenStatus === 'function'));
  if (!reads) {
    throw check.error(
      'protocol',
      value,
      "a Protocol (such as httpProtocol() from '@grpc-tower/core/http2') or an OutlierProtocol ({ name, classify })",
    );
  }
  return value;
}

function ruleObject<T extends object>(option: string, value: boolean | T | undefined): T | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return {} as T;
  return check.object<T>(option, value);
}

function resolveSuccessRate(
  value: boolean | SuccessRateEjectionOptions | undefined,
): Required<SuccessRateEjectionOptions> | undefined {
  const o = ruleObject('successRateEjection', value);
  if (o === undefined) return undefined;
  const at = (f: string) => `successRateEjection.${f}`;
  return {
    stdevFactor: check.number(at('stdevFactor'), o.stdevFactor, { min: 0 }, 1900),
    enforcementPercentage: check.number(at('enforcementPercentage'), o.enforcementPercentage, percent, 100),
    minimumHosts: check.number(at('minimumHosts'), o.minimumHosts, count, 5),
    requestVolume: check.number(at('requestVolume'), o.requestVolume, count, 100),
  };
}

function resolveFailurePercentage(
  value: boolean | FailurePercentageEjectionOptions | undefined,
): Required<FailurePercentageEjectionOptions> | undefined {
  const o = ruleObject('failurePercentageEjection', value);
  if (o === undefined) return undefined;
  const at = (f: string) => `failurePercentageEjection.${f}`;
  return {
    threshold: check.number(at('threshold'), o.threshold, percent, 85),
    enforcementPercentage: check.number(at('enforcementPercentage'), o.enforcementPercentage, percent, 100),
    minimumHosts: check.number(at('minimumHosts'), o.minimumHosts, count, 5),
    requestVolume: check.number(at('requestVolume'), o.requestVolume, count, 50),
  };
}
