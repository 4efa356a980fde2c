/**
 * The panic threshold of Envoy's load balancers (and Finagle's): when too
 * few of the known endpoints are usable, health checking is probably
 * wrong or the whole set is degraded, and sending every call to the few
 * that remain would overload them. Below the threshold a balancer ignores
 * readiness gating by health and outlier detection and balances across all
 * known endpoints instead of failing calls.
 *
 * This is a pure decision for a picker to use. How a P2C balancer applies
 * it, on every pick:
 *
 * ```ts
 * const panic = panicThreshold(50);
 * // known: active endpoints (not draining); usable: those whose readiness is 'ready'
 * let candidates = ready;
 * if (panic(known.length, ready.length)) {
 *   // draw two among every endpoint whose connection is up, even if health or
 *   // outlier detection holds it out; with none connected, among all of them
 *   const connected = known.filter(connectedOf);
 *   candidates = connected.length > 0 ? connected : known.filter((e) => e.readiness !== 'closed');
 * }
 * ```
 *
 * A call picked in panic goes to the endpoint even though its readiness is
 * `failed`: the endpoint wrappers of this package pass calls through
 * whatever their verdict. The balancer should report entering and leaving
 * panic (an event), and re-check the decision on every readiness change,
 * as it does for its ready set.
 *
 * @module
 */
import { optionChecks } from '@grpc-tower/core/internal';

/**
 * Decides, from how many endpoints are known and how many are usable,
 * whether the balancer is in panic: `true` when fewer than `percent` % of the
 * known endpoints are usable.
 *
 * @example
 * ```ts
 * const panic: PanicDecision = panicThreshold(50);
 * panic(4, 1); // true: 25 % usable
 * ```
 */
export type PanicDecision = (known: number, usable: number) => boolean;

/**
 * Makes a {@link PanicDecision} for a threshold in percent (0–100, default
 * 50 as in Envoy). `0` disables panic mode. With no known endpoint there is
 * nothing to balance across, so it is never panic. Throws `ConfigError`
 * for a threshold outside 0–100.
 *
 * @example
 * ```ts
 * const panic = panicThreshold(50);
 * panic(4, 2); // false: exactly 50 % usable
 * panic(4, 1); // true
 * panicThreshold(0)(4, 0); // false: disabled
 * ```
 */
export function panicThreshold(percent = 50): PanicDecision {
  optionChecks('panicThreshold').number('percent', percent, { min: 0, max: 100 });
  if (percent === 0) return () => false;
  return (known, usable) => known > 0 && usable * 100 < percent * known;
}
