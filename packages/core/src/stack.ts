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
import type { CallContext } from './context.js';
import type { Readiness } from './endpoint.js';
import type { Service } from './service.js';

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
  close(options?: { graceMs?: number }): Promise<void>;
}

/**
 * A service with readiness and lifecycle: what `ServiceBuilder.service()`
 * returns and what `createChannel` runs.
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
  readonly #close: (() => unknown) | undefined;
  #closing: Promise<void> | undefined;

  constructor(inner: object) {
    const close = (inner as { close?: unknown }).close;
    this.#close = typeof close === 'function' ? () => close.call(inner) : undefined;
  }

  get readiness(): Readiness {
    return this.#state.value;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#close?.();
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
  readonly call: (req: Req, ctx: CallContext) => Promise<Res>;
  readonly #lifecycle: Lifecycle;

  constructor(outer: Service<Req, Res>, lifecycle: Lifecycle) {
    // bound once: the stack adds no frame to a call
    this.call = outer.call.bind(outer);
    this.#lifecycle = lifecycle;
  }

  get readiness(): Readiness {
    return this.#lifecycle.readiness;
  }

  get readiness$(): Observable<Readiness> {
    return this.#lifecycle.readiness$;
  }

  close(options?: { graceMs?: number }): Promise<void> {
    return this.#lifecycle.close(options);
  }
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
