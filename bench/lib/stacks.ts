/**
 * The clients the scenarios compare, each an echo client (proto-loader,
 * `@grpc-tower/testing`) over a different channel:
 *
 * - {@link plainClient}: grpc-js alone, for a single address or a target
 *   with grpc-js's `round_robin`;
 * - {@link bareChannel}: `createChannel` over one `grpcEndpoint`, no layer
 *   (native transport, or grpc-js by name);
 * - {@link towerClient}: `towerChannel`, the full default stack in one call;
 * - {@link balancedChannel}: discovery → `connect` → a balancer →
 *   `createChannel`, no other layer (to compare balancing policies alone);
 * - {@link fullStack}: the stack a user is told to run — discovery →
 *   `connect` → health checking → outlier detection → `p2c` (PeakEWMA by
 *   default) → `retry` with a retry budget → `timeout` → `createChannel`;
 *   with `telemetry`, its call layer outermost and its attempt layer above
 *   the balancer, as `towerChannel` places them.
 *
 * @module
 */
import { type Balancer, type LoadMetric, p2c, peakEwma, roundRobin } from '@grpc-tower/balance';
import { type Endpoint, type Service, ServiceBuilder, timeout, type Discover } from '@grpc-tower/core';
import type { GrpcTransport, TowerChannel } from '@grpc-tower/core/grpc';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { type DiscoveredAddress, connect, staticList } from '@grpc-tower/discover';
import { healthChecked, outlierDetection } from '@grpc-tower/health';
import { retry, retryBudget } from '@grpc-tower/retry';
import type { Telemetry } from '@grpc-tower/telemetry';
import { type EchoProtoClient, createEchoClient, insecure, loadEchoPackage } from '@grpc-tower/testing';
import { towerChannel } from 'grpc-tower';

/**
 * One client under test.
 *
 * @example
 * ```ts
 * const c: Contender = plainClient('grpc-js', server.address);
 * await c.close();
 * ```
 */
export interface Contender {
  readonly name: string;
  readonly client: EchoProtoClient;
  /** The grpc-tower balancer, when there is one (for its stats). */
  readonly balancer?: Balancer<GrpcRequest, GrpcResponse, string>;
  /** Closes the client and everything it owns. */
  close(): Promise<void>;
}

/** The grpc-js service config that turns on grpc-js's own round_robin. */
export const GRPC_JS_ROUND_ROBIN = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

/**
 * A plain grpc-js client for `target` (an address, `ipv4:a,b,c`, or a
 * `dns://server/name:port` URI); `roundRobin` sets grpc-js's round_robin
 * policy (its default is pick_first).
 *
 * @example
 * ```ts
 * const rr = plainClient('grpc-js round_robin', 'ipv4:127.0.0.2:5000,127.0.0.3:5000', { roundRobin: true });
 * ```
 */
export function plainClient(name: string, target: string, options: { roundRobin?: boolean } = {}): Contender {
  const client = createEchoClient(
    target,
    options.roundRobin === true ? { 'grpc.service_config': GRPC_JS_ROUND_ROBIN } : {},
  );
  return {
    name,
    client,
    close: async () => client.close(),
  };
}

/**
 * `createChannel` over a single `grpcEndpoint` (over `transport`, native by
 * default): the cost of the channel itself.
 *
 * @example
 * ```ts
 * const bare = bareChannel('createChannel (bare)', server.address);
 * const viaGrpcJs = bareChannel('createChannel (bare, grpc-js endpoint)', server.address, 'grpc-js');
 * ```
 */
export function bareChannel(name: string, address: string, transport: GrpcTransport = 'native'): Contender {
  return channelOver(name, address, grpcEndpoint(address, { credentials: insecure, transport }));
}

/**
 * `towerChannel` for one address (`ipv4:` target), with its defaults: the
 * full stack a user gets in one call, over `transport` (native by default).
 *
 * @example
 * ```ts
 * const tower = towerClient('towerChannel', server.address);
 * ```
 */
export function towerClient(name: string, address: string, transport: GrpcTransport = 'native'): Contender {
  const channel = towerChannel(`ipv4:${address}`, insecure, {
    services: [loadEchoPackage().EchoService],
    transport,
  });
  return clientOf(name, address, channel);
}

/** An echo client over `channel`; closing it closes the channel, then runs `after`. */
function clientOf(
  name: string,
  address: string,
  channel: TowerChannel,
  after: () => void = () => undefined,
): Contender {
  const client = createEchoClient(address, { channelOverride: channel });
  return {
    name,
    client,
    close: async () => {
      client.close();
      await channel.closeAsync();
      after();
    },
  };
}

/** A client over `createChannel(stack)`; `after` runs once the channel has closed. */
function channelOver(
  name: string,
  address: string,
  stack: Service<GrpcRequest, GrpcResponse>,
  after: () => void = () => undefined,
): Contender {
  const channel = createChannel(stack, {
    target: address,
    services: [loadEchoPackage().EchoService],
  });
  return clientOf(name, address, channel, after);
}

/** Which balancer a {@link balancedChannel} uses. */
export type BalancerKind =
  | { readonly kind: 'p2c'; readonly load: LoadMetric; readonly tieTolerance?: number }
  | { readonly kind: 'round-robin' };

function makeBalancer(
  endpoints: Discover<string, Endpoint<GrpcRequest, GrpcResponse>>,
  target: string,
  balancer: BalancerKind,
): Balancer<GrpcRequest, GrpcResponse, string> {
  return balancer.kind === 'p2c'
    ? p2c(endpoints, {
        target,
        load: balancer.load,
        ...(balancer.tieTolerance === undefined ? {} : { tieTolerance: balancer.tieTolerance }),
      })
    : roundRobin(endpoints, { target });
}

/**
 * Discovery → `connect` (one `grpcEndpoint` per address) → a balancer →
 * `createChannel`, with no other layer.
 *
 * @example
 * ```ts
 * const c = balancedChannel('p2c + pending', staticList(addresses), { kind: 'p2c', load: pendingRequests() });
 * ```
 */
export function balancedChannel(
  name: string,
  addresses: Discover<string, DiscoveredAddress>,
  balancer: BalancerKind,
  target = 'bench',
): Contender {
  const b = makeBalancer(
    connect(addresses, (a) => grpcEndpoint(a.address, { credentials: insecure })),
    target,
    balancer,
  );
  const channel = createChannel(b, {
    target,
    services: [loadEchoPackage().EchoService],
  });
  const client = createEchoClient(target, { channelOverride: channel });
  return {
    name,
    client,
    balancer: b,
    close: async () => {
      client.close();
      await channel.closeAsync();
    },
  };
}

/**
 * The settings of the full stack, as the suite runs it: the documented
 * defaults everywhere, plus a whole-call timeout (the timeout layer has no
 * default).
 */
export const FULL_STACK = {
  timeoutMs: 5_000,
  description:
    'discovery → connect → healthChecked() → outlierDetection() → p2c (PeakEWMA unless noted) → ' +
    'retry({ budget: retryBudget() }) → timeout(5 s) → createChannel',
} as const;

/**
 * The full default stack over `addresses`: health checking (the servers
 * serve `grpc.health.v1`), outlier detection, P2C (PeakEWMA unless `load`
 * says otherwise), A6 retries with a retry budget, and a whole-call timeout.
 *
 * @example
 * ```ts
 * const c = fullStack('grpc-tower', dns('echo.test', port, { servers: [dnsmasq.address], intervalMs: 1000 }));
 * ```
 */
export function fullStack(
  name: string,
  addresses: Discover<string, DiscoveredAddress>,
  options: {
    readonly target?: string;
    readonly load?: LoadMetric;
    readonly telemetry?: Telemetry;
    /** The endpoints' transport; native (`grpcEndpoint`'s default) unless said. */
    readonly transport?: GrpcTransport;
  } = {},
): Contender {
  const target = options.target ?? 'bench';
  const transport = options.transport ?? 'native';
  const health = healthChecked();
  const detector = outlierDetection();
  const ins = options.telemetry?.instrument(target);
  const endpoints = connect(addresses, (a) => {
    const ep = grpcEndpoint(a.address, { credentials: insecure, transport });
    ins?.endpoint(ep);
    return detector.wrap(health(ep));
  });
  const balancer = p2c(endpoints, { target, load: options.load ?? peakEwma() });
  const retries = retry({ budget: retryBudget() });
  ins?.observe({
    balancer,
    health: health.events$,
    outlier: detector.events$,
    discovery: addresses,
    retry: retries,
  });
  let builder = new ServiceBuilder<GrpcRequest, GrpcResponse>();
  if (ins !== undefined) builder = builder.layer(ins.calls);
  builder = builder.layer(timeout({ ms: FULL_STACK.timeoutMs })).layer(retries);
  if (ins !== undefined) builder = builder.layer(ins.attempts);
  const stack = builder.service(balancer);
  const channel = createChannel(stack, {
    target,
    services: [loadEchoPackage().EchoService],
  });
  const client = createEchoClient(target, { channelOverride: channel });
  return {
    name,
    client,
    balancer,
    close: async () => {
      client.close();
      await channel.closeAsync();
      detector.close();
      ins?.close();
    },
  };
}

/** The layers of the full stack that {@link LAYER_STACKS} measures one at a time. */
export type LayerName = 'timeout' | 'retry' | 'health' | 'outlier' | 'p2c';

/** What each entry of {@link LAYER_STACKS} adds to the bare channel. */
export const LAYER_DESCRIPTIONS: Readonly<Record<LayerName, string>> = {
  timeout: 'timeout(5 s)',
  retry: 'retry({ budget: retryBudget() })',
  health: 'healthChecked()',
  outlier: 'outlierDetection()',
  p2c: 'staticList → connect → p2c (PeakEWMA)',
};

/**
 * The bare channel over one `grpcEndpoint` with one layer of the full stack
 * added, configured as in {@link fullStack}: what that layer costs alone.
 *
 * @example
 * ```ts
 * const c = LAYER_STACKS.retry('+ retry', server.address);
 * ```
 */
export const LAYER_STACKS: Readonly<Record<LayerName, (name: string, address: string) => Contender>> = {
  timeout: (name, address) =>
    channelOver(
      name,
      address,
      new ServiceBuilder<GrpcRequest, GrpcResponse>()
        .layer(timeout({ ms: FULL_STACK.timeoutMs }))
        .service(grpcEndpoint(address, { credentials: insecure })),
    ),
  retry: (name, address) =>
    channelOver(
      name,
      address,
      new ServiceBuilder<GrpcRequest, GrpcResponse>()
        .layer(retry({ budget: retryBudget() }))
        .service(grpcEndpoint(address, { credentials: insecure })),
    ),
  health: (name, address) =>
    channelOver(name, address, healthChecked()(grpcEndpoint(address, { credentials: insecure }))),
  outlier: (name, address) => {
    const detector = outlierDetection();
    return channelOver(name, address, detector.wrap(grpcEndpoint(address, { credentials: insecure })), () =>
      detector.close(),
    );
  },
  p2c: (name, address) =>
    channelOver(
      name,
      address,
      p2c(
        connect(staticList([address]), (a) => grpcEndpoint(a.address, { credentials: insecure })),
        { target: address, load: peakEwma() },
      ),
    ),
};

/**
 * Closes every contender, even when some fail to close.
 *
 * @example
 * ```ts
 * await closeAll(contenders);
 * ```
 */
export async function closeAll(contenders: readonly Contender[]): Promise<void> {
  await Promise.allSettled(contenders.map((c) => c.close()));
}
