// The client stack both discovery variants share: health checks on every
// pod, outlier detection, P2C over the healthy ones (zone-aware when the
// client knows its zone), retries and a timeout, over any source of pod
// addresses. main.ts feeds it the headless Service's DNS name,
// endpointslices.ts the Service's EndpointSlices.
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import { ServiceBuilder, timeout, type Discover } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { type DiscoveredAddress, connect } from '@grpc-tower/discover';
import { healthChecked, outlierDetection } from '@grpc-tower/health';
import { retry, retryBudget } from '@grpc-tower/retry';
import { type EchoProtoClient, createEchoClient, loadEchoPackage } from '@grpc-tower/testing';

/** An echo client, and what closes it (its channel, the balancer, discovery and every connection). */
export interface EchoClient {
  readonly client: EchoProtoClient;
  close(): Promise<void>;
}

/** How the stack names the service and reaches its pods. */
export interface StackOptions {
  /** The channel's name in errors and stats, such as `dns:echo.default.svc.cluster.local:50051`. */
  readonly target: string;
  /** `:authority` (and TLS server name) of every pod: the Service's DNS name. */
  readonly authority: string;
  /**
   * This client's zone (its node's `topology.kubernetes.io/zone`): with it,
   * calls stay in the zone while it has enough ready pods, and spill over
   * when it does not (the balancer's `zones`). Default: no zone routing.
   */
  readonly zone?: string | undefined;
}

// #region client
/** The echo client over `pods`, a source of the pods' addresses. */
export function echoClientOver(pods: Discover<string, DiscoveredAddress>, options: StackOptions): EchoClient {
  // a pod that reports NOT_SERVING (it is shutting down) or keeps failing calls is not picked
  const health = healthChecked();
  const outliers = outlierDetection();
  // plaintext between pods; grpc.credentials.createSsl(ca) and the service name as authority for TLS
  const endpoints = connect(pods, (pod) =>
    outliers.wrap(
      health(
        // EndpointSlices say where each pod runs (DNS does not): connect hands the pod's zone
        // and hints to the balancer on its insert, beside this endpoint
        grpcEndpoint(pod.address, {
          credentials: grpc.credentials.createInsecure(),
          authority: options.authority,
        }),
      ),
    ),
  );
  const balancer = p2c(endpoints, {
    target: options.target,
    ...(options.zone === undefined ? {} : { zones: { local: options.zone } }),
  });
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(timeout({ ms: 2_000 }))
    .layer(retry({ maxAttempts: 3, budget: retryBudget() }))
    .service(balancer);
  const channel = createChannel(stack, {
    target: options.target,
    services: [loadEchoPackage().EchoService],
  });
  const client = createEchoClient(options.target, { channelOverride: channel });
  return {
    client,
    async close() {
      client.close();
      await channel.closeAsync();
      // after the stack closed: the detector's sweep timer
      outliers.close();
    },
  };
}
// #endregion client

/** Options of {@link sendTraffic}. */
export interface TrafficOptions {
  /** Calls per second; default 50. */
  readonly ratePerSec?: number;
  /** What happens while the traffic flows (the tests roll the pods); traffic stops when it resolves. */
  readonly during: () => Promise<void>;
}

/** Which pod answered how many calls, and the calls that failed. */
export interface KubernetesResult {
  readonly perServer: Readonly<Record<string, number>>;
  readonly failed: number;
  readonly failures: readonly string[];
}

/** Sends steady unary calls through `echo` while `during` runs, then closes it. */
export async function sendTraffic(echo: EchoClient, options: TrafficOptions): Promise<KubernetesResult> {
  const perServer: Record<string, number> = {};
  const failures: string[] = [];
  const inFlight = new Set<Promise<void>>();
  const send = (): void => {
    const p = new Promise<void>((resolve) => {
      echo.client.Unary(
        { message: 'hi' },
        new grpc.Metadata(),
        { deadline: Date.now() + 3_000 },
        (err, reply) => {
          if (err || reply === undefined) failures.push(`${err?.code}: ${err?.details}`);
          else perServer[reply.server] = (perServer[reply.server] ?? 0) + 1;
          resolve();
        },
      );
    });
    inFlight.add(p);
    void p.then(() => inFlight.delete(p));
  };
  const timer = setInterval(send, 1000 / (options.ratePerSec ?? 50));
  try {
    await options.during();
  } finally {
    clearInterval(timer);
    await Promise.all(inFlight);
    await echo.close();
  }
  return { perServer, failed: failures.length, failures };
}
