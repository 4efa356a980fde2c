/**
 * The grace time of a graceful close, shared by the channel, the stack,
 * the balancer's waiting calls and the undici dispatcher: after `close()`
 * the calls already started go on until the last one ends or the grace time
 * runs out, whichever comes first.
 *
 * One timer per close, made only when calls are in flight and cleared when
 * the last one ends, so that nothing holds the process once the calls are
 * over. A later close with a shorter grace brings the end forward, never
 * back.
 *
 * @internal
 * @module
 */
import { ConfigError } from '../errors.js';
import { MAX_TIMER_MS } from './timers.js';

/**
 * The default grace time of a close, in ms: 30 s, Kubernetes' default
 * `terminationGracePeriodSeconds`, so that a process closing its clients on
 * SIGTERM lets its calls finish before the kubelet kills it.
 *
 * @internal
 * @example
 * ```ts
 * const graceMs = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
 * ```
 */
export const DEFAULT_CLOSE_GRACE_MS = 30_000;

/**
 * A grace time checked: a finite number of ms from 0 to
 * {@link MAX_TIMER_MS}, or `fallback` when `undefined`; throws a
 * `ConfigError` naming `where` and `option` otherwise.
 *
 * @internal
 * @example
 * ```ts
 * const ms = graceOf('TowerChannel.close', 'graceMs', options?.graceMs, this.#graceMs);
 * ```
 */
export function graceOf(where: string, option: string, graceMs: unknown, fallback: number): number {
  if (graceMs === undefined) return fallback;
  if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0 || graceMs > MAX_TIMER_MS) {
    throw new ConfigError(where, option, graceMs, `a finite number from 0 to ${MAX_TIMER_MS}`);
  }
  return graceMs;
}

/**
 * One close's wait for the calls in flight. The owner counts its calls and
 * calls {@link Grace.ended} when the count reaches 0 while closing.
 *
 * @internal
 * @example
 * ```ts
 * const grace = new Grace();
 * const inTime = calls.size === 0 || (await grace.wait(30_000)); // false: the grace ran out
 * // where a call ends: if (calls.size === 0) grace.ended();
 * ```
 */
export class Grace {
  #startedAt = Number.NaN;
  #endsAt = Number.POSITIVE_INFINITY;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #settle: ((inTime: boolean) => void) | undefined;
  #waiting: Promise<boolean> | undefined;
  #ranOut = false;

  /** The grace time's end, on `Date.now()`'s clock; `Infinity` before the first {@link Grace.wait}. */
  get endsAt(): number {
    return this.#endsAt;
  }

  /** The grace time from the first {@link Grace.wait} to its (possibly brought forward) end, in ms. */
  get graceMs(): number {
    return this.#endsAt - this.#startedAt;
  }

  /** Whether the grace time ran out before the calls ended. */
  get ranOut(): boolean {
    return this.#ranOut;
  }

  /** What is left of the grace time, in ms (0 once it ran out). */
  remainingMs(now = Date.now()): number {
    if (this.#ranOut) return 0;
    return Number.isFinite(this.#endsAt) ? Math.max(0, this.#endsAt - now) : 0;
  }

  /**
   * Waits for {@link Grace.ended} or for `graceMs` to pass: resolves
   * `true` when the calls ended in time, `false` when the grace ran out.
   * A second call shortens the grace to `graceMs` from now when that ends
   * sooner, and returns the same promise.
   */
  wait(graceMs: number): Promise<boolean> {
    const now = Date.now();
    const endsAt = now + graceMs;
    if (this.#waiting !== undefined) {
      if (endsAt < this.#endsAt && this.#settle !== undefined) {
        this.#endsAt = endsAt;
        this.#arm(graceMs);
      }
      return this.#waiting;
    }
    this.#startedAt = now;
    this.#endsAt = endsAt;
    this.#waiting = new Promise<boolean>((resolve) => {
      this.#settle = resolve;
    });
    this.#arm(graceMs);
    return this.#waiting;
  }

  /** The last call ended: the wait resolves `true` and its timer is cleared. */
  ended(): void {
    this.#finish(true);
  }

  #arm(ms: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#ranOut = true;
      this.#finish(false);
    }, ms);
  }

  #finish(inTime: boolean): void {
    const settle = this.#settle;
    if (settle === undefined) return;
    this.#settle = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    settle(inTime);
  }
}
