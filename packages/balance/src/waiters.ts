/**
 * Calls waiting for a ready endpoint. When a call finds no endpoint ready,
 * it waits here until one is (then it is picked and sent), until the
 * fail-fast time passes (`failFastMs`, Linkerd's 3 s by default), until its
 * deadline passes, or until it is cancelled, whichever comes first.
 * `waitForReady` drops the fail-fast bound. Every path clears the call's
 * timer and abort listener.
 *
 * Waiting calls are woken in a microtask after an endpoint turns ready, in
 * the order they arrived, so an endpoint is never called from inside its
 * own readiness callback.
 *
 * @internal
 * @module
 */
import { type CallContext, DeadlineExceededError, abortReason } from '@grpc-tower/core';
import { Grace, MAX_TIMER_MS, noteCall } from '@grpc-tower/core/internal';

/**
 * @internal What the waiting calls need from their balancer.
 *
 * @example
 * ```ts
 * const host: WaitHost<Slot, Req, Res> = {
 *   pick: (avoid) => picker.pick(ready, avoid),
 *   dispatch: (slot, req, ctx) => slot.endpoint.call(req, ctx),
 *   readyCount: () => ready.size,
 *   gaveUp: (deadline, waitedMs) => new NoReadyEndpointError('orders', counts(), waitedMs),
 * };
 * ```
 */
export interface WaitHost<T, Req, Res> {
  /** A ready endpoint for a woken call, or `undefined` to keep waiting. */
  pick(avoid: ReadonlySet<string> | undefined): T | undefined;
  /** Sends the call to the endpoint picked for it. */
  dispatch(picked: T, req: Req, ctx: CallContext): Promise<Res>;
  /** How many endpoints are ready now. */
  readyCount(): number;
  /**
   * The error of a call that gave up after `waitedMs`: its deadline passed
   * (`deadline`, with the context's deadline error as `cause` when there
   * was one) or the fail-fast time did.
   */
  gaveUp(deadline: boolean, waitedMs: number, cause: unknown): Error;
  /** What a waiting call waits for, such as `target "orders" (2 known: …)`, for its deadline error. */
  describe(): string;
}

interface Waiter {
  /** A ready endpoint exists: pick and send. */
  wake(): void;
  fail(err: unknown): void;
  /** No endpoint can take the call: fail it with the balancer's reason. */
  giveUp(): void;
}

/**
 * @internal The queue of calls waiting for a ready endpoint.
 *
 * @example
 * ```ts
 * const waiters = new Waiters(host, { failFastMs: 3000, waitForReady: false });
 * const res = waiters.wait(req, ctx, undefined); // settles once an endpoint is ready, or fails fast
 * waiters.wakeSoon(); // on each endpoint that turns ready
 * ```
 */
export class Waiters<T, Req, Res> {
  readonly #queue = new Set<Waiter>();
  readonly #host: WaitHost<T, Req, Res>;
  readonly #failFastMs: number;
  readonly #waitForReady: boolean;
  #wakeScheduled = false;
  /** While the balancer closes with calls waiting: told when the last one leaves. */
  #grace: Grace | undefined;

  constructor(host: WaitHost<T, Req, Res>, options: { failFastMs: number; waitForReady: boolean }) {
    this.#host = host;
    this.#failFastMs = options.failFastMs;
    this.#waitForReady = options.waitForReady;
  }

  /** Calls waiting now. */
  get size(): number {
    return this.#queue.size;
  }

  /** Waits for a ready endpoint, then sends the call to it. */
  wait(req: Req, ctx: CallContext, avoid: ReadonlySet<string> | undefined): Promise<Res> {
    const host = this.#host;
    const started = Date.now();
    const failAt = this.#waitForReady ? Number.POSITIVE_INFINITY : started + this.#failFastMs;
    const deadlineFirst = ctx.deadline <= failAt;
    const bound = deadlineFirst ? ctx.deadline : failAt;
    if (bound <= started) return Promise.reject(host.gaveUp(deadlineFirst, 0, undefined));
    return new Promise<Res>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cleanup = (): void => {
        this.#queue.delete(waiter);
        if (this.#queue.size === 0) this.#grace?.ended();
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
        ctx.signal.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        wake: () => {
          const picked = host.pick(avoid);
          if (picked === undefined) return; // stays queued
          cleanup();
          resolve(host.dispatch(picked, req, ctx));
        },
        fail: (err) => {
          cleanup();
          reject(err);
        },
        giveUp: () => waiter.fail(host.gaveUp(false, Date.now() - started, undefined)),
      };
      const onAbort = (): void => {
        const reason = abortReason(ctx.signal);
        waiter.fail(
          reason instanceof DeadlineExceededError ? host.gaveUp(true, Date.now() - started, reason) : reason,
        );
      };
      this.#queue.add(waiter);
      // a deadline that another timer enforces (the channel's) names what the call waited for
      noteCall(ctx, 'endpoint', host.describe);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      const delay = bound - started;
      if (delay <= MAX_TIMER_MS) {
        timer = setTimeout(() => {
          timer = undefined;
          waiter.fail(host.gaveUp(deadlineFirst, Date.now() - started, undefined));
        }, delay);
      }
    });
  }

  /** An endpoint turned ready: wakes the waiting calls in a microtask. */
  wakeSoon(): void {
    if (this.#wakeScheduled || this.#queue.size === 0) return;
    this.#wakeScheduled = true;
    // woken in a microtask: endpoints are called outside their readiness callbacks
    queueMicrotask(() => {
      this.#wakeScheduled = false;
      for (const waiter of this.#queue) {
        if (this.#host.readyCount() === 0) return;
        waiter.wake();
      }
    });
  }

  /**
   * Fails every waiting call with the balancer's reason, because no
   * endpoint can take it; not with `waitForReady`, whose calls wait on.
   */
  giveUpAll(): void {
    if (this.#waitForReady) return;
    for (const waiter of [...this.#queue]) waiter.giveUp();
  }

  /**
   * Lets the waiting calls go on waiting (for an endpoint, within their
   * own fail-fast time and deadline) for at most `graceMs`, then fails
   * those left with `expired(graceMs)`. Resolves when none is left.
   */
  async drain(graceMs: number, expired: (graceMs: number) => Error): Promise<void> {
    if (this.#queue.size === 0) return;
    const grace = new Grace();
    this.#grace = grace;
    const inTime = await grace.wait(graceMs);
    this.#grace = undefined;
    if (!inTime) this.failAll(expired(grace.graceMs));
  }

  /** Fails every waiting call with `err`. */
  failAll(err: unknown): void {
    for (const waiter of [...this.#queue]) waiter.fail(err);
  }
}
