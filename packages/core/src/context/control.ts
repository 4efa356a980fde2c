/**
 * The one owner of a deadline: {@link CallControl} runs the only deadline
 * timer in grpc-tower's call path. A channel's call and an undici exchange
 * each own one for the whole call; every `withDeadline` scope is one too
 * (`scope.ts`). Whole-call layers (the timeout layer) lower its deadline
 * through the call's context instead of arming a timer of their own.
 *
 * @internal
 * @module
 */
import { DeadlineExceededError } from '../errors.js';
import { MAX_TIMER_MS } from '../internal/timers.js';

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

/** What fails a call whose deadline passed: gets the ms since the start and what the call waited for. */
export type OnDeadline = (elapsedMs: number, waiting: string) => Error;

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

const noop = (): void => undefined;

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
 * const ctx = ownedContext(control);
 * control.start();
 * // ... later
 * control.dispose();
 * ```
 */
export class CallControl {
  #deadline: number;
  #onDeadline: OnDeadline | undefined;
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
   * The controller behind {@link CallControl.signal}, created on first use
   * (already aborted if the call stopped). Aborting it does not stop the
   * call: {@link CallControl.abort} does.
   */
  get controller(): AbortController {
    if (this.#controller === undefined) {
      const controller = new AbortController();
      if (this.#reason !== undefined) controller.abort(this.#reason);
      this.#controller = controller;
    }
    return this.#controller;
  }

  /**
   * The call's signal, created on first use (already aborted if the call
   * stopped). grpc-tower's own layers follow the call through hooks
   * ({@link CallControl.onAbort}), not through listeners on this signal.
   */
  get signal(): AbortSignal {
    return this.controller.signal;
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
  lower(deadline: number, onDeadline: OnDeadline): void {
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

  /**
   * The error the call aborts with when its deadline passed: the lowering
   * layer's, or a `DeadlineExceededError` naming what the call waited for.
   */
  protected deadlineError(elapsedMs: number): Error {
    const onDeadline = this.#onDeadline;
    if (onDeadline !== undefined) return onDeadline(elapsedMs, this.waiting);
    return new DeadlineExceededError(`Deadline exceeded after ${elapsedMs} ms ${this.waiting}`, {
      endpoint:
        this.#phase === 'endpoint' || this.#phase === 'backoff' || typeof this.#where !== 'string'
          ? undefined
          : this.#where,
    });
  }

  /** Runs after the call aborted because its deadline passed. */
  protected expired(reason: Error): void {
    this.#onExpired?.(reason);
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
    const err = this.deadlineError(now - this.#started);
    this.abort(err);
    this.expired(err);
  }
}
