/**
 * A rate limit: a token bucket with continuous refill (the classic shaping
 * algorithm, as in Guava's `RateLimiter` and Go's `x/time/rate`; tower's
 * `limit::rate` counts per fixed window instead). The bucket holds at most
 * `burst` tokens, starts full, and gains `perSecond` tokens a second. Each
 * call spends one token before it reaches the inner service.
 *
 * A call that finds no token either waits for one in a FIFO queue (the
 * default) or, with `wait: false`, fails at once with
 * {@link RateLimitedError} (RESOURCE_EXHAUSTED, carrying `retryAfterMs`).
 * A waiting call is bounded by its context: it leaves the queue as soon as
 * its signal aborts, and it fails at once, without waiting, when its turn
 * would come after its deadline. One timer serves the whole queue, armed
 * only while someone waits and cleared when the last waiter leaves.
 *
 * Each service the layer wraps gets its own bucket. The service implements
 * {@link Ready}: `ready()` is true when a token is there now and nobody waits.
 *
 * @module
 */
import { type CallContext, abortReason } from '../../context/index.js';
import type { Service } from '../../service.js';
import { optionChecks } from '../../internal/options.js';
import { type Ready, hasReady } from '../ready.js';
import { onAbort } from '../signal.js';
import { type WaitNode, WaitQueue } from '../wait-queue.js';
import { TokenBucket } from './bucket.js';
import { RateLimitedError } from './errors.js';

/**
 * Options of {@link rateLimit}.
 *
 * @example
 * ```ts
 * const options: RateLimitOptions = { perSecond: 100, burst: 20, wait: false };
 * ```
 */
export interface RateLimitOptions {
  /** Tokens added per second: a finite number > 0 (fractions allowed: 0.5 is one call every 2 s). */
  readonly perSecond: number;
  /** The most tokens the bucket holds, which is the largest burst: a finite number >= 1. Default `max(1, perSecond)`. */
  readonly burst?: number;
  /** Wait for a token (true, the default) or fail at once with {@link RateLimitedError} (false). */
  readonly wait?: boolean;
}

/**
 * The service returned by {@link rateLimit}.
 *
 * @example
 * ```ts
 * const svc: RateLimitService<string, string> = rateLimit({ perSecond: 5 })(inner);
 * console.log(svc.waiting);
 * ```
 */
export interface RateLimitService<Req, Res> extends Service<Req, Res>, Ready {
  /** Calls waiting for a token. */
  readonly waiting: number;
  /** Tokens in the bucket now (may be fractional). */
  readonly tokens: number;
  /** True when a call made now would pass at once (and the inner service, if it can say, is ready). */
  ready(): boolean;
}

/**
 * A layer that admits calls at `perSecond` on average with bursts up to
 * `burst`, making the others wait for a token or, with `wait: false`, fail
 * with {@link RateLimitedError}.
 *
 * @throws ConfigError when `perSecond` is not a finite number > 0, `burst`
 * not a finite number >= 1, or `wait` not a boolean.
 *
 * @example
 * ```ts
 * const svc = rateLimit({ perSecond: 50, burst: 10 })(inner);
 * await svc.call(req, ctx); // waits for a token when 10 calls just went out
 * ```
 */
export function rateLimit(
  options: RateLimitOptions,
): <Req, Res>(inner: Service<Req, Res>) => RateLimitService<Req, Res> {
  const check = optionChecks('rateLimit');
  const opts = check.object('options', options);
  const perSecond = check.number('perSecond', opts.perSecond, { min: 0, exclusive: true });
  const burst = check.number('burst', opts.burst, { min: 1 }, Math.max(1, perSecond));
  const wait = check.boolean('wait', opts.wait, true);
  return (inner) => new RateLimited(inner, perSecond, burst, wait);
}

interface Waiter {
  readonly resolve: () => void;
  /** Stops listening to the waiter's signal. */
  readonly unlisten: () => void;
}

class RateLimited<Req, Res> implements RateLimitService<Req, Res> {
  readonly #inner: Service<Req, Res>;
  readonly #bucket: TokenBucket;
  readonly #wait: boolean;
  readonly #waiters = new WaitQueue<Waiter>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(inner: Service<Req, Res>, perSecond: number, burst: number, wait: boolean) {
    this.#inner = inner;
    this.#bucket = new TokenBucket(perSecond, burst, Date.now());
    this.#wait = wait;
  }

  get waiting(): number {
    return this.#waiters.size;
  }

  get tokens(): number {
    return this.#bucket.tokens(Date.now());
  }

  ready(): boolean {
    const inner = this.#inner;
    return (
      this.#waiters.size === 0 &&
      this.#bucket.msUntil(1, Date.now()) === 0 &&
      (!hasReady(inner) || inner.ready())
    );
  }

  async call(req: Req, ctx: CallContext): Promise<Res> {
    ctx.throwIfAborted();
    const now = Date.now();
    if (this.#waiters.size > 0 || !this.#bucket.tryTake(now)) {
      // This call needs the token after those of everyone already waiting.
      const waitMs = this.#bucket.msUntil(this.#waiters.size + 1, now);
      if (!this.#wait) {
        throw new RateLimitedError(
          `rate limit: ${this.#describe()} reached, next token in ${Math.ceil(waitMs)} ms`,
          Math.ceil(waitMs),
        );
      }
      if (now + waitMs > ctx.deadline) {
        throw new RateLimitedError(
          `rate limit: ${this.#describe()} reached, a token in ${Math.ceil(waitMs)} ms would come ` +
            `after the call's deadline (${Math.max(0, ctx.deadline - now)} ms left)`,
          Math.ceil(waitMs),
        );
      }
      await this.#enqueue(ctx.signal);
    }
    return this.#inner.call(req, ctx);
  }

  #describe(): string {
    return `${this.#bucket.perSecond} calls/s (burst ${this.#bucket.burst})`;
  }

  #enqueue(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const unlisten = onAbort(signal, () => {
        this.#waiters.remove(node);
        if (this.#waiters.size === 0) this.#disarm();
        reject(abortReason(signal));
      });
      const node: WaitNode<Waiter> = this.#waiters.push({ resolve, unlisten });
      this.#arm();
    });
  }

  /** Arms the queue's timer for the moment the oldest waiter's token is due. */
  #arm(): void {
    if (this.#timer !== undefined || this.#waiters.size === 0) return;
    const delay = Math.max(1, Math.ceil(this.#bucket.msUntil(1, Date.now())));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#drain();
    }, delay);
  }

  #disarm(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Hands the tokens that came in to the oldest waiters, then re-arms for the rest. */
  #drain(): void {
    const now = Date.now();
    while (this.#waiters.size > 0 && this.#bucket.tryTake(now)) {
      const next = this.#waiters.shift() as Waiter;
      next.unlisten();
      next.resolve();
    }
    this.#arm();
  }
}
