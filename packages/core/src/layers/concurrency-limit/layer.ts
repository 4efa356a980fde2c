/**
 * A concurrency limit, after tower's `limit::concurrency` (a semaphore in
 * front of the inner service): at most `max` calls run in the inner service
 * at once. A call that finds every slot taken waits in a FIFO queue of
 * bounded length; when the queue is full the call fails at once with
 * {@link ResourceExhaustedError} rather than piling up without bound.
 *
 * A slot is handed from the call that settles straight to the oldest waiter,
 * so a newcomer cannot overtake the queue. A waiter whose signal aborts (its
 * caller cancelled, its deadline passed) leaves the queue at once and rejects
 * with the abort reason. A slot is held until the inner call settles, however
 * it settles (value, error, synchronous throw), which is what the inner
 * service is actually doing; services settle promptly on abort by contract.
 *
 * Each service the layer wraps gets its own limit: applying one layer value
 * to two services gives two independent limits.
 *
 * The service implements {@link Ready}: `ready()` is true when a slot is free
 * (and the inner service, when it implements `ready()` too, is ready), which
 * is what `loadShed` asks.
 *
 * @module
 */
import { type CallContext, abortReason } from '../../context/index.js';
import { ResourceExhaustedError } from '../../errors.js';
import type { Service } from '../../service.js';
import { optionChecks } from '../../internal/options.js';
import { type Ready, hasReady } from '../ready.js';
import { onAbort } from '../signal.js';
import { WaitQueue } from '../wait-queue.js';

/**
 * Options of {@link concurrencyLimit}.
 *
 * @example
 * ```ts
 * const options: ConcurrencyLimitOptions = { max: 64, queue: 256 };
 * ```
 */
export interface ConcurrencyLimitOptions {
  /** The most calls running in the inner service at once: an integer >= 1. */
  readonly max: number;
  /**
   * The most calls waiting for a slot: an integer >= 0 (0 refuses any call
   * that finds no free slot). Default 1024.
   */
  readonly queue?: number;
}

/**
 * The service returned by {@link concurrencyLimit}: a {@link Service} that
 * reports its slots.
 *
 * @example
 * ```ts
 * const svc: ConcurrencyLimitService<string, number> = concurrencyLimit({ max: 4 })(inner);
 * console.log(svc.inFlight, svc.queued);
 * ```
 */
export interface ConcurrencyLimitService<Req, Res> extends Service<Req, Res>, Ready {
  /** The configured limit. */
  readonly max: number;
  /** Slots taken: calls running in the inner service (or just handed a slot). */
  readonly inFlight: number;
  /** Calls waiting for a slot. */
  readonly queued: number;
  /** True when a call would start now: `inFlight < max`, and the inner service is ready. */
  ready(): boolean;
}

/** The default length of the wait queue. */
const DEFAULT_QUEUE = 1024;

/**
 * A layer that lets at most `max` calls run in the inner service at once,
 * queues up to `queue` more (FIFO), and refuses the rest with
 * {@link ResourceExhaustedError}.
 *
 * @throws ConfigError when `max` is not an integer >= 1 or `queue` not an integer >= 0.
 *
 * @example
 * ```ts
 * const svc = concurrencyLimit({ max: 16, queue: 64 })(inner);
 * await Promise.all(requests.map((r) => svc.call(r, background))); // 16 at a time
 * ```
 */
export function concurrencyLimit(
  options: ConcurrencyLimitOptions,
): <Req, Res>(inner: Service<Req, Res>) => ConcurrencyLimitService<Req, Res> {
  const check = optionChecks('concurrencyLimit');
  const opts = check.object('options', options);
  const max = check.number('max', opts.max, { min: 1, integer: true });
  const queue = check.number('queue', opts.queue, { min: 0, integer: true }, DEFAULT_QUEUE);
  return (inner) => new ConcurrencyLimited(inner, max, queue);
}

interface Waiter {
  readonly resolve: () => void;
  /** Stops listening to the waiter's signal. */
  readonly unlisten: () => void;
}

class ConcurrencyLimited<Req, Res> implements ConcurrencyLimitService<Req, Res> {
  readonly max: number;
  readonly #inner: Service<Req, Res>;
  readonly #queueLimit: number;
  readonly #waiters = new WaitQueue<Waiter>();
  #inFlight = 0;

  constructor(inner: Service<Req, Res>, max: number, queueLimit: number) {
    this.#inner = inner;
    this.max = max;
    this.#queueLimit = queueLimit;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get queued(): number {
    return this.#waiters.size;
  }

  ready(): boolean {
    const inner = this.#inner;
    return this.#inFlight < this.max && (!hasReady(inner) || inner.ready());
  }

  async call(req: Req, ctx: CallContext): Promise<Res> {
    ctx.throwIfAborted();
    // While a slot is free nobody waits (a freed slot goes to the oldest
    // waiter first), so taking it here cannot overtake the queue.
    if (this.#inFlight < this.max) this.#inFlight++;
    else await this.#wait(ctx.signal);
    try {
      // The signal may have aborted between the hand-off and this turn.
      ctx.throwIfAborted();
      return await this.#inner.call(req, ctx);
    } finally {
      this.#release();
    }
  }

  #wait(signal: AbortSignal): Promise<void> {
    if (this.#waiters.size >= this.#queueLimit) {
      return Promise.reject(
        new ResourceExhaustedError(
          `concurrency limit: ${this.max} calls in flight and the wait queue is full (${this.#queueLimit} waiting)`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const unlisten = onAbort(signal, () => {
        this.#waiters.remove(node);
        reject(abortReason(signal));
      });
      const node = this.#waiters.push({ resolve, unlisten });
    });
  }

  #release(): void {
    const next = this.#waiters.shift();
    if (next === undefined) {
      this.#inFlight--;
      return;
    }
    // The slot passes to the oldest waiter; inFlight stays the same.
    next.unlisten();
    next.resolve();
  }
}
