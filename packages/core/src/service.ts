/**
 * The tower model: a {@link Service} turns a request into a promised
 * response; a {@link Layer} wraps a service in another. Configuration lives
 * in the layer's closure; the work happens in the service it returns.
 *
 * @module
 */
import type { CallContext } from './context/index.js';
import { type Stack, stackOf } from './stack.js';

/**
 * An asynchronous function from a request to a response, with a context
 * that carries the call's AbortSignal and deadline. When `ctx.signal`
 * aborts, `call` must settle promptly and release what it holds.
 *
 * @example
 * ```ts
 * const echo: Service<string, string> = { call: async (req) => req };
 * await echo.call('hi', background); // 'hi'
 * ```
 */
export interface Service<Req, Res> {
  call(req: Req, ctx: CallContext): Promise<Res>;
}

/**
 * A function from an inner service to an outer one. `Layer<Req, Res>` keeps
 * the types; a layer that changes them names the outer types too.
 *
 * @example
 * ```ts
 * const logging: Layer<string, string> = (inner) => ({
 *   async call(req, ctx) { console.log(req); return inner.call(req, ctx); },
 * });
 * ```
 */
export type Layer<InnerReq, InnerRes, OuterReq = InnerReq, OuterRes = InnerRes> = (
  inner: Service<InnerReq, InnerRes>,
) => Service<OuterReq, OuterRes>;

/**
 * Makes a service from a function.
 *
 * @example
 * ```ts
 * const upper = serviceFn(async (s: string) => s.toUpperCase());
 * ```
 */
export function serviceFn<Req, Res>(fn: (req: Req, ctx: CallContext) => Promise<Res>): Service<Req, Res> {
  return { call: fn };
}

declare const unset: unique symbol;
/** Marks a builder whose types are not known yet. */
export type Unset = typeof unset;

type Composed = (inner: Service<unknown, unknown>) => Service<unknown, unknown>;
type Resolved<T, Fallback> = [T] extends [Unset] ? Fallback : T;
/** The request type of a service. */
type RequestOf<S> = S extends Service<infer Req, unknown> ? Req : never;
/** The response type of a service. */
type ResponseOf<S> = S extends Service<never, infer Res> ? Res : never;

/**
 * Composes layers, tower's order: the first layer added is the outermost and
 * sees the request first. `new ServiceBuilder().layer(a).layer(b).service(s)`
 * is `a(b(s))`. The types grow one step per `.layer()`: each new layer must
 * produce the service that the previous one wraps, or it does not compile.
 *
 * Generic layers (those that work for any request type, like `timeout`)
 * learn their types from the builder, so give the stack's outer types when
 * the first layer is generic: `new ServiceBuilder<Req, Res>()`. A layer
 * that changes one side and is generic in the other (`mapRequest`) needs a
 * typed binding, `const parse: Layer<number, R, string, R> = mapRequest(Number)`,
 * because TypeScript cannot infer a generic argument from a return type.
 *
 * @typeParam OuterReq - request type of the finished stack
 * @typeParam OuterRes - response type of the finished stack
 * @typeParam InnerReq - request type the next layer (or the service) must take
 * @typeParam InnerRes - response type the next layer (or the service) must return
 *
 * @example
 * ```ts
 * const stack = new ServiceBuilder<string, number>()
 *   .layer(timeout({ ms: 500 }))
 *   .layer(concurrencyLimit({ max: 64 }))
 *   .service(serviceFn(async (s: string) => s.length));
 * ```
 */
export class ServiceBuilder<OuterReq = Unset, OuterRes = Unset, InnerReq = OuterReq, InnerRes = OuterRes> {
  readonly #layers: readonly Composed[];

  constructor(layers: readonly Composed[] = []) {
    this.#layers = layers;
  }

  /** Adds a layer that keeps the request and response types (the common case). */
  layer(
    this: ServiceBuilder<OuterReq, OuterRes, InnerReq, InnerRes>,
    layer: [InnerReq] extends [Unset]
      ? never
      : (inner: Service<InnerReq, InnerRes>) => Service<InnerReq, InnerRes>,
  ): ServiceBuilder<OuterReq, OuterRes, InnerReq, InnerRes>;
  /** Adds the first layer of an untyped builder: it sets the outer types. */
  layer<NReq, NRes, LReq, LRes>(
    this: ServiceBuilder<Unset, Unset, Unset, Unset>,
    layer: (inner: Service<NReq, NRes>) => Service<LReq, LRes>,
  ): ServiceBuilder<LReq, LRes, NReq, NRes>;
  /** Adds a layer that changes the types; it must produce what the layers before it wrap. */
  layer<NReq, NRes>(
    layer: (inner: Service<NReq, NRes>) => Service<InnerReq, InnerRes>,
  ): ServiceBuilder<OuterReq, OuterRes, NReq, NRes>;
  layer(layer: unknown): unknown {
    return new ServiceBuilder([...this.#layers, layer as Composed]);
  }

  /**
   * Wraps `service` in every layer, innermost first, and returns the
   * {@link Stack}: the outermost layer's `call`, with the readiness and
   * `close()` of `service` (a service without readiness is `ready` until
   * closed). With no layers and a `service` that already has readiness and
   * `close()`, returns `service` itself.
   */
  service<S extends Service<Resolved<InnerReq, never>, Resolved<InnerRes, unknown>>>(
    service: S,
  ): [OuterReq] extends [Unset] ? Stack<RequestOf<S>, ResponseOf<S>> : Stack<OuterReq, OuterRes> {
    let current = service as Service<unknown, unknown>;
    for (let i = this.#layers.length - 1; i >= 0; i--) {
      current = (this.#layers[i] as Composed)(current);
    }
    return stackOf(current, service) as [OuterReq] extends [Unset]
      ? Stack<RequestOf<S>, ResponseOf<S>>
      : Stack<OuterReq, OuterRes>;
  }

  /** The composed layers as one layer. */
  toLayer(): (inner: Service<InnerReq, InnerRes>) => Service<OuterReq, OuterRes> {
    return (inner) => {
      let current = inner as Service<unknown, unknown>;
      for (let i = this.#layers.length - 1; i >= 0; i--) {
        current = (this.#layers[i] as Composed)(current);
      }
      return current as Service<OuterReq, OuterRes>;
    };
  }
}

/**
 * A layer that maps each request before the inner service sees it.
 *
 * @example
 * ```ts
 * const parse = mapRequest((s: string) => Number(s)); // Service<number, R> → Service<string, R>
 * ```
 */
export function mapRequest<OuterReq, InnerReq>(
  fn: (req: OuterReq, ctx: CallContext) => InnerReq,
): <Res>(inner: Service<InnerReq, Res>) => Service<OuterReq, Res> {
  return (inner) => ({ call: async (req, ctx) => inner.call(fn(req, ctx), ctx) });
}

/**
 * A layer that maps each response of the inner service.
 *
 * @example
 * ```ts
 * const len = mapResponse((s: string) => s.length); // Service<R, string> → Service<R, number>
 * ```
 */
export function mapResponse<InnerRes, OuterRes>(
  fn: (res: InnerRes, ctx: CallContext) => OuterRes,
): <Req>(inner: Service<Req, InnerRes>) => Service<Req, OuterRes> {
  return (inner) => ({ call: async (req, ctx) => fn(await inner.call(req, ctx), ctx) });
}

/**
 * A layer that maps each error the inner service throws.
 *
 * @example
 * ```ts
 * const tag = mapError((e) => new UnavailableError('backend failed', { cause: e }));
 * ```
 */
export function mapError(
  fn: (err: unknown, ctx: CallContext) => unknown,
): <Req, Res>(inner: Service<Req, Res>) => Service<Req, Res> {
  return (inner) => ({
    call: async (req, ctx) => {
      try {
        return await inner.call(req, ctx);
      } catch (err) {
        throw fn(err, ctx);
      }
    },
  });
}

/**
 * A layer that checks each request: `check` throws (or returns a rejected
 * promise) to refuse it, and the inner service is not called.
 *
 * @example
 * ```ts
 * const nonEmpty = filter((s: string) => {
 *   if (s.length === 0) throw new ConfigError('request', 'body', s, 'non-empty');
 * });
 * ```
 */
export function filter<Req>(
  check: (req: Req, ctx: CallContext) => void | Promise<void>,
): <Res>(inner: Service<Req, Res>) => Service<Req, Res> {
  return (inner) => ({
    call: async (req, ctx) => {
      await check(req, ctx);
      return inner.call(req, ctx);
    },
  });
}
