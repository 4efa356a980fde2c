/**
 * The one stack recipe both front ends build from (`towerChannel` for
 * gRPC, `towerDispatcher` for HTTP/2): a front end names its protocol's
 * pieces ({@link StackProtocol}: how to make an endpoint for an address,
 * which health check and whether it runs by default, the protocol of its
 * endpoint kind (core's `Protocol`, which outlier detection and the retry
 * layer both read), its retry layer, the telemetry of its calls), and the
 * recipe assembles the rest once:
 *
 * discovery → `connect` (one endpoint per address) → the telemetry's
 * connection hook → health checks → outlier detection → P2C → the
 * telemetry's attempt layer, `layers.inner`, retry within a fresh
 * `retryBudget()`, the deadline (`timeoutMs`), `layers.outer`, the
 * telemetry's call layer (the first named is the outermost).
 *
 * The recipe runs when the stack is built: a call goes through the layers
 * it composed and nothing of its own. When a part fails to build (a bad
 * balancer option), the parts already made that hold a timer or a
 * subscription (the outlier detector, the telemetry) are released before
 * the error is thrown.
 *
 * @module
 */
import { type Balancer, type P2cOptions, p2c } from '@grpc-tower/balance';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import {
  type CloseOptions,
  type Endpoint,
  type Layer,
  type Lifecycle,
  type Protocol,
  type Readiness,
  type Service,
  type Stack,
  timeout,
  type Discover,
} from '@grpc-tower/core';
import { type OptionChecks, optionChecks, stackOf } from '@grpc-tower/core/internal';
import { type ConnectOptions, type DiscoveredAddress, connect } from '@grpc-tower/discover';
import {
  type HealthEvent,
  type OutlierDetectionOptions,
  type OutlierDetector,
  outlierDetection,
} from '@grpc-tower/health';
import { type RetryLayer, retryBudget } from '@grpc-tower/retry';
import type { Observable } from 'rxjs';

/**
 * The options every grpc-tower stack takes, whatever its protocol:
 * `towerChannel`'s `TowerOptions` and `towerDispatcher`'s
 * `TowerDispatcherOptions` extend it, with the defaults documented here.
 *
 * @example
 * ```ts
 * const common: StackOptions<GrpcRequest, GrpcResponse> = {
 *   balancer: { failFastMs: 1_000 },
 *   outlierDetection: { consecutiveFailures: 3 },
 * };
 * ```
 */
export interface StackOptions<Req, Res> {
  /** Options of `connect` (how long a replaced endpoint may take to become ready…). */
  readonly connect?: ConnectOptions;
  /**
   * Passive outlier detection: options, or `false` for none. Default on,
   * with its documented thresholds, judging answers by the protocol of the
   * endpoint kind (`grpcProtocol`: gRPC statuses; for HTTP,
   * `httpProtocol()`: a 5xx answer or a failed connection or stream counts
   * as a failure, a 4xx never does) unless the options name another
   * `protocol`.
   */
  readonly outlierDetection?: OutlierDetectionOptions | false;
  /** P2C options: the load metric (default PeakEWMA), fail-fast time, slow start, panic threshold… */
  readonly balancer?: Omit<P2cOptions, 'target'>;
  /**
   * Extra layers: `outer` run first, outside the deadline and retries (one
   * run per call); `inner` run between the retries and the balancer (one run
   * per attempt). Within each list the first is outermost.
   */
  readonly layers?: {
    readonly outer?: readonly Layer<Req, Res>[];
    readonly inner?: readonly Layer<Req, Res>[];
  };
}

/**
 * The telemetry of one stack, as `towerChannel` and `towerDispatcher` wire
 * it: `@grpc-tower/telemetry`'s `Instrumentation` is one (gRPC's, by
 * default; `Req` and `Res` are HTTP/2's for a dispatcher).
 *
 * @example
 * ```ts
 * const ins: TowerInstrumentation = telemetry().instrument('dns:///orders:50051');
 * const http: TowerInstrumentation<Http2Request, Http2Response> = telemetry().instrumentHttp('http://orders:8080');
 * ```
 */
export interface TowerInstrumentation<Req = GrpcRequest, Res = GrpcResponse> {
  /** The outermost layer (one run per call). */
  readonly calls: Layer<Req, Res>;
  /** The layer just above the balancer (one run per attempt). */
  readonly attempts: Layer<Req, Res>;
  /** Follows an endpoint's own connection (before health gating); returns it. */
  endpoint<E extends Endpoint<Req, Res>>(endpoint: E): E;
  /** Reads the other parts of the stack. */
  observe(parts: {
    readonly balancer?: Balancer<Req, Res, string>;
    readonly health?: Observable<HealthEvent>;
    readonly outlier?: Observable<HealthEvent>;
    readonly discovery?: unknown;
    readonly retry?: RetryLayer<Req, Res>;
  }): void;
  /** Stops watching; called after the stack closed. */
  close(): void;
}

/** A health checker as the recipe uses it: wraps an endpoint, reports transitions. */
export interface StackHealthCheck<Req, Res> {
  (endpoint: Endpoint<Req, Res>): Endpoint<Req, Res>;
  readonly events$: Observable<HealthEvent>;
}

/**
 * What a front end tells the recipe about its protocol.
 *
 * @typeParam H the options of its health check; R its retry policy.
 */
export interface StackProtocol<Req, Res, H, R> {
  /** The front end's name, in errors (`towerChannel`). */
  readonly where: string;
  /** The stack's name: the balancer's target, the telemetry's label. */
  readonly target: string;
  /** The endpoint for one discovered address. */
  endpoint(address: DiscoveredAddress): Endpoint<Req, Res>;
  /**
   * The protocol's active health check and its default: the options it
   * runs with when the user names none, or `undefined` for off unless asked.
   */
  readonly health: {
    make(options: H): StackHealthCheck<Req, Res>;
    readonly byDefault: H | undefined;
  };
  /**
   * A deadline over all attempts of a call, in ms, as a `timeout` layer
   * between the outer layers and the retries; `undefined` for none (a front
   * end that keeps its own deadline, as the dispatcher does over the
   * response body, passes none).
   */
  readonly timeoutMs: number | undefined;
  /**
   * The protocol of the endpoint kind (`grpcProtocol`, `httpProtocol()`):
   * how outlier detection and the retry layer read requests, responses and
   * failures. The recipe passes it to both.
   */
  readonly protocol: Protocol<Req, Res>;
  /** The retry layer for a policy over `protocol` (the recipe adds a fresh budget unless the policy names one). */
  retry(policy: R, protocol: Protocol<Req, Res>): RetryLayer<Req, Res>;
  /**
   * The method of the user's `telemetry` option that instruments a stack of
   * this protocol (`'instrument'` for gRPC, `'instrumentHttp'` for HTTP).
   */
  readonly instrument: string;
}

/** The options the recipe reads, of any front end. */
export interface RecipeOptions<Req, Res, H, R> extends StackOptions<Req, Res> {
  readonly health?: H | false;
  readonly retry?: R | false;
  /** An object whose `protocol.instrument` method instruments the stack. */
  readonly telemetry?: object;
}

/** The parts the recipe made, given to the front end, which keeps what it exposes. */
export interface StackParts<Req, Res> {
  /** The whole stack: its `close()` also stops the outlier detector and the telemetry. */
  readonly stack: Stack<Req, Res>;
  readonly balancer: Balancer<Req, Res, string>;
  readonly health: StackHealthCheck<Req, Res> | undefined;
  readonly detector: OutlierDetector | undefined;
  readonly retries: RetryLayer<Req, Res> | undefined;
}

/**
 * The balancer's readiness, and its close followed by the detector's and
 * the telemetry's, so that closing the stack releases their timer and
 * subscriptions too. Not on the call path: calls go to the balancer itself.
 */
class ClosingWith implements Lifecycle {
  readonly #inner: Lifecycle;
  readonly #after: () => void;

  constructor(inner: Lifecycle, after: () => void) {
    this.#inner = inner;
    this.#after = after;
  }

  get readiness(): Readiness {
    return this.#inner.readiness;
  }

  get readiness$(): Observable<Readiness> {
    return this.#inner.readiness$;
  }

  async close(options?: CloseOptions): Promise<void> {
    try {
      await this.#inner.close(options);
    } finally {
      this.#after();
    }
  }
}

/** Checks the options the recipe reads: each named, as the front end's. */
function checkOptions(check: OptionChecks, options: RecipeOptions<unknown, unknown, unknown, unknown>): void {
  for (const name of ['health', 'outlierDetection', 'retry'] as const) {
    const value: unknown = options[name];
    if (value !== undefined && value !== false && (typeof value !== 'object' || value === null)) {
      throw check.error(name, value, 'options (an object), or false for none');
    }
  }
  const layers: unknown = options.layers;
  if (layers !== undefined) {
    if (typeof layers !== 'object' || layers === null || Array.isArray(layers)) {
      throw check.error('layers', layers, 'an object { outer?, inner? } of layer arrays');
    }
    for (const side of ['outer', 'inner'] as const) {
      const list: unknown = (layers as Record<string, unknown>)[side];
      if (list === undefined) continue;
      if (!Array.isArray(list)) throw check.error(`layers.${side}`, list, 'an array of layers');
      list.forEach((layer: unknown, i) => {
        check.function(`layers.${side}[${i}]`, layer, 'a layer (a function from service to service)');
      });
    }
  }
}

/** The instrumentation of the stack from the `telemetry` option; `undefined` without one. */
function instrumentationOf(check: OptionChecks, value: unknown, method: string, target: string): unknown {
  if (value === undefined) return undefined;
  const instrument =
    typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[method] : undefined;
  if (typeof instrument !== 'function') {
    throw check.error(
      'telemetry',
      value,
      `telemetry() from '@grpc-tower/telemetry' (an object with ${method}())`,
    );
  }
  return (instrument as (target: string) => unknown).call(value, target);
}

/**
 * Builds a stack: `source` (made once the options are checked) and the
 * protocol's pieces, assembled in the one order of every grpc-tower stack,
 * then handed to `frontEnd` (which makes the channel or dispatcher over
 * it). Throws `ConfigError` naming a bad option, after releasing what it
 * made (a throw of `frontEnd` included).
 *
 * @example
 * ```ts
 * const channel = buildStack(grpcProtocol, () => dns(host, port), options, ({ stack }) =>
 *   createChannel(stack, { target }),
 * );
 * ```
 */
export function buildStack<Req, Res, H, R, F>(
  protocol: StackProtocol<Req, Res, H, R>,
  source: () => Discover<string, DiscoveredAddress>,
  options: RecipeOptions<Req, Res, H, R>,
  frontEnd: (parts: StackParts<Req, Res>) => F,
): F {
  const check = optionChecks(protocol.where);
  checkOptions(check, options as RecipeOptions<unknown, unknown, unknown, unknown>);
  // the one place where a protocol's health-check default applies
  const healthOptions = options.health === false ? undefined : (options.health ?? protocol.health.byDefault);
  const health = healthOptions === undefined ? undefined : protocol.health.make(healthOptions);
  const retries =
    options.retry === false
      ? undefined
      : protocol.retry({ budget: retryBudget(), ...options.retry } as R, protocol.protocol);
  const deadline = protocol.timeoutMs === undefined ? undefined : timeout({ ms: protocol.timeoutMs });
  const telemetry = instrumentationOf(check, options.telemetry, protocol.instrument, protocol.target) as
    | TowerInstrumentation<Req, Res>
    | undefined;
  let detector: OutlierDetector | undefined;
  let balancer: Balancer<Req, Res, string> | undefined;
  try {
    detector =
      options.outlierDetection === false
        ? undefined
        : outlierDetection({
            protocol: protocol.protocol as Protocol<unknown, unknown>,
            ...options.outlierDetection,
          });
    const discovery = source();
    // before the balancer subscribes: a static list reports its one resolution then
    telemetry?.observe({ discovery });
    const endpoints = connect(
      discovery,
      (a: DiscoveredAddress): Endpoint<Req, Res> => {
        const ep = protocol.endpoint(a);
        telemetry?.endpoint(ep);
        const checked = health === undefined ? ep : health(ep);
        return detector === undefined ? checked : detector.wrap(checked);
      },
      options.connect,
    );
    balancer = p2c(endpoints, { ...options.balancer, target: protocol.target });
    telemetry?.observe({
      balancer,
      ...(health === undefined ? {} : { health: health.events$ }),
      ...(detector === undefined ? {} : { outlier: detector.events$ }),
      ...(retries === undefined ? {} : { retry: retries }),
    });
    // outermost first, as ServiceBuilder takes them
    const layers: Layer<Req, Res>[] = [
      ...(telemetry === undefined ? [] : [telemetry.calls]),
      ...(options.layers?.outer ?? []),
      ...(deadline === undefined ? [] : [deadline as Layer<Req, Res>]),
      ...(retries === undefined ? [] : [retries]),
      ...(options.layers?.inner ?? []),
      ...(telemetry === undefined ? [] : [telemetry.attempts]),
    ];
    let outer: Service<Req, Res> = balancer;
    for (let i = layers.length - 1; i >= 0; i--) outer = (layers[i] as Layer<Req, Res>)(outer);
    const lifecycle =
      detector === undefined && telemetry === undefined
        ? balancer
        : new ClosingWith(balancer, () => {
            detector?.close();
            telemetry?.close();
          });
    return frontEnd({ stack: stackOf(outer, lifecycle), balancer, health, detector, retries });
  } catch (err) {
    // a bad outlier, balancer, discovery or front-end option: release the discovery, the
    // detector's timer and the telemetry's watches
    if (balancer !== undefined) void balancer.close({ graceMs: 0 });
    detector?.close();
    telemetry?.close();
    throw err;
  }
}
