/**
 * The two clients the demo drives.
 *
 * - grpc-tower: discovery (DNS polled every second, or the EndpointSlices
 *   of a Kubernetes Service, watched) → health (the
 *   `grpc.health.v1` Watch stream per server, plus outlier detection) →
 *   p2c with PeakEWMA load → retry (A6 rules, retry budget) → timeout,
 *   ending in a grpc-js `ChannelInterface` that the generated client uses;
 *   `@grpc-tower/telemetry` records its metrics (calls, attempts,
 *   connections, picks, ejections…) into the `MeterProvider` it is given.
 * - grpc-js round_robin: the same proto-loader client on a plain grpc-js
 *   channel with a `dns://` target, the `round_robin` policy and an A6
 *   retry policy with the same limits as grpc-tower's, re-resolving at
 *   most every second (its default is 30 s). That is the fair comparison:
 *   the same DNS records, the same retries, the same deadline. It reads
 *   DNS whichever discovery the grpc-tower client uses; the demo publishes
 *   the same servers in both.
 */
import * as grpc from '@grpc/grpc-js';
import { type Balancer, p2c } from '@grpc-tower/balance';
import { type Readiness, ServiceBuilder, timeout } from '@grpc-tower/core';
import {
  type GrpcRequest,
  type GrpcResponse,
  createChannel,
  grpcEndpoint,
  type TowerChannel,
} from '@grpc-tower/core/grpc';
import { type DiscoverySource, connect, dns } from '@grpc-tower/discover';
import { healthChecked, outlierDetection } from '@grpc-tower/health';
import { retry, retryBudget } from '@grpc-tower/retry';
import { type CallMetricsProducer, telemetry } from '@grpc-tower/telemetry';
import {
  type EchoProtoClient,
  createEchoClient,
  ECHO_SERVICE_NAME,
  loadEchoPackage,
} from '@grpc-tower/testing';
import type { MeterProvider } from '@opentelemetry/api';

/** What the load generator needs of a client. */
export interface DemoClient {
  /** A short name for tables and the chart. */
  readonly label: string;
  /** What it is, in a few words. */
  readonly description: string;
  /** Sends one unary call; resolves with the name of the server that answered. */
  unary(deadlineMs: number): Promise<string>;
  close(): Promise<void>;
}

/** The grpc-tower client, which can also say what its balancer knows. */
export interface TowerDemoClient extends DemoClient {
  /** The balancer's view of `address`: its readiness, or `absent` once it left (drained and closed). */
  endpointState(address: string): Readiness | 'absent';
  readonly balancer: Balancer<GrpcRequest, GrpcResponse, string>;
  /** The logical target (`dns:<name>:<port>`, `kubernetes:<namespace>/<service>:<port>`): the `grpc.target` label of its metrics. */
  readonly target: string;
}

/** Where the grpc-tower client's discovery reads the servers from. */
export type DiscoveryKind = 'dns' | 'kubernetes' | 'xds';

/** How the grpc-tower client finds the servers. */
export interface TowerDiscovery {
  readonly kind: DiscoveryKind;
  /** The source; any `DiscoverySource` will do (the telemetry follows its events). */
  readonly source: DiscoverySource;
  /** The logical target: the channel's name and the `grpc.target` label of its metrics. */
  readonly target: string;
  /** `:authority` of every endpoint. */
  readonly authority: string;
  /** The source in a few words, for the client's description. */
  readonly description: string;
}

/** Where the servers are found. */
export interface DiscoveryTarget {
  /** The DNS server, `host:port`. */
  readonly dnsServer: string;
  /** The name whose A records list the servers. */
  readonly name: string;
  /** The port every server listens on. */
  readonly port: number;
}

/** The limits both clients share. */
const MAX_ATTEMPTS = 3;
const CALL_TIMEOUT_MS = 2_000;
const REDISCOVERY_MS = 1_000;

function unaryCall(client: EchoProtoClient, deadlineMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    client.Unary(
      { message: 'demo' },
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (err, reply) => {
        if (err) reject(err);
        else if (reply === undefined) reject(new Error('no reply'));
        else resolve(reply.server);
      },
    );
  });
}

/**
 * Where the demo client's metrics go: a provider, and the producer that
 * aggregates the per-call metrics for the same reader.
 */
export interface DemoMetrics {
  readonly meterProvider: MeterProvider;
  readonly callMetrics: CallMetricsProducer;
}

/**
 * The grpc-tower client's discovery on DNS: the name's A records at the
 * demo's DNS server, resolved again every second.
 *
 * @example
 * ```ts
 * const discovery = dnsDiscovery({ dnsServer: '127.0.0.1:5353', name: 'echo.demo', port: 50051 });
 * ```
 */
export function dnsDiscovery(target: DiscoveryTarget): TowerDiscovery {
  return {
    kind: 'dns',
    source: dns(target.name, target.port, { servers: [target.dnsServer], intervalMs: REDISCOVERY_MS }),
    target: `dns:${target.name}:${target.port}`,
    authority: target.name,
    description: 'dns',
  };
}

/**
 * The grpc-tower client over `discovery`. With `metrics`, the stack
 * records gRPC's metrics into them (`@grpc-tower/telemetry`, metrics only;
 * the per-call ones by the page's `callMetricsProducer()`, the cheap way):
 * calls and attempts, each endpoint's connection, the balancer's
 * picks, health transitions, ejections, discovery updates and the retry
 * budget, all labelled `grpc.target` = the discovery's target.
 *
 * @example
 * ```ts
 * const client = towerClient(dnsDiscovery({ dnsServer: '127.0.0.1:5353', name: 'echo.demo', port: 50051 }), page);
 * ```
 */
export function towerClient(discovery: TowerDiscovery, metrics?: DemoMetrics): TowerDemoClient {
  const logical = discovery.target;
  // without a provider: the global one, the API's no-op unless an SDK registered itself (then the layers do nothing)
  const ins = telemetry({
    ...(metrics === undefined
      ? {}
      : { meterProvider: metrics.meterProvider, callMetrics: metrics.callMetrics }),
    tracing: false,
  }).instrument(logical);
  const source = discovery.source;
  const health = healthChecked();
  const detector = outlierDetection();
  const endpoints = connect(source, (a) =>
    detector.wrap(
      health(
        ins.endpoint(
          grpcEndpoint(a.address, {
            credentials: grpc.credentials.createInsecure(),
            authority: discovery.authority,
          }),
        ),
      ),
    ),
  );
  const balancer = p2c(endpoints, { target: logical });
  const retries = retry({ maxAttempts: MAX_ATTEMPTS, budget: retryBudget() });
  ins.observe({
    balancer,
    health: health.events$,
    outlier: detector.events$,
    discovery: source,
    retry: retries,
  });
  // as towerChannel orders them: calls outermost, attempts just above the balancer
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(ins.calls)
    .layer(timeout({ ms: CALL_TIMEOUT_MS }))
    .layer(retries)
    .layer(ins.attempts)
    .service(balancer);
  const channel: TowerChannel = createChannel(stack, {
    target: logical,
    services: [loadEchoPackage().EchoService],
  });
  const client = createEchoClient(logical, { channelOverride: channel });
  return {
    label: 'grpc-tower',
    description: `${discovery.description} → health → p2c (PeakEWMA) → retry → timeout`,
    balancer,
    target: logical,
    unary: (deadlineMs) => unaryCall(client, deadlineMs),
    endpointState(address) {
      const found = balancer.stats().endpoints.filter((e) => e.address === address);
      if (found.length === 0) return 'absent';
      return found.some((e) => e.state === 'ready' && e.role === 'active')
        ? 'ready'
        : (found[0]?.state ?? 'absent');
    },
    async close() {
      client.close();
      try {
        await channel.closeAsync();
      } finally {
        // after the stack closed: the detector's timer and the telemetry's callbacks and subscriptions
        detector.close();
        ins.close();
      }
    },
  };
}

/**
 * A plain grpc-js client: `round_robin` over a `dns://` target, with an A6
 * retry policy equal to grpc-tower's. grpc-js queries the DNS server named
 * in the target only when `GRPC_NODE_USE_ALTERNATIVE_RESOLVER=true` was set
 * before it loaded (see `grpc-env.ts`).
 */
export function roundRobinClient(target: DiscoveryTarget): DemoClient {
  const serviceConfig = {
    loadBalancingConfig: [{ round_robin: {} }],
    methodConfig: [
      {
        name: [{ service: ECHO_SERVICE_NAME }],
        retryPolicy: {
          maxAttempts: MAX_ATTEMPTS,
          initialBackoff: '0.025s',
          maxBackoff: '0.25s',
          backoffMultiplier: 2,
          retryableStatusCodes: ['UNAVAILABLE'],
        },
      },
    ],
  };
  const client = createEchoClient(`dns://${target.dnsServer}/${target.name}:${target.port}`, {
    'grpc.service_config': JSON.stringify(serviceConfig),
    'grpc.dns_min_time_between_resolutions_ms': REDISCOVERY_MS,
  });
  return {
    label: 'grpc-js round_robin',
    description: 'dns:// target, round_robin, A6 retryPolicy',
    unary: (deadlineMs) => unaryCall(client, Math.min(deadlineMs, CALL_TIMEOUT_MS)),
    async close() {
      client.close();
    },
  };
}
