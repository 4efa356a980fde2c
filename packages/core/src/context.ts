/**
 * The per-call context: an `AbortSignal`, an absolute deadline and
 * request-scoped values. Every {@link Service.call} receives one. A context is
 * immutable; layers derive children from it.
 *
 * The invariant: a context's `signal` aborts no later than its `deadline`.
 * {@link withDeadline} is the only way to lower the deadline, and it arms the
 * timer that keeps the invariant; its `release()` clears that timer and the
 * listener on the parent signal.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { CancelledError, ConfigError, DeadlineExceededError } from './errors.js';

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

const neverAborts = new AbortController().signal;
// Any number of concurrent calls may listen on the root signal.
setMaxListeners(0, neverAborts);
const noValues: ReadonlyMap<ContextKey<unknown>, unknown> = new Map();
const MAX_TIMER_MS = 2_147_483_647;

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
  /** Aborts when the call must stop: caller cancel, deadline, or a layer's decision. */
  readonly signal: AbortSignal;
  /** The absolute deadline in ms since the epoch (`Date.now()` clock), or `Infinity`. */
  readonly deadline: number;
  readonly #values: ReadonlyMap<ContextKey<unknown>, unknown>;

  private constructor(
    signal: AbortSignal,
    deadline: number,
    values: ReadonlyMap<ContextKey<unknown>, unknown>,
  ) {
    this.signal = signal;
    this.deadline = deadline;
    this.#values = values;
  }

  /** @internal */
  static create(
    signal: AbortSignal,
    deadline = Number.POSITIVE_INFINITY,
    values: ReadonlyMap<ContextKey<unknown>, unknown> = noValues,
  ): CallContext {
    return new CallContext(signal, deadline, values);
  }

  /** The value stored under `key`, or `undefined`. */
  get<T>(key: ContextKey<T>): T | undefined {
    return this.#values.get(key) as T | undefined;
  }

  /** A child context with `key` set to `value`. */
  withValue<T>(key: ContextKey<T>, value: T): CallContext {
    const values = new Map(this.#values);
    values.set(key, value);
    return new CallContext(this.signal, this.deadline, values);
  }

  /**
   * A child context whose signal is `signal`. The caller must make sure that
   * `signal` aborts when this context's signal does (use {@link linkedScope}).
   */
  withSignal(signal: AbortSignal): CallContext {
    return new CallContext(signal, this.deadline, this.#values);
  }

  /** @internal a child with both a new signal and a (lower) deadline. */
  derive(signal: AbortSignal, deadline: number): CallContext {
    return new CallContext(signal, Math.min(deadline, this.deadline), this.#values);
  }

  /** Milliseconds left until the deadline (0 when it passed, `Infinity` when none). */
  remainingMs(now = Date.now()): number {
    return Math.max(0, this.deadline - now);
  }

  /** Throws the abort reason if the signal has aborted. */
  throwIfAborted(): void {
    if (this.signal.aborted) throw abortReason(this.signal);
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
export const background: CallContext = CallContext.create(neverAborts);

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

/** A derived context and the function that releases what it holds. */
export interface Scope {
  readonly context: CallContext;
  /** The controller behind `context.signal`: abort it to stop the call. */
  readonly controller: AbortController;
  /** Clears the timer and the parent listener. Idempotent. */
  release(): void;
}

/**
 * The reason a signal aborted, as an Error: the signal's own reason when it
 * is an Error, otherwise a {@link CancelledError}.
 *
 * @example
 * ```ts
 * signal.addEventListener('abort', () => reject(abortReason(signal)));
 * ```
 */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) {
    // AbortSignal.abort() without a reason yields a DOMException 'AbortError'.
    if (reason.name === 'AbortError') return new CancelledError(undefined, { cause: reason });
    if (reason.name === 'TimeoutError') return new DeadlineExceededError(reason.message, { cause: reason });
    return reason;
  }
  return new CancelledError(reason === undefined ? undefined : String(reason));
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
  const controller = new AbortController();
  // Layers (retries, hedges) may attach many children to one call's signal.
  setMaxListeners(0, controller.signal);
  const effective = Math.min(deadline, parent.deadline);
  const context = parent.derive(controller.signal, effective);
  const parentSignal = parent.signal;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onParentAbort = (): void => {
    release();
    controller.abort(abortReason(parentSignal));
  };
  const release = (): void => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    parentSignal.removeEventListener('abort', onParentAbort);
  };
  if (parentSignal.aborted) {
    controller.abort(abortReason(parentSignal));
    return { context, controller, release };
  }
  // The root signal never aborts: listening on it would only pile up listeners.
  if (parentSignal !== neverAborts) parentSignal.addEventListener('abort', onParentAbort, { once: true });
  // Only arm a timer when this scope lowers the deadline; the parent's own
  // deadline is already enforced by the parent's signal.
  if (Number.isFinite(deadline) && deadline < parent.deadline) {
    const started = Date.now();
    const arm = (): void => {
      // setTimeout fires at once for delays above 2^31-1 ms (about 24.8 days):
      // wait in steps until the deadline is within range.
      const delay = Math.max(0, deadline - Date.now());
      timer = setTimeout(
        () => {
          timer = undefined;
          if (Date.now() < deadline) {
            arm();
            return;
          }
          release();
          controller.abort(onDeadline(Date.now() - started));
        },
        Math.min(delay, MAX_TIMER_MS),
      );
    };
    arm();
  }
  return { context, controller, release };
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

function defaultDeadlineError(ms: number): Error {
  return new DeadlineExceededError(`deadline exceeded after ${ms} ms`);
}

/**
 * Resolves after `ms`, or rejects with the abort reason as soon as `signal`
 * aborts; the timer and the listener are released either way.
 *
 * @example
 * ```ts
 * await sleep(25, ctx.signal);
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Races `promise` against `signal`: rejects with the abort reason when the
 * signal aborts first, and removes its listener when the promise settles.
 * The promise itself is not cancelled; pass the signal to it for that.
 *
 * @example
 * ```ts
 * const res = await raceSignal(fetchSomething(), ctx.signal);
 * ```
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      promise.catch(() => undefined);
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * A hint for balancers: addresses this call should avoid when another ready
 * endpoint exists. Retry layers set it to the endpoints that already failed
 * the call; hedging sets it to the endpoints already tried.
 *
 * @example
 * ```ts
 * const next = ctx.withValue(AvoidEndpoints, new Set(['127.0.0.2:50051']));
 * ```
 */
export const AvoidEndpoints: ContextKey<ReadonlySet<string>> = contextKey<ReadonlySet<string>>(
  'grpc-tower.avoid-endpoints',
);

/**
 * A callback through which a balancer reports the endpoint it picked for an
 * attempt, just before sending it there. Hedging uses it to keep a hedge off
 * endpoints where earlier hedges of the same call are still running (a
 * failure names its endpoint, an attempt in flight does not). A balancer
 * that does not call it still works; hedges then avoid only endpoints that
 * already failed.
 *
 * @example
 * ```ts
 * // in a balancer's call():
 * const ep = pick(ctx.get(AvoidEndpoints));
 * ctx.get(EndpointPicked)?.(ep.address);
 * return ep.call(req, ctx);
 * ```
 */
export const EndpointPicked: ContextKey<(address: string) => void> = contextKey<(address: string) => void>(
  'grpc-tower.endpoint-picked',
);
