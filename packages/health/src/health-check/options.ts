/**
 * The options of {@link healthChecked}, their defaults and their checks.
 *
 * @module
 */
import { ConfigError } from '@grpc-tower/core';
import { numberOption, optionsObject, randomOption } from '../options.js';

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
  /** Growth per failed attempt (≥ 1); default 1.6. */
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

/** Checks `options` and fills in the defaults; throws `ConfigError` naming the first bad option. */
export function resolveHealthCheckOptions(
  options: HealthCheckOptions | undefined,
): ResolvedHealthCheckOptions {
  const o = optionsObject<HealthCheckOptions>(WHERE, 'options', options);
  const service = o.service ?? '';
  if (typeof service !== 'string') throw new ConfigError(WHERE, 'service', service, 'a string');
  const mode = o.mode ?? 'watch';
  if (mode !== 'watch' && mode !== 'check') {
    throw new ConfigError(WHERE, 'mode', mode, '"watch" or "check"');
  }
  const intervalMs = numberOption(WHERE, 'intervalMs', o.intervalMs, 10_000, { min: 0, minExclusive: true });
  const timeoutMs = numberOption(WHERE, 'timeoutMs', o.timeoutMs, 1_000, { min: 0, minExclusive: true });
  const b = optionsObject<HealthBackoffOptions>(WHERE, 'backoff', o.backoff);
  const initialMs = numberOption(WHERE, 'backoff.initialMs', b.initialMs, 1_000, {
    min: 0,
    minExclusive: true,
  });
  const maxMs = numberOption(WHERE, 'backoff.maxMs', b.maxMs, Math.max(30_000, initialMs), {
    min: initialMs,
  });
  const multiplier = numberOption(WHERE, 'backoff.multiplier', b.multiplier, 1.6, { min: 1 });
  const jitter = numberOption(WHERE, 'backoff.jitter', b.jitter, 0.2, { min: 0, max: 1 });
  return {
    service,
    mode,
    intervalMs,
    timeoutMs,
    backoff: { initialMs, maxMs, multiplier, jitter },
    random: randomOption(WHERE, o.random),
  };
}
