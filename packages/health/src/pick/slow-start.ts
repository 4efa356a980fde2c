/**
 * Slow start, as in Envoy's slow start mode: an endpoint that has just
 * become ready gets a weight that grows from `minWeightPercent` to 1 over
 * `windowMs`, so a cold server (empty caches, JIT not warm, pools not
 * filled) is not flooded with its full share at once:
 *
 *   weight = max(minWeightPercent / 100, timeFactor ^ (1 / aggression)),
 *   timeFactor = elapsed / windowMs,
 *
 * and 1 once the window has passed. `aggression` above 1 ramps up faster
 * early, below 1 slower. (Envoy floors the elapsed time at one second; here
 * the minimum weight does that job, so windows shorter than a second still
 * ramp.)
 *
 * This is a pure function for a picker to use. How a P2C balancer applies
 * it: remember when each endpoint last turned `ready` (`readySinceMs`), and
 * draw each of the two candidates with a probability proportional to its
 * weight — a uniform draw is kept with probability `weight`, else drawn
 * again, a few times at most — then compare their loads as usual. A new
 * endpoint is then offered about `weight` of its fair share of the draws,
 * and the load comparison still protects it when it is slow:
 *
 * ```ts
 * const weight = slowStart({ windowMs: 30_000 });
 * const draw = (ready, now) => {
 *   let c = ready[Math.floor(Math.random() * ready.length)];
 *   for (let i = 0; i < 8 && Math.random() >= weight(c.readySinceMs, now); i++) {
 *     c = ready[Math.floor(Math.random() * ready.length)];
 *   }
 *   return c;
 * };
 * ```
 *
 * (Dividing the load cost by the weight instead does not ramp under light
 * load: idle endpoints all cost the same, so the new one loses every
 * comparison until its window ends.) A picker that draws by weight already
 * (weighted random, EDF) multiplies the endpoint's weight by it.
 *
 * @module
 */
import { optionChecks } from '@grpc-tower/core/internal';

/**
 * Options of {@link slowStart}.
 *
 * @example
 * ```ts
 * const opts: SlowStartOptions = { windowMs: 30_000, aggression: 1, minWeightPercent: 10 };
 * ```
 */
export interface SlowStartOptions {
  /** How long the ramp lasts, in ms (≥ 0; 0 turns slow start off). Required. */
  readonly windowMs: number;
  /** The ramp's curve (> 0); 1 is linear. Default 1. */
  readonly aggression?: number;
  /** The weight at the start of the window, in percent (> 0 and ≤ 100). Default 10. */
  readonly minWeightPercent?: number;
}

/**
 * Makes the weight of an endpoint that became ready at `readySinceMs`, at
 * time `now` (same clock), in (0, 1], from Envoy's slow start parameters:
 * what `@grpc-tower/balance`'s `p2c` takes as its `slowStart` option (a
 * `SlowStartWeight`). Throws `ConfigError` for a bad option.
 *
 * @example
 * ```ts
 * const weight = slowStart({ windowMs: 10_000, minWeightPercent: 10 });
 * weight(0, 0);      // 0.1
 * weight(0, 2_500);  // 0.25
 * weight(0, 10_000); // 1
 * ```
 */
export function slowStart(options: SlowStartOptions): (readySinceMs: number, now: number) => number {
  const check = optionChecks('slowStart');
  const o = check.object('options', options);
  const windowMs = check.number('windowMs', o.windowMs, { min: 0 });
  const aggression = check.number('aggression', o.aggression, { min: 0, exclusive: true }, 1);
  const minWeight =
    check.number('minWeightPercent', o.minWeightPercent, { min: 0, exclusive: true, max: 100 }, 10) / 100;
  if (windowMs === 0) return () => 1;
  const exponent = 1 / aggression;
  return (readySinceMs, now) => {
    const elapsed = now - readySinceMs;
    if (!(elapsed < windowMs)) return 1; // also NaN-safe: a bad input weighs fully
    const factor = Math.max(0, elapsed) / windowMs;
    return Math.min(1, Math.max(minWeight, factor ** exponent));
  };
}
