/**
 * Scopes: a child context with a signal of its own, aborted when the parent
 * aborts, when a lower deadline passes, or on demand, and released when the
 * work under it is over. A scope's deadline timer is its
 * {@link CallControl}'s: the one deadline timer grpc-tower has.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { ConfigError, DeadlineExceededError } from '../errors.js';
import { type CallContext, background, derivedContext } from './call-context.js';
import { CallControl } from './control.js';

/** A derived context and the function that releases what it holds. */
export interface Scope {
  readonly context: CallContext;
  /** The controller behind `context.signal`: abort it to stop the call. */
  readonly controller: AbortController;
  /** Clears the timer and the parent listener. Idempotent. */
  release(): void;
}

function defaultDeadlineError(ms: number): Error {
  return new DeadlineExceededError(`deadline exceeded after ${ms} ms`);
}

/**
 * A scope is the owner of its own deadline: the timer is its control's,
 * armed only when the scope lowers its parent's deadline. Its context sees
 * only the control's signal (notes still go to the whole call's owner).
 */
class DeadlineScope extends CallControl implements Scope {
  readonly context: CallContext;
  readonly #onDeadline: (ms: number) => Error;
  #unhook: (() => void) | undefined;
  /** `release`, bound once (callers pass it on as a callback). */
  readonly release = (): void => {
    this.dispose();
    this.#unhook?.();
    this.#unhook = undefined;
  };

  constructor(parent: CallContext, deadline: number, onDeadline: (ms: number) => Error) {
    // only a scope that lowers the deadline arms a timer; the parent's own
    // deadline is already enforced by the parent's signal
    super(Number.isFinite(deadline) && deadline < parent.deadline ? deadline : Number.POSITIVE_INFINITY);
    this.#onDeadline = onDeadline;
    const signal = this.signal;
    // Layers (retries, hedges) may attach many children to one call's signal.
    setMaxListeners(0, signal);
    this.context = derivedContext(parent, signal, Math.min(deadline, parent.deadline));
    if (parent.aborted) {
      this.abort(parent.reason());
      return;
    }
    this.#unhook = parent.onAbort(() => {
      this.#unhook = undefined;
      this.abort(parent.reason());
    });
    this.start();
  }

  protected override deadlineError(elapsedMs: number): Error {
    return this.#onDeadline(elapsedMs);
  }

  protected override expired(): void {
    this.release();
  }
}

/**
 * A child context whose signal aborts when the parent's does, or when
 * `deadline` passes (with a {@link DeadlineExceededError} built by
 * `onDeadline`), or when the returned controller is aborted.
 * `release()` clears the timer and the listener on the parent.
 *
 * @example
 * ```ts
 * const scope = withDeadline(ctx, Date.now() + 100);
 * try { return await inner.call(req, scope.context); } finally { scope.release(); }
 * ```
 */
export function withDeadline(
  parent: CallContext,
  deadline: number,
  onDeadline: (ms: number) => Error = defaultDeadlineError,
): Scope {
  return new DeadlineScope(parent, deadline, onDeadline);
}

/**
 * Like {@link withDeadline} with a relative timeout in milliseconds.
 *
 * @example
 * ```ts
 * const scope = withTimeout(ctx, 250);
 * ```
 */
export function withTimeout(
  parent: CallContext,
  timeoutMs: number,
  onDeadline?: (ms: number) => Error,
): Scope {
  return withDeadline(parent, Date.now() + timeoutMs, onDeadline);
}

/**
 * A child context with its own controller that aborts when the parent's
 * signal does. Used to stop one attempt without stopping the whole call.
 *
 * @example
 * ```ts
 * const attempt = linkedScope(ctx);
 * attempt.controller.abort(new CancelledError('hedge lost'));
 * attempt.release();
 * ```
 */
export function linkedScope(parent: CallContext): Scope {
  return withDeadline(parent, Number.POSITIVE_INFINITY);
}

/**
 * Creates a root context from an optional signal and timeout, for callers
 * that start a call. Its `release()` must be called when the call is over.
 *
 * @example
 * ```ts
 * const scope = newContext({ signal: req.signal, timeoutMs: 1000 });
 * try { await svc.call(r, scope.context); } finally { scope.release(); }
 * ```
 */
export function newContext(
  options: { signal?: AbortSignal; timeoutMs?: number; deadline?: number } = {},
): Scope {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('newContext', 'options', options, 'an object');
  }
  const signal: unknown = options.signal;
  if (
    signal !== undefined &&
    (typeof (signal as { addEventListener?: unknown } | null)?.addEventListener !== 'function' ||
      typeof (signal as { aborted?: unknown }).aborted !== 'boolean')
  ) {
    throw new ConfigError('newContext', 'signal', signal, 'an AbortSignal');
  }
  for (const name of ['timeoutMs', 'deadline'] as const) {
    const v: unknown = options[name];
    if (v !== undefined && (typeof v !== 'number' || Number.isNaN(v))) {
      throw new ConfigError('newContext', name, v, 'a number of ms');
    }
  }
  const base = options.signal === undefined ? background : background.withSignal(options.signal);
  let deadline = options.deadline ?? Number.POSITIVE_INFINITY;
  if (options.timeoutMs !== undefined) deadline = Math.min(deadline, Date.now() + options.timeoutMs);
  return withDeadline(base, deadline);
}
