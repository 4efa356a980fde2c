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
 * enforces over all attempts. The assembly is the recipe's (`recipe.ts`),
 * which `towerDispatcher` shares; this file names gRPC's pieces.
 *
 * @module
 */
import type { Channel, ChannelCredentials, ChannelOptions, ServiceDefinition } from '@grpc/grpc-js';
import { ConfigError, isHost, type Discover } from '@grpc-tower/core';
import { TIMER_RULE, nativeSettings, optionChecks } from '@grpc-tower/core/internal';
import {
  type CreateChannelOptions,
  type GrpcEndpointOptions,
  type GrpcRequest,
  type GrpcResponse,
  type TowerChannel,
  createChannel,
  grpcEndpoint,
  grpcProtocol,
  nativeGrpcEndpoint,
} from '@grpc-tower/core/grpc';

/** A grpc-js endpoint (`transport: 'grpc-js'`). */
const grpcJsEndpoint = (address: string, options: GrpcEndpointOptions) =>
  grpcEndpoint(address, { ...options, transport: 'grpc-js' });
import { type DiscoveredAddress, type DnsOptions, dns, staticList } from '@grpc-tower/discover';
import { type HealthCheckOptions, healthChecked } from '@grpc-tower/health';
import { type RetryPolicy, compileRetryPolicy, retryWith } from '@grpc-tower/retry';
import { isIP } from 'node:net';
import { etcdSource } from './etcd.js';
import { xdsSource } from './xds.js';
import { type Target, parseTarget } from './target.js';
import { type StackOptions, type StackParts, type TowerInstrumentation, buildStack } from './recipe.js';

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
export interface TowerOptions extends StackOptions<GrpcRequest, GrpcResponse> {
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
  /**
   * Active health checks (`grpc.health.v1` Watch, gRPC A17): options, or
   * `false` for none. Default on, service `''` (the server as a whole): gRPC
   * has a standard health service, and a server without it counts as
   * healthy (UNIMPLEMENTED, logged once), so checking costs nothing where it
   * is not served. `towerDispatcher`'s HTTP checks are off unless given a
   * path, since HTTP has no standard one.
   */
  readonly health?: HealthCheckOptions | false;
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

const WHERE = 'towerChannel';

/** Whether `x` is a grpc-js `ChannelCredentials` (from this or another copy of grpc-js). */
const isCredentials = (x: unknown): x is ChannelCredentials =>
  typeof x === 'object' && x !== null && typeof (x as { _isSecure?: unknown })._isSecure === 'function';

/**
 * The addresses the target names, as a discovery source (`options.discovery` when given).
 *
 * @internal
 * @example
 * ```ts
 * const source = sourceOf(parseTarget('dns:///orders.internal:50051'), {});
 * ```
 */
export function sourceOf(
  target: Target,
  options: Pick<TowerOptions, 'discovery' | 'dns'>,
): Discover<string, DiscoveredAddress> {
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
  return buildGrpcStack(WHERE, target, credentials, options, ({ stack }, parsed) =>
    createChannel(stack, {
      target: parsed.canonical,
      ...(options.services === undefined ? {} : { services: options.services }),
      ...(options.replay === undefined ? {} : { replay: options.replay }),
      ...(options.closeGraceMs === undefined ? {} : { closeGraceMs: options.closeGraceMs }),
    }),
  );
}

/**
 * The gRPC stack of a front end (`towerChannel`, `towerTransport`): the
 * target parsed, the credentials and endpoint options checked (errors
 * named after `where`), and the recipe run with gRPC's pieces; `frontEnd`
 * gets the parts and the parsed target.
 *
 * @internal
 * @example
 * ```ts
 * const channel = buildGrpcStack('towerChannel', target, creds, {}, ({ stack }, parsed) =>
 *   createChannel(stack, { target: parsed.canonical }),
 * );
 * ```
 */
export function buildGrpcStack<F>(
  where: string,
  target: string,
  credentials: ChannelCredentials,
  options: TowerOptions,
  frontEnd: (parts: StackParts<GrpcRequest, GrpcResponse>, parsed: Target) => F,
): F {
  const parsed = parseTarget(target);
  if (!isCredentials(credentials)) {
    throw new ConfigError(
      where,
      'credentials',
      credentials,
      'grpc-js ChannelCredentials: grpc.credentials.createSsl(…) for TLS, or grpc.credentials.createInsecure() ' +
        'to choose plaintext',
    );
  }
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(where, 'options', options, 'an object');
  }
  checkEndpointOptions(where, options);
  const authority = options.authority ?? (parsed.scheme === 'dns' ? hostNameOf(parsed.host) : undefined);
  // endpoint options are checked here, once, rather than at the first discovered address
  const endpointOptions: GrpcEndpointOptions = {
    credentials,
    ...(authority === undefined ? {} : { authority }),
    ...(options.channelOptions === undefined ? {} : { channelOptions: options.channelOptions }),
    ...(options.closeGraceMs === undefined ? {} : { closeGraceMs: options.closeGraceMs }),
  };
  const makeEndpoint = options.transport === 'grpc-js' ? grpcJsEndpoint : nativeGrpcEndpoint;
  return buildStack(
    {
      where,
      target: parsed.canonical,
      // the address's weight, zone and hints travel on the insert `connect` hands on
      endpoint: (a) => makeEndpoint(a.address, endpointOptions),
      // gRPC has a standard health service (A17): checked unless turned off
      health: { make: healthChecked, byDefault: {} },
      timeoutMs: options.timeoutMs,
      protocol: grpcProtocol,
      retry: (policy, protocol) => retryWith(protocol, compileRetryPolicy(policy)),
      instrument: 'instrument',
    },
    () => sourceOf(parsed, options),
    options,
    (parts) => frontEnd(parts, parsed),
  );
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
function checkEndpointOptions(where: string, options: TowerOptions): void {
  const check = optionChecks(where);
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
  if (options.transport !== 'grpc-js') nativeSettings(where, options.channelOptions);
}
