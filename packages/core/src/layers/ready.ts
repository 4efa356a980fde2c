/**
 * Readiness for in-process services: tower's `poll_ready`, reduced to a
 * synchronous question. A service that can say whether it would take a call
 * right now, without waiting, implements {@link Ready}. The load-shed layer
 * asks it before each call and refuses the call when the answer is no.
 *
 * @module
 */

/**
 * A service that can tell whether it would start a call now, without
 * queueing or waiting. `concurrencyLimit` implements it (a free slot),
 * `rateLimit` too (a token in the bucket); `timeout` and `attemptTimeout`
 * pass their inner service's answer through.
 *
 * @example
 * ```ts
 * const limited = concurrencyLimit({ max: 8 })(inner);
 * if (limited.ready()) await limited.call(req, ctx);
 * ```
 */
export interface Ready {
  /** True when a call made now would start at once. */
  ready(): boolean;
}

/**
 * Whether `service` implements {@link Ready}.
 *
 * @internal
 * @example
 * ```ts
 * if (hasReady(inner)) inner.ready();
 * ```
 */
export function hasReady(service: object): service is Ready {
  return typeof (service as Partial<Ready>).ready === 'function';
}

/**
 * Gives `outer` a `ready()` that asks `inner`, when `inner` has one, so a
 * layer that never refuses calls itself stays transparent to load shedding.
 *
 * @internal
 * @example
 * ```ts
 * return forwardReady(inner, { call: (req, ctx) => inner.call(req, ctx) });
 * ```
 */
export function forwardReady<S extends object>(inner: object, outer: S): S {
  if (hasReady(inner)) {
    Object.defineProperty(outer, 'ready', { value: () => inner.ready(), enumerable: false });
  }
  return outer;
}
