/**
 * Load shedding, after tower's `load_shed`: instead of letting a call wait
 * for capacity, refuse it at once with {@link OverloadedError} when the inner
 * service is not ready to take it. The caller (or a balancer, or a retry
 * layer) can then go elsewhere without spending its deadline in a queue.
 *
 * Readiness is tower's `poll_ready` made synchronous: the inner service
 * implements {@link Ready} (`ready(): boolean`), as `concurrencyLimit` does
 * (a free slot) and `rateLimit` does (a token now), or the options give an
 * `isReady` callback, which wins when both exist. Layers that never refuse
 * calls themselves (`timeout`, `attemptTimeout`) pass their inner service's
 * `ready()` through, so `loadShed` may sit a few layers above the limit.
 *
 * ```ts
 * new ServiceBuilder<Req, Res>()
 *   .layer(loadShed())
 *   .layer(concurrencyLimit({ max: 32 }))
 *   .service(backend); // the 33rd concurrent call fails at once
 * ```
 *
 * @module
 */
import type { CallContext } from '../../context/index.js';
import { OverloadedError } from '../../errors.js';
import type { Service } from '../../service.js';
import { optionChecks } from '../../internal/options.js';
import { hasReady } from '../ready.js';

/**
 * Options of {@link loadShed}.
 *
 * @example
 * ```ts
 * const options: LoadShedOptions = { isReady: () => queueDepth() < 100 };
 * ```
 */
export interface LoadShedOptions {
  /**
   * Whether a call may go to the inner service now. Without it, the inner
   * service's own `ready()` is used; one of the two must exist.
   */
  readonly isReady?: () => boolean;
}

/**
 * A layer that refuses a call with {@link OverloadedError} (status
 * UNAVAILABLE) when the inner service is not ready, instead of waiting.
 *
 * @throws ConfigError when `isReady` is given but not a function, or, when
 * the layer is applied, when there is neither `isReady` nor an inner
 * `ready()` to ask.
 *
 * @example
 * ```ts
 * const svc = loadShed()(concurrencyLimit({ max: 1 })(inner));
 * ```
 */
export function loadShed(
  options: LoadShedOptions = {},
): <Req, Res>(inner: Service<Req, Res>) => Service<Req, Res> {
  const check = optionChecks('loadShed');
  const opts = check.object('options', options);
  if (opts.isReady !== undefined) check.function('isReady', opts.isReady, 'a function returning a boolean');
  return <Req, Res>(inner: Service<Req, Res>): Service<Req, Res> => {
    let ready: () => boolean;
    if (opts.isReady !== undefined) ready = opts.isReady;
    else if (hasReady(inner)) ready = () => inner.ready();
    else {
      throw check.error('isReady', undefined, 'a function when the inner service does not implement ready()');
    }
    return {
      async call(req: Req, ctx: CallContext): Promise<Res> {
        if (!ready()) {
          throw new OverloadedError('load shed: the inner service is not ready, call refused');
        }
        return inner.call(req, ctx);
      },
    };
  };
}
