/**
 * The options of {@link healthChecked}, their defaults and their checks.
 *
 * @module
 */
import { POSITIVE_TIMER_RULE, optionChecks } from '@grpc-tower/core/internal';

/**
 * How the health of an endpoint is asked:
 * - `watch`: one `grpc.health.v1.Health/Watch` stream per connection; the
 *   server pushes every change (gRPC A17, the default);
 * - `check`: a unary `Health/Check` every `intervalMs`, each bounded by
 *   `timeoutMs` (the classic polling probe, for servers or proxies that do
 *   not support Watch).
 *
 * @example
 * ```ts
 * const mode: HealthCheckMode = 'check';
 * ```
 */
export type HealthCheckMode = 'watch' | 'check';

/**
 * The backoff between attempts of a failed Watch: the first wait is
 * `initialMs`, each next one `multiplier` times longer up to `maxMs`, each
 * jittered by ±`jitter`. Any message from the server resets it, so the
 * next attempt after a stream that worked starts at once (gRPC A17).
 *
 * @example
 * ```ts
 * const fast: HealthBackoffOptions = { initialMs: 100, maxMs: 2_000 };
 * ```
 */
export interface HealthBackoffOptions {
  /** The first wait, in ms (> 0); default 1000. */
  readonly initialMs?: number;
  /** The longest wait, in ms (≥ `initialMs`); default 30 000. */
  readonly maxMs?: number;
  /** Growth per failed attempt (from 1 to 100); default 1.6. */
  readonly multiplier?: number;
  /** Relative jitter, from 0 to 1; default 0.2 (±20 %). */
  readonly jitter?: number;
}

/**
 * Options of {@link healthChecked}.
 *
 * @example
 * ```ts
 * const opts: HealthCheckOptions = { service: 'orders.v1.Orders', backoff: { initialMs: 250 } };
 * const polling: HealthCheckOptions = { mode: 'check', intervalMs: 5_000, timeoutMs: 1_000 };
 * ```
 */
export interface HealthCheckOptions {
  /** The service name sent in `HealthCheckRequest`; default `''` (the whole server). */
  readonly service?: string;
  /** `watch` (default) or `check` polling. */
  readonly mode?: HealthCheckMode;
  /** `check` mode: time between the end of one check and the start of the next, in ms (> 0); default 10 000. */
  readonly intervalMs?: number;
  /** `check` mode: how long one check may take before it counts as failed, in ms (> 0); default 1000. */
  readonly timeoutMs?: number;
  /** `watch` mode: the backoff between attempts of a failing Watch. */
  readonly backoff?: HealthBackoffOptions;
  /** The random source for the jitter, uniform in [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

/**
 * {@link HealthCheckOptions} with every default filled in.
 *
 * @example
 * ```ts
 * const { mode, service } = healthChecked().options; // 'watch', ''
 * ```
 */
export interface ResolvedHealthCheckOptions {
  readonly service: string;
  readonly mode: HealthCheckMode;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly backoff: Required<HealthBackoffOptions>;
  readonly random: () => number;
}

const WHERE = 'healthChecked';

/** A17's backoff between Watch attempts: 1 s growing ×1.6 to 30 s, ±20 %. */
const BACKOFF_DEFAULTS = { initialMs: 1_000, maxMs: 30_000, multiplier: 1.6, jitter: 0.2 };

/** Checks `options` and fills in the defaults; throws `ConfigError` naming the first bad option. */
export function resolveHealthCheckOptions(
  options: HealthCheckOptions | undefined,
): ResolvedHealthCheckOptions {
  const check = optionChecks(WHERE);
  const o = check.object<HealthCheckOptions>('options', options, {});
  const service = o.service ?? '';
  if (typeof service !== 'string') throw check.error('service', service, 'a string');
  const mode = check.oneOf('mode', o.mode, ['watch', 'check'] as const, 'watch');
  const intervalMs = check.number('intervalMs', o.intervalMs, POSITIVE_TIMER_RULE, 10_000);
  const timeoutMs = check.number('timeoutMs', o.timeoutMs, POSITIVE_TIMER_RULE, 1_000);
  const backoff = check.backoff('backoff', o.backoff, BACKOFF_DEFAULTS);
  const random = check.function('random', o.random, 'a function returning [0, 1)', Math.random);
  return { service, mode, intervalMs, timeoutMs, backoff, random };
}
