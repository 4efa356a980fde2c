/**
 * Round robin over the ready endpoints: the baseline the P2C balancer is
 * measured against. It has the same contract as {@link p2c} (readiness and
 * discovery applied as they happen, bounded waiting, draining, stats) and
 * differs only in the pick: the next ready endpoint in turn, whatever its
 * load. The order follows the ready set, which changes as endpoints come
 * and go.
 *
 * @module
 */
import type { Discover, Endpoint } from '@grpc-tower/core';
import { Balancer } from './balancer.js';
import { pendingRequests } from './load/pending.js';
import { type BalancerOptions, resolveOptions } from './options.js';
import { roundRobinPicker } from './pick/round-robin.js';

/**
 * Creates a round-robin balancer over `discover`. Its stats report each
 * endpoint's pending calls as the cost.
 *
 * @example
 * ```ts
 * const balancer = roundRobin(endpoints$, { target: 'orders' });
 * const res = await balancer.call(req, ctx);
 * ```
 */
export function roundRobin<Req, Res, K>(
  discover: Discover<K, Endpoint<Req, Res>>,
  options: BalancerOptions = {},
): Balancer<Req, Res, K> {
  const resolved = resolveOptions('roundRobin', discover, options);
  return new Balancer(discover, roundRobinPicker, pendingRequests(), resolved);
}
