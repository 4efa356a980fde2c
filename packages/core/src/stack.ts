/**
 * A {@link Stack} is what a {@link ServiceBuilder} builds: the composed
 * `call` of its layers, plus the readiness and the `close()` of the service
 * innermost in it (usually a balancer). Layers wrap `call` and nothing
 * else; the stack carries readiness and lifecycle past them, so whatever
 * runs the stack (`createChannel`) can report connectivity and release
 * every resource without being told where they are. tower reaches the same
 * end by putting `poll_ready` in the `Service` trait itself.
 *
 * @module
 */
import { BehaviorSubject, type Observable } from 'rxjs';
import type { CallContext } from './context/index.js';
import type { Readiness } from './endpoint.js';
import { ClosedError, GraceExpiredError } from './errors.js';
import { DEFAULT_CLOSE_GRACE_MS, Grace, graceOf } from './internal/grace.js';
import type { Service } from './service.js';

/**
 * Options of a graceful close (`close()` of a channel, a {@link Stack}, a
 * balancer, an endpoint or `towerDispatcher`).
 *
 * @example
 * ```ts
 * const options: CloseOptions = { graceMs: 10_000 };
 * await stack.close(options); // calls in flight get at most 10 s more
 * ```
 */
export interface CloseOptions {
  /**
   * How long the calls already started may go on, in ms (a finite number
   * from 0 to 2^31 - 1); when it runs out, those left end UNAVAILABLE
   * (`GraceExpiredError` where the closing part owns the call). 0 ends them
   * at once. Default: the closing part's own (30 s unless configured).
   */
  readonly graceMs?: number;
}

/**
 * Readiness and lifecycle: whether calls can go out now, and how to
 * release everything a service holds.
 *
 * @example
 * ```ts
 * const l: Lifecycle = balancer; // a balancer has readiness, readiness$ and close()
 * l.readiness$.subscribe((r) => console.log('now', r));
 * await l.close();
 * ```
 */
export interface Lifecycle {
  /** The current readiness, synchronously. */
  readonly readiness: Readiness;
  /** The readiness: emits the current value on subscribe, then each change; completes on close. */
  readonly readiness$: Observable<Readiness>;
  /**
   * Releases everything held (endpoints, discovery, health watches,
   * timers), letting calls in flight finish for at most `graceMs`.
   * Idempotent; never rejects for a part that failed to close (that is
   * reported on the part's own events).
   */
  close(options?: CloseOptions): Promise<void>;
}

/**
 * A service with readiness and lifecycle: what `ServiceBuilder.service()`
 * returns and what `createChannel` runs.
 *
 * Its `close()` is graceful: from the moment it is called, new calls are
 * refused at once (`ClosedError`, UNAVAILABLE, "… is closing"), while the
 * calls already started go on (waiting for an endpoint, retrying after a
 * backoff, streaming) for at most the grace time (`graceMs`, default
 * 30 s); then the innermost service closes with what is left of the grace,
 * which drains the streams its endpoints still carry. A call still
 * unsettled when the grace runs out fails with `GraceExpiredError`. The
 * promise resolves when everything is released.
 *
 * @example
 * ```ts
 * const stack: Stack<GrpcRequest, GrpcResponse> = new ServiceBuilder<GrpcRequest, GrpcResponse>()
 *   .layer(timeout({ ms: 2_000 }))
 *   .service(p2c(endpoints, { target: 'orders' }));
 * stack.readiness; // 'connecting', then 'ready' when an endpoint is
 * await stack.close(); // closes the balancer and every endpoint it holds
 * ```
 */
export interface Stack<Req, Res> extends Service<Req, Res>, Lifecycle {}

/**
 * Whether `x` has readiness (value and Observable) and `close()`.
 *
 * @example
 * ```ts
 * if (hasLifecycle(inner)) inner.readiness$.subscribe(log);
 * ```
 */
export function hasLifecycle(x: unknown): x is Lifecycle {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as { readiness?: unknown }).readiness === 'string' &&
    typeof (x as { readiness$?: { subscribe?: unknown } }).readiness$?.subscribe === 'function' &&
    typeof (x as { close?: unknown }).close === 'function'
  );
}

/** Readiness and close for a service that has none of its own: ready until closed. */
class PlainLifecycle implements Lifecycle {
  readonly #state = new BehaviorSubject<Readiness>('ready');
  readonly readiness$: Observable<Readiness> = this.#state.asObservable();
  readonly #close: ((options?: CloseOptions) => unknown) | undefined;
  #closing: Promise<void> | undefined;

  constructor(inner: object) {
    const close = (inner as { close?: unknown }).close;
    this.#close = typeof close === 'function' ? (options) => close.call(inner, options) : undefined;
  }

  get readiness(): Readiness {
    return this.#state.value;
  }

  close(options?: CloseOptions): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#close?.(options);
      } finally {
        this.#state.next('closed');
        this.#state.complete();
      }
    })();
    return this.#closing;
  }
}

/** A stack: the outermost `call`, the innermost lifecycle. */
class ComposedStack<Req, Res> implements Stack<Req, Res> {
  /** The outermost service's call, bound once: what a caller that counts its own calls runs. */
  readonly untracked: (req: Req, ctx: CallContext) => Promise<Res>;
  readonly #lifecycle: Lifecycle;
  /** Calls started through {@link ComposedStack.call} and not settled. */
  #active = 0;
  #grace: Grace | undefined;
  #closing: Promise<void> | undefined;
  /** Set when the grace ran out: the error the calls still unsettled end with. */
  #expired: { what: string; graceMs: number } | undefined;

  constructor(outer: Service<Req, Res>, lifecycle: Lifecycle) {
    this.untracked = outer.call.bind(outer);
    this.#lifecycle = lifecycle;
  }

  get readiness(): Readiness {
    return this.#lifecycle.readiness;
  }

  get readiness$(): Observable<Readiness> {
    return this.#lifecycle.readiness$;
  }

  /** Counts the call while it runs, so that `close()` knows when the last one has settled. */
  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closing !== undefined) {
      return Promise.reject(new ClosedError(`${this.#what()} is ${this.#grace ? 'closing' : 'closed'}`));
    }
    this.#active++;
    let promise: Promise<Res>;
    try {
      promise = this.untracked(req, ctx);
    } catch (err) {
      promise = Promise.reject(err);
    }
    return promise.then(this.#settled, this.#failed);
  }

  // made once per stack: a call adds one promise, no closure
  readonly #settled = (res: Res): Res => {
    this.#left();
    return res;
  };

  readonly #failed = (err: unknown): never => {
    this.#left();
    const expired = this.#expired;
    throw expired === undefined ? err : new GraceExpiredError(expired.what, expired.graceMs, { cause: err });
  };

  #left(): void {
    if (--this.#active === 0) this.#grace?.ended();
  }

  close(options?: CloseOptions): Promise<void> {
    const graceMs = graceOf('Stack.close', 'graceMs', options?.graceMs, DEFAULT_CLOSE_GRACE_MS);
    if (this.#closing !== undefined) {
      // a second close may shorten the grace
      if (this.#grace !== undefined) void this.#grace.wait(graceMs);
      return this.#closing;
    }
    this.#closing = this.#drainThenClose(graceMs);
    return this.#closing;
  }

  async #drainThenClose(graceMs: number): Promise<void> {
    let left = graceMs;
    if (this.#active > 0) {
      const grace = new Grace();
      this.#grace = grace;
      if (!(await grace.wait(graceMs))) {
        this.#expired = { what: this.#what(), graceMs: grace.graceMs };
      }
      left = grace.remainingMs();
      this.#grace = undefined;
    }
    // the calls have settled: what the endpoints still carry (streams) drains for the rest of the grace
    await this.#lifecycle.close({ graceMs: left });
  }

  #what(): string {
    const target = (this.#lifecycle as { target?: unknown }).target;
    return typeof target === 'string' ? `stack for target "${target}"` : 'stack';
  }
}

/**
 * The call of `service` that adds nothing of its own: a {@link Stack}'s
 * outermost call without the stack's count of calls in flight, for a caller
 * that counts its calls itself and closes the stack only once they have
 * ended (`createChannel`, `towerDispatcher`); any other service's own
 * `call`, bound.
 *
 * @internal
 * @example
 * ```ts
 * const call = untrackedCall(stack);
 * const res = await call(req, ctx);
 * ```
 */
export function untrackedCall<Req, Res>(
  service: Service<Req, Res>,
): (req: Req, ctx: CallContext) => Promise<Res> {
  return service instanceof ComposedStack ? service.untracked : service.call.bind(service);
}

/**
 * Makes a stack from the outermost service of a composition and the
 * innermost one, whose readiness and `close()` it carries. An innermost
 * service without readiness is `ready` until the stack closes, and its
 * `close()` (when it has one) runs on close. When `outer` is `inner` and
 * `inner` already is a stack, it is returned as it is.
 *
 * @example
 * ```ts
 * const stack = stackOf(timeout({ ms: 500 })(balancer), balancer);
 * ```
 */
export function stackOf<Req, Res>(outer: Service<Req, Res>, inner: object): Stack<Req, Res> {
  if (outer === inner && hasLifecycle(outer)) return outer as Stack<Req, Res>;
  return new ComposedStack(outer, hasLifecycle(inner) ? inner : new PlainLifecycle(inner));
}
