/**
 * The per-call context: an `AbortSignal`, an absolute deadline and
 * request-scoped values. Every {@link Service.call} receives one. A context is
 * immutable; layers derive children from it.
 *
 * The invariant: a context's `signal` aborts no later than its `deadline`.
 *
 * What grpc-tower's own layers need beyond the public members (the call's
 * deadline notes, lowering a whole call's deadline, one attempt's part of
 * the call, the context a {@link CallControl} owns) are functions at the end
 * of this module, exported through `@grpc-tower/core/internal`, not members:
 * the class a user sees stays small.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { CancelledError } from '../errors.js';
import type { CallControl, CallPhase, CallWhere, OnDeadline } from './control.js';
import type { ContextKey } from './key.js';
import { abortReason } from './signal.js';

const neverAborts = new AbortController().signal;
// Any number of concurrent calls may listen on the root signal.
setMaxListeners(0, neverAborts);
const noValues: ReadonlyMap<ContextKey<unknown>, unknown> = new Map();
const noop = (): void => undefined;

/** What this module's functions read of a context (set once, by the class's static block). */
interface Inside {
  make(
    signal: AbortSignal | undefined,
    control: CallControl | undefined,
    whole: boolean,
    deadline: number,
    values: ReadonlyMap<ContextKey<unknown>, unknown>,
  ): CallContext;
  signal(ctx: CallContext): AbortSignal | undefined;
  control(ctx: CallContext): CallControl | undefined;
  whole(ctx: CallContext): boolean;
  values(ctx: CallContext): ReadonlyMap<ContextKey<unknown>, unknown>;
}
let inside: Inside;

/**
 * The context of one call.
 *
 * @example
 * ```ts
 * const { context, release } = withTimeout(background, 500);
 * try { await svc.call(req, context); } finally { release(); }
 * ```
 */
export class CallContext {
  /** The absolute deadline in ms since the epoch (`Date.now()` clock), or `Infinity`. */
  readonly deadline: number;
  /** The signal, or `undefined` when it is the control's (created only when asked for). */
  readonly #signal: AbortSignal | undefined;
  /** The owner of the whole call's deadline, when one owns it: notes go there. */
  readonly #control: CallControl | undefined;
  /** Whether this context spans the whole call, so a layer may lower the call's deadline through it. */
  readonly #whole: boolean;
  readonly #values: ReadonlyMap<ContextKey<unknown>, unknown>;

  private constructor(
    signal: AbortSignal | undefined,
    control: CallControl | undefined,
    whole: boolean,
    deadline: number,
    values: ReadonlyMap<ContextKey<unknown>, unknown>,
  ) {
    this.#signal = signal;
    this.#control = control;
    this.#whole = whole;
    this.deadline = deadline;
    this.#values = values;
  }

  static {
    inside = {
      make: (signal, control, whole, deadline, values) =>
        new CallContext(signal, control, whole, deadline, values),
      signal: (ctx) => ctx.#signal,
      control: (ctx) => ctx.#control,
      whole: (ctx) => ctx.#whole,
      values: (ctx) => ctx.#values,
    };
  }

  /** Aborts when the call must stop: caller cancel, deadline, or a layer's decision. */
  get signal(): AbortSignal {
    return this.#signal ?? (this.#control as CallControl).signal;
  }

  /** Whether the call must stop (`signal.aborted`, without creating the signal). */
  get aborted(): boolean {
    return this.#signal === undefined ? (this.#control as CallControl).aborted : this.#signal.aborted;
  }

  /**
   * Why the call stopped, as an Error (see {@link abortReason}); read it
   * once `aborted` is true. Unlike `signal.reason`, it creates no signal
   * for a call that has none yet.
   *
   * @example
   * ```ts
   * if (ctx.aborted) return Promise.reject(ctx.reason());
   * ```
   */
  reason(): Error {
    if (this.#signal === undefined) {
      return (this.#control as CallControl).reason ?? new CancelledError();
    }
    return abortReason(this.#signal);
  }

  /**
   * Runs `hook` once when the call stops (at once if it did) and returns
   * the function that removes it. Unlike a listener on `signal`, it creates
   * no signal for a call that has none yet, so a layer that only needs to
   * know when the call stops costs no `AbortController`.
   *
   * @example
   * ```ts
   * const off = ctx.onAbort(() => stream.destroy(ctx.reason()));
   * try { return await read(stream); } finally { off(); }
   * ```
   */
  onAbort(hook: () => void): () => void {
    if (this.#signal === undefined) return (this.#control as CallControl).onAbort(hook);
    const signal = this.#signal;
    if (signal.aborted) {
      hook();
      return noop;
    }
    if (signal === neverAborts) return noop;
    signal.addEventListener('abort', hook, { once: true });
    return () => signal.removeEventListener('abort', hook);
  }

  /** The value stored under `key`, or `undefined`. */
  get<T>(key: ContextKey<T>): T | undefined {
    return this.#values.get(key) as T | undefined;
  }

  /** A child context with `key` set to `value`. */
  withValue<T>(key: ContextKey<T>, value: T): CallContext {
    const values = new Map(this.#values);
    values.set(key, value);
    return new CallContext(this.#signal, this.#control, this.#whole, this.deadline, values);
  }

  /**
   * A child context whose signal is `signal`. The caller must make sure that
   * `signal` aborts when this context's signal does (use {@link linkedScope}).
   */
  withSignal(signal: AbortSignal): CallContext {
    return new CallContext(signal, this.#control, false, this.deadline, this.#values);
  }

  /** Milliseconds left until the deadline (0 when it passed, `Infinity` when none). */
  remainingMs(now = Date.now()): number {
    return Math.max(0, this.deadline - now);
  }

  /** Throws the abort reason if the signal has aborted. */
  throwIfAborted(): void {
    if (this.aborted) throw this.reason();
  }
}

/**
 * The root context: never aborts, no deadline, no values.
 *
 * @example
 * ```ts
 * await svc.call(req, background);
 * ```
 */
export const background: CallContext = inside.make(
  neverAborts,
  undefined,
  false,
  Number.POSITIVE_INFINITY,
  noValues,
);

/**
 * The context of a whole call owned by `control`: its signal is the
 * control's, created only when read; a whole-call layer may lower the
 * control's deadline through it ({@link lowerDeadline}).
 *
 * @internal
 * @example
 * ```ts
 * const control = new CallControl(deadline, (err) => fail(err));
 * const ctx = ownedContext(control);
 * control.start();
 * ```
 */
export function ownedContext(control: CallControl): CallContext {
  return inside.make(undefined, control, true, control.deadline, noValues);
}

/**
 * Records what the call of `ctx` is doing now, for its deadline error (a
 * no-op when no {@link CallControl} owns the call).
 *
 * @internal
 * @example
 * ```ts
 * noteCall(ctx, 'connecting', endpoint.address);
 * ```
 */
export function noteCall(ctx: CallContext, phase: CallPhase, where?: CallWhere): void {
  inside.control(ctx)?.note(phase, where);
}

/**
 * A child of `ctx` whose deadline is `deadline`, enforced by the call's own
 * deadline timer (failing with `onDeadline`) instead of a new timer;
 * `undefined` when `ctx` does not span a whole call owned by a
 * {@link CallControl}, or when it already aborted.
 *
 * @internal
 * @example
 * ```ts
 * const lowered = lowerDeadline(ctx, Date.now() + 500, onDeadline) ?? fallback();
 * ```
 */
export function lowerDeadline(
  ctx: CallContext,
  deadline: number,
  onDeadline: OnDeadline,
): CallContext | undefined {
  const control = inside.control(ctx);
  if (!inside.whole(ctx) || control === undefined || ctx.aborted) return undefined;
  if (!(deadline < ctx.deadline)) return ctx;
  control.lower(deadline, onDeadline);
  return inside.make(inside.signal(ctx), control, true, deadline, inside.values(ctx));
}

/**
 * The same context for one part of the call (an attempt): it shares the
 * call's signal, but a layer below cannot lower the whole call's deadline
 * through it.
 *
 * @internal
 * @example
 * ```ts
 * await inner.call(req, callPart(ctx));
 * ```
 */
export function callPart(ctx: CallContext): CallContext {
  if (!inside.whole(ctx)) return ctx;
  return inside.make(inside.signal(ctx), inside.control(ctx), false, ctx.deadline, inside.values(ctx));
}

/**
 * Whether the owner of the signal of `ctx` settles the call as soon as it
 * aborts (a channel's call and an undici exchange do), so a layer need not
 * race it.
 *
 * @internal
 * @example
 * ```ts
 * if (settledOnAbort(ctx)) return promise;
 * ```
 */
export function settledOnAbort(ctx: CallContext): boolean {
  return inside.signal(ctx) === undefined;
}

/**
 * A child of `ctx` with both a new signal and a (lower) deadline, whose
 * deadline notes still go to the call's owner.
 *
 * @internal
 * @example
 * ```ts
 * const child = derivedContext(ctx, controller.signal, Date.now() + 100);
 * ```
 */
export function derivedContext(ctx: CallContext, signal: AbortSignal, deadline: number): CallContext {
  return inside.make(
    signal,
    inside.control(ctx),
    false,
    Math.min(deadline, ctx.deadline),
    inside.values(ctx),
  );
}
