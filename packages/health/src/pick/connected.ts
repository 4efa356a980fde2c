/**
 * Whether an endpoint's connection is up, for a balancer in panic mode.
 * The wrappers of this package report `failed` both for a server that is
 * unreachable and for one that is reachable but unhealthy or ejected; in
 * panic mode only the second kind can serve a call, so they expose
 * `connected`.
 *
 * @module
 */
import type { Readiness } from '@grpc-tower/core';

/**
 * Whether an endpoint's connection is up: its own `connected` flag when it
 * has one (the endpoints of `healthChecked` and `outlierDetection` do),
 * else whether it is `ready`.
 *
 * @example
 * ```ts
 * const candidates = known.filter(connectedOf); // in panic mode
 * ```
 */
export function connectedOf(endpoint: { readonly readiness: Readiness }): boolean {
  const flag = (endpoint as { connected?: unknown }).connected;
  return typeof flag === 'boolean' ? flag : endpoint.readiness === 'ready';
}
