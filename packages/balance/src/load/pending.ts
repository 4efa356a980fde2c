/**
 * Least-request load (Envoy's `LEAST_REQUEST`, tower's `PendingRequests`):
 * the cost of an endpoint is its calls in flight, with no notion of time.
 *
 * @module
 */
import type { LoadMetric } from './metric.js';

/**
 * Least-request load: the cost of an endpoint is its calls in flight.
 *
 * @example
 * ```ts
 * const balancer = p2c(discover, { load: pendingRequests() });
 * ```
 */
export function pendingRequests(): LoadMetric {
  return {
    name: 'pending-requests',
    usesRoundTripTimes: false,
    create: (endpoint) => {
      const load = {
        pendingAtCost: 0,
        cost: () => {
          load.pendingAtCost = endpoint.pending;
          return load.pendingAtCost;
        },
        observe: () => undefined,
        estimateMs: () => undefined,
      };
      return load;
    },
  };
}
