/**
 * Timeouts, after tower's `timeout` middleware: the inner call races a timer,
 * and the inner service receives a child context whose deadline is the lower
 * of the caller's and the timer's, so the limit propagates down the stack
 * (to a balancer waiting for an endpoint, to the deadline sent on the wire).
 * When the timer wins, the child signal aborts, which tells the inner service
 * to stop, and the call fails at once even if the inner service is slow to
 * notice.
 *
 * Two layers, two meanings:
 * - {@link timeout} bounds the whole call, every retry included. Put it
 *   outside the retry layer.
 * - {@link attemptTimeout} bounds one attempt. Put it inside the retry layer,
 *   so each attempt gets a fresh limit; it fails with
 *   {@link AttemptTimeoutError}, which a retry layer can choose to retry.
 *
 * ```ts
 * new ServiceBuilder<Req, Res>()
 *   .layer(timeout({ ms: 2_000 }))        // the whole call
 *   .layer(retry())                        // from @grpc-tower/retry
 *   .layer(attemptTimeout({ ms: 300 }))   // each attempt
 *   .service(balanced);
 * ```
 *
 * A caller's deadline that is sooner than the limit wins: then no timer is
 * armed and the caller's own deadline error is what the call fails with.
 *
 * One deadline authority: over a call that `createChannel` started, where
 * the context spans the whole call, the layer arms no timer of its own. It
 * lowers the call's deadline, which the call's one timer enforces, failing
 * with the layer's error and naming what the call was waiting for
 * (`"timeout layer: 500 ms passed, waiting for the response of
 * 10.0.0.7:50051"`). Elsewhere (a context of its own, or one attempt of a
 * retried call) it arms its timer and races the inner call as above.
 *
 * @module
 */
import { type CallContext, lowerDeadline, raceSignal, withTimeout } from '../../context/index.js';
import { DeadlineExceededError } from '../../errors.js';
import type { Service } from '../../service.js';
import { TIMER_RULE, optionChecks } from '../../internal/options.js';
import { forwardReady } from '../ready.js';
import { AttemptTimeoutError } from './errors.js';

/**
 * Options of {@link timeout}.
 *
 * @example
 * ```ts
 * const options: TimeoutOptions = { ms: 500 };
 * ```
 */
export interface TimeoutOptions {
  /** The most the whole call may take, in milliseconds: finite, >= 0 and <= 2147483647. */
  readonly ms: number;
}

/**
 * Options of {@link attemptTimeout}.
 *
 * @example
 * ```ts
 * const options: AttemptTimeoutOptions = { ms: 200 };
 * ```
 */
export interface AttemptTimeoutOptions {
  /** The most one attempt may take, in milliseconds: finite, >= 0 and <= 2147483647. */
  readonly ms: number;
}

/**
 * A layer that fails a call with {@link DeadlineExceededError}
 * (`"timeout layer: <ms> ms passed"`) when it takes longer than `ms`. The
 * inner service gets a child context with the lowered deadline. The service
 * it returns implements `ready()` when the inner one does.
 *
 * @throws ConfigError when `ms` is not a finite number in 0..2147483647.
 *
 * @example
 * ```ts
 * const svc = timeout({ ms: 500 })(inner);
 * await svc.call(req, background); // rejects with DeadlineExceededError after 500 ms
 * ```
 */
export function timeout(options: TimeoutOptions): <Req, Res>(inner: Service<Req, Res>) => Service<Req, Res> {
  const ms = checkMs('timeout', options);
  const onDeadline = (_elapsed?: number, waiting?: string): Error =>
    new DeadlineExceededError(`timeout layer: ${ms} ms passed${waiting === undefined ? '' : `, ${waiting}`}`);
  return (inner) => limitTime(inner, ms, onDeadline);
}

/**
 * A layer that bounds one attempt: like {@link timeout}, but meant to sit
 * inside a retry layer, and failing with {@link AttemptTimeoutError}
 * (`"attempt timeout layer: <ms> ms passed"`, status DEADLINE_EXCEEDED).
 *
 * @throws ConfigError when `ms` is not a finite number in 0..2147483647.
 *
 * @example
 * ```ts
 * const stack = new ServiceBuilder<Req, Res>()
 *   .layer(retry())
 *   .layer(attemptTimeout({ ms: 200 }))
 *   .service(endpoint);
 * ```
 */
export function attemptTimeout(
  options: AttemptTimeoutOptions,
): <Req, Res>(inner: Service<Req, Res>) => Service<Req, Res> {
  const ms = checkMs('attemptTimeout', options);
  const onDeadline = (): Error => new AttemptTimeoutError(ms);
  return (inner) => limitTime(inner, ms, onDeadline);
}

function checkMs(where: string, options: TimeoutOptions): number {
  const check = optionChecks(where);
  return check.number('ms', check.object('options', options).ms, TIMER_RULE);
}

function limitTime<Req, Res>(
  inner: Service<Req, Res>,
  ms: number,
  onDeadline: (elapsedMs?: number, waiting?: string) => Error,
): Service<Req, Res> {
  const withTimer = async (req: Req, ctx: CallContext): Promise<Res> => {
    const scope = withTimeout(ctx, ms, onDeadline);
    try {
      return await raceSignal(inner.call(req, scope.context), scope.context.signal);
    } finally {
      scope.release();
    }
  };
  return forwardReady(inner, {
    call(req: Req, ctx: CallContext): Promise<Res> {
      if (ctx.aborted) return Promise.reject(ctx.reason());
      // over a whole call, the call's own timer enforces the lower deadline
      const lowered = lowerDeadline(ctx, Date.now() + ms, onDeadline);
      if (lowered === undefined) return withTimer(req, ctx);
      try {
        return inner.call(req, lowered);
      } catch (err) {
        return Promise.reject(err);
      }
    },
  });
}
