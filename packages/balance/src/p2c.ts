/**
 * Power-of-two-choices load balancing (P2C) over a discovered set of
 * endpoints.
 *
 * The algorithm: for each call, draw two distinct endpoints uniformly at
 * random from the ready ones and send the call to the one with the lower
 * load. Mitzenmacher showed ("The Power of Two Choices in Randomized Load
 * Balancing", 2001) that this second choice lowers the maximum load
 * exponentially compared with one random choice, while needing no global
 * ordering of endpoints, so the pick costs the same with 3 endpoints or
 * 10 000. The default load is PeakEWMA ({@link peakEwma}), as designed for
 * Finagle and used by Linkerd and by tower's `balance::p2c`; least-request
 * ({@link pendingRequests}) and your own load function plug in the same way.
 *
 * Compared with tower's p2c balancer, which this follows:
 * - a call never waits forever for an endpoint: with none ready it waits at
 *   most `failFastMs` or its deadline, then fails with a
 *   {@link NoReadyEndpointError} that names the target and counts the
 *   endpoints known, connecting, failed and ejected;
 * - a failed endpoint stays known and returns as soon as its connection
 *   does, instead of being dropped until discovery inserts it again;
 * - discovery changes and readiness changes apply when they happen, not
 *   when the next request polls the balancer, so an idle client is current
 *   when traffic resumes;
 * - removals and replacements drain the old endpoint's calls in flight.
 *
 * This module is the balancer a user makes: it checks the options and
 * builds a `Balancer` over the pick, which is `pick/p2c.ts`'s `p2cPicker`.
 *
 * @module
 */
import { ConfigError, type Discover, type Endpoint } from '@grpc-tower/core';
import { optionChecks } from '@grpc-tower/core/internal';
import { Balancer } from './balancer.js';
import { loadFunction } from './load/load-function.js';
import type { LoadFunction, LoadMetric } from './load/metric.js';
import { peakEwma } from './load/peak-ewma.js';
import { type BalancerOptions, resolveOptions } from './options.js';
import { p2cPicker } from './pick/p2c.js';
import type { SlowStartWeight } from './pick/picker.js';

/**
 * Options of {@link p2c}.
 *
 * @example
 * ```ts
 * const options: P2cOptions = { target: 'orders', load: pendingRequests(), random: seededRandom(1) };
 * ```
 */
export interface P2cOptions extends BalancerOptions {
  /**
   * How an endpoint's load is measured: a {@link LoadMetric}, or a
   * {@link LoadFunction} from an endpoint to its cost. Default
   * `peakEwma()` (30 ms seed, 10 s decay, 1 ms floor).
   */
  readonly load?: LoadMetric | LoadFunction;
  /**
   * Slow start (off by default): a weight `(readySinceMs, nowMs) => (0, 1]`
   * for an endpoint that became ready at `readySinceMs` (on the
   * `performance.now()` clock), such as `slowStart({ windowMs: 30_000 })`
   * from `@grpc-tower/health`. A drawn endpoint is kept with probability
   * equal to its weight, else drawn again, so a cold server's share grows
   * over the window as in Envoy's slow start.
   */
  readonly slowStart?: SlowStartWeight;
  /**
   * Two candidates with the same calls in flight whose costs are within
   * this fraction of each other count as equally loaded and take turns,
   * instead of the lower one winning: identical servers then share evenly
   * (weighted ones in proportion to their weights) even when no call is in
   * flight and their latency estimates differ by noise. A number ≥ 0;
   * default 1, so estimates within 2× of each other tie (on loopback,
   * identical servers' PeakEWMA estimates differ by more than 50 % from
   * call to call) and a server more than twice as slow loses; fewer calls
   * in flight always wins. 0 is classic P2C: the lower cost wins unless
   * the costs are equal.
   */
  readonly tieTolerance?: number;
}

/** The default {@link P2cOptions.tieTolerance}. */
const TIE_TOLERANCE = 1;

const isMetric = (x: unknown): x is LoadMetric =>
  typeof x === 'object' && x !== null && typeof (x as { create?: unknown }).create === 'function';

/**
 * Creates a P2C balancer over `discover`: each call goes to the less loaded
 * of two distinct ready endpoints drawn at random (the only one when one is
 * ready; ties go either way).
 *
 * @example
 * ```ts
 * import { p2c, peakEwma } from '@grpc-tower/balance';
 * import { createChannel } from '@grpc-tower/core/grpc';
 *
 * const balancer = p2c(endpoints$, { target: 'dns:orders:50051', load: peakEwma() });
 * const channel = createChannel(balancer, { target: 'dns:orders:50051' });
 * ```
 */
export function p2c<Req, Res, K>(
  discover: Discover<K, Endpoint<Req, Res>>,
  options: P2cOptions = {},
): Balancer<Req, Res, K> {
  const resolved = resolveOptions('p2c', discover, options);
  const load = options.load ?? peakEwma();
  let metric: LoadMetric;
  if (typeof load === 'function') metric = loadFunction(load);
  else if (isMetric(load)) metric = load;
  else
    throw new ConfigError(
      'p2c',
      'load',
      load,
      'a LoadMetric (such as peakEwma()) or a function of an endpoint',
    );
  const slowStart = options.slowStart;
  if (slowStart !== undefined && typeof slowStart !== 'function') {
    throw new ConfigError(
      'p2c',
      'slowStart',
      slowStart,
      'a function (readySinceMs, nowMs) => weight in (0, 1]',
    );
  }
  const tieTolerance = optionChecks('p2c').number(
    'tieTolerance',
    options.tieTolerance,
    { min: 0 },
    TIE_TOLERANCE,
  );
  return new Balancer(
    discover,
    () => p2cPicker(resolved.random, () => performance.now(), slowStart, tieTolerance),
    metric,
    resolved,
  );
}
