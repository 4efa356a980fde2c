/**
 * A user's own load as a plain function of an endpoint, turned into a
 * {@link LoadMetric} that keeps no state and ignores round-trip times.
 *
 * @module
 */
import { optionChecks } from '@grpc-tower/core/internal';
import type { LoadFunction, LoadMetric } from './metric.js';

/**
 * Turns a {@link LoadFunction} into a {@link LoadMetric}.
 *
 * @example
 * ```ts
 * const metric = loadFunction((ep) => ep.pending, 'pending');
 * ```
 */
export function loadFunction(fn: LoadFunction, name = 'custom'): LoadMetric {
  optionChecks('loadFunction').function('fn', fn);
  return {
    name,
    usesRoundTripTimes: false,
    create: (endpoint) => ({
      cost: () => fn(endpoint),
      observe: () => undefined,
      estimateMs: () => undefined,
    }),
  };
}
