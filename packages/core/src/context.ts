/**
 * The per-call context: an `AbortSignal`, an absolute deadline and
 * request-scoped values. Every {@link Service.call} receives one. A context is
 * immutable; layers derive children from it.
 *
 * The invariant: a context's `signal` aborts no later than its `deadline`.
 * {@link withDeadline} lowers the deadline and arms the timer that keeps the
 * invariant; its `release()` clears that timer and the listener on the
 * parent signal.
 *
 * One deadline authority per call: a call that `createChannel` starts is
 * owned by a {@link CallControl}, which runs the call's one deadline timer,
 * lets a whole-call layer (the timeout layer) lower that deadline without a
 * timer of its own, names in its deadline error what the call was waiting
 * for, and creates the call's `AbortSignal` only when something reads
 * `signal` (layers that only need to know whether the call stopped, or to
 * run a hook when it does, use `aborted` and the internal `onAbort`).
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { CancelledError, ConfigError, DeadlineExceededError } from './errors.js';
import { MAX_TIMER_MS } from './internal/timers.js';

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

/**
 * What a call is doing, as its deadline error names it:
 * - `endpoint`: waiting for an endpoint (in a balancer's queue, say), no attempt in flight;
 * - `connecting`: an attempt waits for its endpoint's connection;
 * - `in-flight`: an attempt was sent and no response has come yet;
 * - `backoff`: waiting in a retry backoff;
 * - `response`: receiving a committed (streaming) response.
 *
 * @internal
 */
export type CallPhase = 'endpoint' | 'connecting' | 'in-flight' | 'backoff' | 'response';

/**
 * Where a call is, as {@link CallControl.note} records it: an endpoint's
 * address, or (while waiting for an endpoint) a function that describes
 * what the call waits for, read only when a deadline error is made.
 *
 * @internal
 */
export type CallWhere = string | (() => string);

const describePhase = (phase: CallPhase, at: CallWhere | undefined): string => {
  const where = typeof at === 'function' ? at() : at;
  switch (phase) {
    case 'endpoint':
      return where === undefined
        ? 'before the call reached a server, waiting for an endpoint'
        : `before the call reached a server, waiting for a ready endpoint for ${where}`;
    case 'connecting':
      return `before the call reached a server, waiting for a connection to ${where}`;
    case 'backoff':
      return 'before the call reached a server again, waiting in a retry backoff';
    case 'in-flight':
      return `waiting for the response of ${where}`;
    case 'response':
      return `on ${where}`;
  }
};

/**
 * The owner of one call's cancellation and deadline (the channel's call):
 * the call's one deadline timer, lowered by whole-call layers through their
 * contexts; the abort reason and hooks run when the call stops; and an
 * `AbortSignal` created only when somebody asks for it.
 *
 * @internal
 * @example
 * ```ts
 * const control = new CallControl(Date.now() + 1_000, (err) => finish(err));
 * const ctx = CallContext.owned(control);
 * control.start();
 * // ... later
 * control.dispose();
 * ```
 */
export class CallControl {
  #deadline: number;
  #onDeadline: ((elapsedMs: number, waiting: string) => Error) | undefined;
  readonly #onExpired: ((reason: Error) => void) | undefined;
  #started = 0;
  #running = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #reason: Error | undefined;
  #controller: AbortController | undefined;
  #hooks: (() => void)[] | undefined;
  #phase: CallPhase = 'endpoint';
  #where: CallWhere | undefined;

  /** `onExpired` runs after the call aborted because its deadline passed. */
  constructor(deadline: number, onExpired?: (reason: Error) => void) {
    this.#deadline = deadline;
    this.#onExpired = onExpired;
  }

  /** The call's deadline now (ms since the epoch, or `Infinity`). */
  get deadline(): number {
    return this.#deadline;
  }

  /** Whether the call stopped. */
  get aborted(): boolean {
    return this.#reason !== undefined;
  }

  /** Why the call stopped, once it did. */
  get reason(): Error | undefined {
    return this.#reason;
  }

  /**
   * The call's signal, created on first use (already aborted if the call
   * stopped). grpc-tower's own layers follow the call through hooks
   * ({@link CallControl.onAbort}), not through listeners on this signal.
   */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = new AbortController();
      if (this.#reason !== undefined) controller.abort(this.#reason);
      this.#controller = controller;
    }
    return this.#controller.signal;
  }

  /**
   * Starts the call's clock and arms the deadline timer. A deadline lowered
   * before (by the layers the call went through synchronously) is armed
   * once, at its lowered value.
   */
  start(started = Date.now()): void {
    this.#started = started;
    this.#running = true;
    if (this.#reason === undefined) this.#arm();
  }

  /**
   * Lowers the deadline to `deadline` (no-op when it is not lower); when it
   * passes, the call aborts with `onDeadline(elapsed, waiting)`.
   */
  lower(deadline: number, onDeadline: (elapsedMs: number, waiting: string) => Error): void {
    if (!(deadline < this.#deadline) || this.#reason !== undefined) return;
    this.#deadline = deadline;
    this.#onDeadline = onDeadline;
    // before start() the timer is armed there, once; after, it is armed again now
    if (this.#running) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#arm();
    }
  }

  /** Records what the call is doing now, for its deadline error. */
  note(phase: CallPhase, where?: CallWhere): void {
    this.#phase = phase;
    this.#where = where;
  }

  /** What the call is doing now, as its deadline error says it. */
  get waiting(): string {
    return describePhase(this.#phase, this.#where);
  }

  /** Stops the call with `reason`: runs the hooks, then aborts the signal if there is one. Idempotent. */
  abort(reason: Error): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.dispose();
    const hooks = this.#hooks;
    this.#hooks = undefined;
    if (hooks !== undefined) for (const hook of hooks) hook();
    this.#controller?.abort(reason);
  }

  /** Runs `hook` once when the call stops; returns the function that removes it. */
  onAbort(hook: () => void): () => void {
    if (this.#reason !== undefined) {
      hook();
      return noop;
    }
    if (this.#hooks === undefined) this.#hooks = [hook];
    else this.#hooks.push(hook);
    return () => {
      const hooks = this.#hooks;
      if (hooks === undefined) return;
      const i = hooks.lastIndexOf(hook);
      if (i >= 0) hooks.splice(i, 1);
    };
  }

  /** Clears the deadline timer (the call is over). */
  dispose(): void {
    this.#running = false;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #arm(): void {
    if (!Number.isFinite(this.#deadline)) return;
    // setTimeout fires at once for delays above 2^31-1 ms (about 24.8 days):
    // wait in steps until the deadline is within range.
    const delay = Math.min(Math.max(0, this.#deadline - Date.now()), MAX_TIMER_MS);
    this.#timer = setTimeout(() => this.#fire(), delay);
  }

  #fire(): void {
    this.#timer = undefined;
    const now = Date.now();
    if (now < this.#deadline) {
      this.#arm();
      return;
    }
    const elapsed = now - this.#started;
    const waiting = this.waiting;
    const err =
      this.#onDeadline?.(elapsed, waiting) ??
      new DeadlineExceededError(`Deadline exceeded after ${elapsed} ms ${waiting}`, {
        endpoint:
          this.#phase === 'endpoint' || this.#phase === 'backoff' || typeof this.#where !== 'string'
            ? undefined
            : this.#where,
      });
    this.abort(err);
    this.#onExpired?.(err);
  }
}

const noop = (): void => undefined;

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

  /** @internal */
  static create(
    signal: AbortSignal,
    deadline = Number.POSITIVE_INFINITY,
    values: ReadonlyMap<ContextKey<unknown>, unknown> = noValues,
  ): CallContext {
    return new CallContext(signal, undefined, false, deadline, values);
  }

  /** @internal the context of a whole call owned by `control`. */
  static owned(control: CallControl): CallContext {
    return new CallContext(undefined, control, true, control.deadline, noValues);
  }

  /** Aborts when the call must stop: caller cancel, deadline, or a layer's decision. */
  get signal(): AbortSignal {
    return this.#signal ?? (this.#control as CallControl).signal;
  }

  /** Whether the call must stop (`signal.aborted`, without creating the signal). */
  get aborted(): boolean {
    return this.#signal === undefined ? (this.#control as CallControl).aborted : this.#signal.aborted;
  }

  /** @internal why the call stopped, as an Error (see {@link abortReason}); only once `aborted`. */
  reason(): Error {
    if (this.#signal === undefined) {
      return (this.#control as CallControl).reason ?? new CancelledError();
    }
    return abortReason(this.#signal);
  }

  /**
   * @internal runs `hook` once when this context's signal aborts (at once if
   * it did) and returns the function that removes it; no signal is created
   * for a call that owns none yet.
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

  /**
   * @internal whether the owner of this context's signal settles the call as
   * soon as it aborts (the channel does), so a layer need not race it.
   */
  get settledOnAbort(): boolean {
    return this.#signal === undefined;
  }

  /** @internal records what the call is doing now, for its deadline error. */
  note(phase: CallPhase, where?: CallWhere): void {
    this.#control?.note(phase, where);
  }

  /**
   * @internal a child whose deadline is `deadline`, enforced by the call's
   * own deadline timer (failing with `onDeadline`) instead of a new timer;
   * `undefined` when this context does not span a whole call owned by a
   * {@link CallControl}, or when it already aborted.
   */
  lowered(
    deadline: number,
    onDeadline: (elapsedMs: number, waiting: string) => Error,
  ): CallContext | undefined {
    const control = this.#control;
    if (!this.#whole || control === undefined || this.aborted) return undefined;
    if (!(deadline < this.deadline)) return this;
    control.lower(deadline, onDeadline);
    return new CallContext(this.#signal, control, true, deadline, this.#values);
  }

  /**
   * @internal the same context for one part of the call (an attempt): it
   * shares the call's signal, but a layer below cannot lower the whole
   * call's deadline through it.
   */
  part(): CallContext {
    if (!this.#whole) return this;
    return new CallContext(this.#signal, this.#control, false, this.deadline, this.#values);
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

  /** @internal a child with both a new signal and a (lower) deadline. */
  derive(signal: AbortSignal, deadline: number): CallContext {
    return new CallContext(signal, this.#control, false, Math.min(deadline, this.deadline), this.#values);
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
  let timer: ReturnType<typeof setTimeout> | undefined;
  let unhook: (() => void) | undefined;
  const release = (): void => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    unhook?.();
    unhook = undefined;
  };
  if (parent.aborted) {
    controller.abort(parent.reason());
    return { context, controller, release };
  }
  unhook = parent.onAbort(() => {
    unhook = undefined;
    release();
    controller.abort(parent.reason());
  });
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

/**
 * A call's retry counts (gRPC A96), kept for a layer above the retry and
 * hedging layers that reports them when the call ends: a telemetry layer
 * puts one in the call's context under {@link CallRetries}, and the retry
 * and hedging layers add to it. Transparent re-sends are counted apart
 * from retries and hedges.
 *
 * @example
 * ```ts
 * const tally: RetryTally = { retries: 0, transparentRetries: 0, hedges: 0, delayMs: 0 };
 * await stack.call(req, ctx.withValue(CallRetries, tally));
 * if (tally.retries > 0) console.log(`${tally.retries} retries, ${tally.delayMs} ms of backoff`);
 * ```
 */
export interface RetryTally {
  /** Attempts sent after a backoff or pushback (not the first, not transparent ones). */
  retries: number;
  /** Attempts re-sent at once because the one before never reached a server application. */
  transparentRetries: number;
  /** Hedged attempts after the first. */
  hedges: number;
  /** Milliseconds the call waited with no attempt in flight (retry backoffs and pushbacks). */
  delayMs: number;
}

/**
 * Where the retry and hedging layers find the call's {@link RetryTally},
 * when a layer above them asked for the counts.
 *
 * @example
 * ```ts
 * ctx.get(CallRetries)?.retries; // in a layer below the one that set it
 * ```
 */
export const CallRetries: ContextKey<RetryTally> = contextKey<RetryTally>('grpc-tower.call-retries');
