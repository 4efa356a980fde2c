/**
 * Typed keys for request-scoped values. Each key is defined by the package
 * whose contract it is (the balancer's hints in `@grpc-tower/balance`, the
 * retry counts in `@grpc-tower/retry`); core defines none of its own.
 *
 * @module
 */

/**
 * A typed key for a request-scoped value.
 *
 * @example
 * ```ts
 * const TenantKey = contextKey<string>('tenant');
 * const ctx = background.withValue(TenantKey, 'acme');
 * ctx.get(TenantKey); // 'acme'
 * ```
 */
export interface ContextKey<T> {
  readonly description: string;
  /** Phantom field that carries the value type; never set. */
  readonly __type?: T;
}

/**
 * Creates a {@link ContextKey}. Keys compare by identity.
 *
 * @example
 * ```ts
 * const RequestIdKey = contextKey<string>('request-id');
 * ```
 */
export function contextKey<T>(description: string): ContextKey<T> {
  return Object.freeze({ description });
}
