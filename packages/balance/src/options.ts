/**
 * The options that {@link p2c} and {@link roundRobin} share, and the one
 * place they are checked: a bad value throws a `ConfigError` that names the
 * balancer, the option and the value.
 *
 * @module
 */
import { POSITIVE_TIMER_RULE, TIMER_RULE, optionChecks } from '@grpc-tower/core/internal';

/**
 * Options shared by {@link p2c} and {@link roundRobin}.
 *
 * @example
 * ```ts
 * const options: BalancerOptions = { target: 'dns:orders:50051', failFastMs: 1000, drainGraceMs: 10_000 };
 * ```
 */
export interface BalancerOptions {
  /** The name of what is balanced, used in errors and stats, such as `'dns:orders:50051'`; default `'unnamed'`. */
  readonly target?: string;
  /**
   * How long a call waits for a ready endpoint when none is ready, in ms;
   * default 3000 (Linkerd's fail-fast). The call's deadline, when sooner,
   * ends the wait first. 0 fails at once.
   */
  readonly failFastMs?: number;
  /** Wait for a ready endpoint until the call's deadline or cancellation, with no fail-fast; default false. */
  readonly waitForReady?: boolean;
  /** The random source, uniform in [0, 1); default `Math.random`. Seed it for reproducible picks. */
  readonly random?: () => number;
  /** How long a removed or replaced endpoint may take to finish its calls, passed to its `close()`; default: the endpoint's own. */
  readonly drainGraceMs?: number;
  /**
   * When discovery inserts a new endpoint under a known key, how long the
   * old endpoint keeps serving while the new one is not ready yet, in ms;
   * default 10 000. The new one takes over as soon as it is ready, or as
   * soon as the old one stops being ready; past this wait it takes over
   * anyway and the old one drains, so an endpoint that never connects
   * cannot keep a replaced one open for ever. 0 replaces at once.
   */
  readonly replaceWaitMs?: number;
  /** How often `stats$` emits while nothing changes, in ms; default 1000. */
  readonly statsIntervalMs?: number;
  /**
   * Panic threshold in percent (Envoy, Finagle); default 50. When fewer
   * than this share of the known endpoints are ready, calls are balanced
   * across every endpoint whose connection is up (`endpoint.connected`),
   * including those a health check or outlier detection holds out, instead
   * of piling onto the few ready ones or failing. 0 disables it.
   */
  readonly panicThresholdPercent?: number;
  /**
   * Leave out of each call's round-trip time the time this process's event
   * loop was blocked while the call was in flight (a GC pause, a long
   * synchronous task); default true. The load metric then sees the
   * servers' latency rather than the client's own pauses, which would
   * otherwise be charged to whichever endpoints had calls in flight. Only
   * for load metrics that use round-trip times (not `pendingRequests()`,
   * nor `roundRobin`). See the balancing guide, "Client pauses".
   */
  readonly excludeLoopBlocks?: boolean;
}

/**
 * @internal Validated balancer options, every default filled in.
 *
 * @example
 * ```ts
 * const resolved: ResolvedOptions = resolveOptions('p2c', discover, { target: 'orders' });
 * resolved.replaceWaitMs; // 10000
 * ```
 */
export interface ResolvedOptions {
  readonly target: string;
  readonly failFastMs: number;
  readonly waitForReady: boolean;
  readonly random: () => number;
  readonly drainGraceMs: number | undefined;
  readonly replaceWaitMs: number;
  readonly statsIntervalMs: number;
  readonly panicThresholdPercent: number;
  readonly excludeLoopBlocks: boolean;
}

/**
 * @internal Checks the shared options; throws `ConfigError` naming `where`,
 * the option and the value.
 *
 * @example
 * ```ts
 * resolveOptions('p2c', discover, { failFastMs: -1 }); // ConfigError: p2c: option "failFastMs" ...
 * ```
 */
export function resolveOptions(where: string, discover: unknown, options: BalancerOptions): ResolvedOptions {
  const check = optionChecks(where);
  if (typeof (discover as { subscribe?: unknown } | null)?.subscribe !== 'function') {
    throw check.error('discover', discover, 'an Observable of Change (insert/remove) values');
  }
  check.object('options', options);
  const target = check.string('target', options.target, 'unnamed');
  // longer than a timer can wait is allowed: the call's signal ends such a wait
  const failFastMs = check.number('failFastMs', options.failFastMs, { min: 0 }, 3000);
  const waitForReady = check.boolean('waitForReady', options.waitForReady, false);
  const random = check.function<() => number>(
    'random',
    options.random,
    'a function returning [0, 1)',
    Math.random,
  );
  const drainGraceMs =
    options.drainGraceMs === undefined
      ? undefined
      : check.number('drainGraceMs', options.drainGraceMs, { min: 0 });
  const replaceWaitMs = check.number('replaceWaitMs', options.replaceWaitMs, TIMER_RULE, 10_000);
  const statsIntervalMs = check.number('statsIntervalMs', options.statsIntervalMs, POSITIVE_TIMER_RULE, 1000);
  const panicThresholdPercent = check.number(
    'panicThresholdPercent',
    options.panicThresholdPercent,
    { min: 0, max: 100 },
    50,
  );
  const excludeLoopBlocks = check.boolean('excludeLoopBlocks', options.excludeLoopBlocks, true);
  return {
    target,
    failFastMs,
    waitForReady,
    random,
    drainGraceMs,
    replaceWaitMs,
    statsIntervalMs,
    panicThresholdPercent,
    excludeLoopBlocks,
  };
}
