/**
 * The one runtime test of the {@link Endpoint} contract, for the packages
 * that take endpoints from their users (a balancer's discovery stream, the
 * health wrappers, `connect`'s factory) and must refuse anything else with
 * a named error instead of failing later on a missing method.
 *
 * @internal
 * @module
 */
import type { Endpoint } from '../endpoint.js';

/**
 * Whether `x` has what every {@link Endpoint} has: `call`, `close`, a
 * string `address` and a subscribable `readiness$`. A structural check, so
 * endpoints from any package (or a user's own) pass.
 *
 * @internal
 * @example
 * ```ts
 * if (!isEndpoint(change.endpoint)) throw new TypeError('not an Endpoint');
 * ```
 */
export function isEndpoint(x: unknown): x is Endpoint<unknown, unknown> {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as { call?: unknown }).call === 'function' &&
    typeof (x as { close?: unknown }).close === 'function' &&
    typeof (x as { address?: unknown }).address === 'string' &&
    typeof (x as { readiness$?: { subscribe?: unknown } }).readiness$?.subscribe === 'function'
  );
}
