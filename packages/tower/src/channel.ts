/**
 * The one-call channel: the stack the guides recommend, built from a gRPC
 * target name, with every part overridable.
 *
 * discovery (from the target) → one `grpcEndpoint` per address, with the
 * caller's credentials and the target's host name as authority → active
 * health checks (`grpc.health.v1` Watch, gRPC A17: a server without the
 * health service counts as healthy) → outlier detection (Envoy's
 * consecutive failures and success rate, A50) → P2C with PeakEWMA → retry
 * (gRPC A6: UNAVAILABLE, at most 5 attempts) within a retry budget (20 % of
 * calls + 10/s, Finagle's) → the call's own deadline, which the channel
 * enforces over all attempts.
 *
 * @module
 */
import type { Channel, ChannelCredentials, ChannelOptions, ServiceDefinition } from '@grpc/grpc-js';
import { type Balancer, type P2cOptions, p2c } from '@grpc-tower/balance';
import {
  ConfigError,
  type Endpoint,
  type Layer,
  ServiceBuilder,
  type Stack,
  isHost,
  timeout,
} from '@grpc-tower/core';
import { TIMER_RULE, nativeSettings, optionChecks } from '@grpc-tower/core/internal';
import type { CallContext, Readiness } from '@grpc-tower/core';
import {
  type CreateChannelOptions,
  type GrpcEndpointOptions,
  type GrpcRequest,
  type GrpcResponse,
  type TowerChannel,
  createChannel,
  grpcEndpoint,
  nativeGrpcEndpoint,
} from '@grpc-tower/core/grpc';

/** A grpc-js endpoint (`transport: 'grpc-js'`). */
const grpcJsEndpoint = (address: string, options: GrpcEndpointOptions) =>
  grpcEndpoint(address, { ...options, transport: 'grpc-js' });
import {
  type ConnectOptions,
  type DiscoveredAddress,
  type Discover,
  type DnsOptions,
  connect,
  dns,
  staticList,
} from '@grpc-tower/discover';
import {
  type HealthCheckOptions,
  type HealthEvent,
  type OutlierDetectionOptions,
  healthChecked,
  outlierDetection,
} from '@grpc-tower/health';
import { type RetryLayer, type RetryPolicy, retry, retryBudget } from '@grpc-tower/retry';
import { isIP } from 'node:net';
import type { Observable } from 'rxjs';
import { etcdSource } from './etcd.js';
import { xdsSource } from './xds.js';
import { type Target, parseTarget } from './target.js';
import { endpointOptionsFor } from './endpoint-options.js';

type GrpcLayer = Layer<GrpcRequest, GrpcResponse>;

/**
 * Options of {@link towerChannel}: each changes one part of the default
 * stack and leaves the rest as documented.
 *
 * @example
 * ```ts
 * const options: TowerOptions = {
 *   services: [OrdersService],
 *   retry: { maxAttempts: 3, retryableStatusCodes: ['UNAVAILABLE', 'RESOURCE_EXHAUSTED'] },
 *   health: { service: 'shop.Orders' },
 *   dns: { intervalMs: 10_000 },
 * };
 * ```
 */
export interface TowerOptions {
  /**
   * Service definitions of the methods the channel carries (proto-loader's
   * `Client.service`, grpc-tools' or ts-proto's `…Service`). With them each
   * call knows whether it streams, so unary and client-streaming calls stay
   * retryable until their status; without them the channel commits at the
   * first response message.
   */
  readonly services?: readonly ServiceDefinition[];
  /**
   * `:authority` and TLS server name of every endpoint. Default: the host
   * name of a `dns:` target; for an IP target (or `ipv4:`/`ipv6:`), each
   * endpoint's own address.
   */
  readonly authority?: string;
  /** grpc-js channel options of every endpoint (message size limits, keepalive…). */
  readonly channelOptions?: ChannelOptions;
  /**
   * How endpoints speak gRPC: `'native'` (default), over each endpoint's
   * own HTTP/2 connection (it refuses, by name, the channel options it
   * does not honour), or `'grpc-js'`, a grpc-js channel per endpoint: the
   * way back for a channel option only grpc-js takes, grpc-js's own
   * tracing (`GRPC_TRACE`), or behaviour that must match a plain grpc-js
   * client exactly. See `GrpcEndpointOptions.transport`.
   */
  readonly transport?: 'grpc-js' | 'native';
  /**
   * The grace time, in ms: how long the calls in flight may go on after
   * `close()` (streams, calls waiting for an endpoint and retries waiting
   * out their backoff included) before those left end UNAVAILABLE
   * ("channel … closed: the 30000 ms grace time ran out"), and how long an
   * endpoint that discovery removed lets its calls finish. Default 30 000,
   * Kubernetes' default termination grace. `close({ graceMs })` overrides
   * it for one close.
   */
  readonly closeGraceMs?: number;
  /** Options of the DNS source of a `dns:` target (interval, families, TTLs…); the server comes from the target. */
  readonly dns?: Omit<DnsOptions, 'servers'>;
  /**
   * Discovers the addresses instead of the target's scheme (etcd, your own
   * registry): a `Discover` stream of `{ address }` values, such as
   * `etcd({ client, prefix })` from `@grpc-tower/discover/etcd`. The target
   * still names the channel and gives the default authority.
   */
  readonly discovery?: Discover<string, DiscoveredAddress>;
  /** Options of `connect` (how long a replaced endpoint may take to become ready…). */
  readonly connect?: ConnectOptions;
  /** Active health checks (`grpc.health.v1`): options, or `false` for none. Default on, Watch mode, service `''`. */
  readonly health?: HealthCheckOptions | false;
  /** Passive outlier detection: options, or `false` for none. Default on, with its documented thresholds. */
  readonly outlierDetection?: OutlierDetectionOptions | false;
  /** P2C options: the load metric (default PeakEWMA), fail-fast time, slow start, panic threshold… */
  readonly balancer?: Omit<P2cOptions, 'target'>;
  /**
   * The retry policy, or `false` for no retries. Default: gRPC A6's
   * (UNAVAILABLE, at most 5 attempts, 25–250 ms backoff) within a fresh
   * `retryBudget()`; a policy given here gets that budget too unless it
   * names its own.
   */
  readonly retry?: RetryPolicy | false;
  /**
   * A time limit over all attempts of every call, in ms, for calls that set
   * no deadline of their own (a call's deadline, when sooner, still wins).
   * Default: none; the call's deadline alone.
   */
  readonly timeoutMs?: number;
  /**
   * Extra layers: `outer` run first, outside the deadline and retries (one
   * run per call); `inner` run between the retries and the balancer (one run
   * per attempt). Within each list the first is outermost.
   */
  readonly layers?: {
    readonly outer?: readonly Layer<GrpcRequest, GrpcResponse>[];
    readonly inner?: readonly Layer<GrpcRequest, GrpcResponse>[];
  };
  /** Request replay limits of the channel (gRPC A6): per call 1 MiB, per channel 16 MiB by default. */
  readonly replay?: CreateChannelOptions['replay'];
  /**
   * Metrics and traces of the whole stack: `telemetry()` from
   * `@grpc-tower/telemetry` (OpenTelemetry; register the SDK before creating
   * the channel). Its call layer runs outermost, its attempt layer just
   * above the balancer; it follows every endpoint's connection, the
   * balancer, the health checks, the outlier detector, discovery and the
   * retry budget, and stops when the channel closes. Default: none.
   */
  readonly telemetry?: TowerTelemetry;
}

/**
 * What {@link TowerOptions.telemetry} takes: `@grpc-tower/telemetry`'s
 * `telemetry()` is one; any object of this shape will do.
 *
 * @example
 * ```ts
 * import { telemetry } from '@grpc-tower/telemetry';
 * const t: TowerTelemetry = telemetry();
 * ```
 */
export interface TowerTelemetry {
  /** The telemetry of one channel, labelled with its canonical target. */
  instrument(target: string): TowerInstrumentation;
}

/**
 * One channel's telemetry, as {@link towerChannel} wires it.
 *
 * @example
 * ```ts
 * const ins: TowerInstrumentation = telemetry().instrument('dns:///orders:50051');
 * ```
 */
export interface TowerInstrumentation {
  /** The outermost layer (one run per call). */
  readonly calls: Layer<GrpcRequest, GrpcResponse>;
  /** The layer just above the balancer (one run per attempt). */
  readonly attempts: Layer<GrpcRequest, GrpcResponse>;
  /** Follows an endpoint's own connection (before health gating); returns it. */
  endpoint<E extends Endpoint<GrpcRequest, GrpcResponse>>(endpoint: E): E;
  /** Reads the other parts of the stack. */
  observe(parts: {
    readonly balancer?: Balancer<GrpcRequest, GrpcResponse, string>;
    readonly health?: Observable<HealthEvent>;
    readonly outlier?: Observable<HealthEvent>;
    readonly discovery?: unknown;
    readonly retry?: RetryLayer;
  }): void;
  /** Stops watching; called after the channel's stack closed. */
  close(): void;
}

const WHERE = 'towerChannel';

/** Whether `x` is a grpc-js `ChannelCredentials` (from this or another copy of grpc-js). */
const isCredentials = (x: unknown): x is ChannelCredentials =>
  typeof x === 'object' && x !== null && typeof (x as { _isSecure?: unknown })._isSecure === 'function';

/**
 * The balancer with the outlier detector's and the telemetry's close joined
 * to its own, so that closing the channel releases the detector's timer
 * and the telemetry's subscriptions too.
 */
class ClosingWith implements Stack<GrpcRequest, GrpcResponse> {
  readonly call: (req: GrpcRequest, ctx: CallContext) => Promise<GrpcResponse>;
  readonly #inner: Stack<GrpcRequest, GrpcResponse>;
  readonly #after: () => void;

  constructor(inner: Stack<GrpcRequest, GrpcResponse>, after: () => void) {
    this.call = inner.call.bind(inner);
    this.#inner = inner;
    this.#after = after;
  }

  get readiness(): Readiness {
    return this.#inner.readiness;
  }

  get readiness$(): Observable<Readiness> {
    return this.#inner.readiness$;
  }

  async close(options?: { graceMs?: number }): Promise<void> {
    try {
      await this.#inner.close(options);
    } finally {
      this.#after();
    }
  }
}

/** The addresses the target names, as a discovery source. */
function sourceOf(target: Target, options: TowerOptions): Discover<string, DiscoveredAddress> {
  if (options.discovery !== undefined) return options.discovery;
  if (target.scheme === 'etcd') return etcdSource(target);
  if (target.scheme === 'xds') return xdsSource(target);
  if (target.scheme !== 'dns') return staticList(target.addresses, { name: target.canonical });
  return dns(target.host, target.port, {
    ...options.dns,
    ...(target.dnsServer === undefined ? {} : { servers: [target.dnsServer] }),
  });
}

/**
 * Builds the default grpc-tower stack for `target` (gRPC's name syntax:
 * `dns:///orders.internal:50051`, `dns://10.0.0.2:53/orders.internal:50051`,
 * `orders.internal:50051`, `ipv4:10.0.0.7:50051,10.0.0.8:50051`,
 * `ipv6:[fd00::7]:50051`) and returns it as a grpc-js `ChannelInterface`.
 *
 * `credentials` are required, as in grpc-js's client constructor, and are
 * used for every endpoint: grpc-js ignores the credentials given to a client
 * whose `channelOverride` is set, so these are the ones that count. The
 * channel reports the balancer's readiness as its connectivity state.
 * `close()` is graceful: it returns at once, refuses new calls, lets the
 * calls in flight finish within `closeGraceMs` (30 s), then closes
 * everything it holds (endpoints, DNS polling, health watches, the outlier
 * detector's timer); `closeGracefully()` resolves when all is released.
 *
 * Throws `InvalidTargetError` for a target it cannot use and `ConfigError`
 * for a bad option, naming the option.
 *
 * @example
 * ```ts
 * import * as grpc from '@grpc/grpc-js';
 * import { towerChannel } from 'grpc-tower';
 *
 * const channel = towerChannel('dns:///orders.internal:50051', grpc.credentials.createSsl(), {
 *   services: [OrdersService],
 * });
 * const client = new OrdersClient('dns:///orders.internal:50051', grpc.credentials.createSsl(), {
 *   channelOverride: channel,
 * });
 * ```
 */
export function towerChannel(
  target: string,
  credentials: ChannelCredentials,
  options: TowerOptions = {},
): TowerChannel {
  const parsed = parseTarget(target);
  if (!isCredentials(credentials)) {
    throw new ConfigError(
      WHERE,
      'credentials',
      credentials,
      'grpc-js ChannelCredentials: grpc.credentials.createSsl(…) for TLS, or grpc.credentials.createInsecure() ' +
        'to choose plaintext',
    );
  }
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(WHERE, 'options', options, 'an object');
  }
  checkEndpointOptions(options);
  checkLayers(options.layers);
  if (
    options.telemetry !== undefined &&
    (typeof options.telemetry !== 'object' ||
      options.telemetry === null ||
      typeof options.telemetry.instrument !== 'function')
  ) {
    throw new ConfigError(WHERE, 'telemetry', options.telemetry, "telemetry() from '@grpc-tower/telemetry'");
  }
  const authority = options.authority ?? (parsed.scheme === 'dns' ? hostNameOf(parsed.host) : undefined);
  // endpoint options are checked here, once, rather than at the first discovered address
  const endpointOptions = {
    credentials,
    ...(authority === undefined ? {} : { authority }),
    ...(options.channelOptions === undefined ? {} : { channelOptions: options.channelOptions }),
    ...(options.closeGraceMs === undefined ? {} : { closeGraceMs: options.closeGraceMs }),
  };
  const health = options.health === false ? undefined : healthChecked(options.health);
  const detector =
    options.outlierDetection === false ? undefined : outlierDetection(options.outlierDetection);
  const retries =
    options.retry === false ? undefined : retry({ budget: retryBudget(), ...(options.retry ?? {}) });
  const deadline = options.timeoutMs === undefined ? undefined : timeout({ ms: options.timeoutMs });
  const telemetry = options.telemetry?.instrument(parsed.canonical);
  try {
    return build(parsed, options, endpointOptions, { health, detector, retries, deadline, telemetry });
  } catch (err) {
    // a bad balancer or replay option: release the detector's timer and the telemetry's watches first
    detector?.close();
    telemetry?.close();
    throw err;
  }
}

interface Parts {
  readonly health: ReturnType<typeof healthChecked> | undefined;
  readonly detector: ReturnType<typeof outlierDetection> | undefined;
  readonly retries: RetryLayer | undefined;
  readonly deadline: GrpcLayer | undefined;
  readonly telemetry: TowerInstrumentation | undefined;
}

function build(
  parsed: Target,
  options: TowerOptions,
  endpointOptions: GrpcEndpointOptions,
  { health, detector, retries, deadline, telemetry }: Parts,
): TowerChannel {
  const source = sourceOf(parsed, options);
  const makeEndpoint = options.transport === 'grpc-js' ? grpcJsEndpoint : nativeGrpcEndpoint;
  // before the balancer subscribes: a static list reports its one resolution then
  telemetry?.observe({ discovery: source });
  const endpoints = connect(
    source,
    (a: DiscoveredAddress): Endpoint<GrpcRequest, GrpcResponse> => {
      const ep = makeEndpoint(a.address, endpointOptionsFor(endpointOptions, a));
      telemetry?.endpoint(ep);
      const checked = health === undefined ? ep : health(ep);
      return detector === undefined ? checked : detector.wrap(checked);
    },
    options.connect,
  );
  const balancer = p2c(endpoints, { ...options.balancer, target: parsed.canonical });
  telemetry?.observe({
    balancer,
    ...(health === undefined ? {} : { health: health.events$ }),
    ...(detector === undefined ? {} : { outlier: detector.events$ }),
    ...(retries === undefined ? {} : { retry: retries }),
  });
  let builder = new ServiceBuilder<GrpcRequest, GrpcResponse>();
  if (telemetry !== undefined) builder = builder.layer(telemetry.calls);
  for (const layer of options.layers?.outer ?? []) builder = builder.layer(layer);
  if (deadline !== undefined) builder = builder.layer(deadline);
  if (retries !== undefined) builder = builder.layer(retries);
  for (const layer of options.layers?.inner ?? []) builder = builder.layer(layer);
  if (telemetry !== undefined) builder = builder.layer(telemetry.attempts);
  const innermost: Stack<GrpcRequest, GrpcResponse> =
    detector === undefined && telemetry === undefined
      ? balancer
      : new ClosingWith(balancer, () => {
          detector?.close();
          telemetry?.close();
        });
  return createChannel(builder.service(innermost), {
    target: parsed.canonical,
    ...(options.services === undefined ? {} : { services: options.services }),
    ...(options.replay === undefined ? {} : { replay: options.replay }),
    ...(options.closeGraceMs === undefined ? {} : { closeGraceMs: options.closeGraceMs }),
  });
}

/**
 * The client options that make a grpc-js client use {@link towerChannel}:
 * `{ channelOverride }`. Adopting grpc-tower is then one changed line where
 * the client is built; spread the result to add options of your own.
 *
 * @example
 * ```ts
 * const target = 'dns:///orders.internal:50051';
 * const creds = grpc.credentials.createInsecure();
 * // before: new OrdersClient(target, creds);
 * const client = new OrdersClient(target, creds, towerClientOptions(target, creds));
 * ```
 */
export function towerClientOptions(
  target: string,
  credentials: ChannelCredentials,
  options?: TowerOptions,
): { channelOverride: TowerChannel } {
  return { channelOverride: towerChannel(target, credentials, options) };
}

/**
 * The same channel, typed as grpc-js's `Channel` class, for APIs that take
 * that class and hand it to a client as `channelOverride` (nice-grpc's
 * `createClient`, `createClientFactory().create`): TypeScript compares a
 * class with private members by name, so a `ChannelInterface` does not
 * satisfy it although every method such an API calls is there. Nothing is
 * wrapped or copied.
 *
 * @example
 * ```ts
 * import { createClient } from 'nice-grpc';
 * const channel = towerChannel('dns:///orders.internal:50051', grpc.credentials.createInsecure());
 * const orders = createClient(OrdersDefinition, asGrpcChannel(channel));
 * ```
 */
export function asGrpcChannel(channel: TowerChannel): Channel {
  return channel as unknown as Channel;
}

/** The host as an authority: a host name as it is; an IP literal gives none (each endpoint's address). */
function hostNameOf(host: string): string | undefined {
  return isIP(host) === 0 ? host : undefined;
}

/** The endpoint options, checked now rather than when the first address is discovered. */
function checkEndpointOptions(options: TowerOptions): void {
  const check = optionChecks(WHERE);
  if (options.closeGraceMs !== undefined) check.number('closeGraceMs', options.closeGraceMs, TIMER_RULE);
  if (
    options.authority !== undefined &&
    (typeof options.authority !== 'string' || !isHost(options.authority))
  ) {
    throw check.error('authority', options.authority, 'a host name (or IP address)');
  }
  if (options.channelOptions !== undefined) check.object('channelOptions', options.channelOptions);
  if (options.transport !== undefined && options.transport !== 'grpc-js' && options.transport !== 'native') {
    throw check.error('transport', options.transport, "'grpc-js' or 'native'");
  }
  if (options.transport !== 'grpc-js') nativeSettings(WHERE, options.channelOptions);
}

function checkLayers(layers: TowerOptions['layers']): void {
  if (layers === undefined) return;
  if (typeof layers !== 'object' || layers === null) {
    throw new ConfigError(WHERE, 'layers', layers, 'an object { outer?, inner? } of layer arrays');
  }
  for (const side of ['outer', 'inner'] as const) {
    const list: unknown = layers[side];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new ConfigError(WHERE, `layers.${side}`, list, 'an array of layers');
    list.forEach((layer: unknown, i) => {
      if (typeof layer !== 'function') {
        throw new ConfigError(
          WHERE,
          `layers.${side}[${i}]`,
          layer,
          'a layer (a function from service to service)',
        );
      }
    });
  }
}
