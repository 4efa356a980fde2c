// A client for a gRPC service behind a Kubernetes headless Service
// (k8s/echo.yaml): DNS discovery on the Service's name, health checks on
// every pod, P2C over the healthy ones, retries and a timeout. With the
// servers' graceful shutdown (graceful-shutdown.ts), a rolling update loses
// no call. The test plays a rollout against a real DNS server (dnsmasq).
//
// In a pod:   ECHO_SERVICE=echo.default.svc.cluster.local ECHO_PORT=50051 npm start -- --seconds 60
// Locally:    npm start -- --service echo.test --port 50051 --dns-server 127.0.0.1:5353 --seconds 10
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import { ServiceBuilder, timeout } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { connect, dns } from '@grpc-tower/discover';
import { healthChecked, outlierDetection } from '@grpc-tower/health';
import { retry, retryBudget } from '@grpc-tower/retry';
import { type EchoProtoClient, createEchoClient, loadEchoPackage } from '@grpc-tower/testing';

/** Where the service is. */
export interface ServiceAddress {
  /** The headless Service's DNS name, `<service>.<namespace>.svc.cluster.local`. */
  readonly service: string;
  readonly port: number;
  /** DNS servers to ask; default the system's (in a pod: the cluster DNS). */
  readonly dnsServers?: readonly string[];
  /** How often to resolve the name again, in ms; default 5000. */
  readonly resolveEveryMs?: number;
}

// #region client
/** The echo client for a headless Service, and what closes it. */
export function echoClient(address: ServiceAddress): { client: EchoProtoClient; close(): Promise<void> } {
  const target = `dns:${address.service}:${address.port}`;
  // one A record per ready pod, resolved again every 5 s; the last answer is kept if DNS fails
  const pods = dns(address.service, address.port, {
    intervalMs: address.resolveEveryMs ?? 5_000,
    ...(address.dnsServers === undefined ? {} : { servers: address.dnsServers }),
  });
  // a pod that reports NOT_SERVING (it is shutting down) or keeps failing calls is not picked
  const health = healthChecked();
  const outliers = outlierDetection();
  // plaintext between pods; grpc.credentials.createSsl(ca) and the service name as authority for TLS
  const endpoints = connect(pods, (pod) =>
    outliers.wrap(
      health(
        grpcEndpoint(pod.address, {
          credentials: grpc.credentials.createInsecure(),
          authority: address.service,
        }),
      ),
    ),
  );
  const balancer = p2c(endpoints, { target });
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(timeout({ ms: 2_000 }))
    .layer(retry({ maxAttempts: 3, budget: retryBudget() }))
    .service(balancer);
  const channel = createChannel(stack, {
    target,
    services: [loadEchoPackage().EchoService],
  });
  const client = createEchoClient(target, { channelOverride: channel });
  return {
    client,
    async close() {
      client.close();
      await channel.closeAsync();
    },
  };
}
// #endregion client

/** Options of {@link run}. */
export interface KubernetesOptions extends ServiceAddress {
  /** Calls per second; default 50. */
  readonly ratePerSec?: number;
  /** What happens while the traffic flows (the test rolls the pods); traffic stops when it resolves. */
  readonly during: () => Promise<void>;
}

/** Which pod answered how many calls, and the calls that failed. */
export interface KubernetesResult {
  readonly perServer: Readonly<Record<string, number>>;
  readonly failed: number;
  readonly failures: readonly string[];
}

/** Sends steady traffic while `during` runs. */
export async function run(options: KubernetesOptions): Promise<KubernetesResult> {
  const { client, close } = echoClient(options);
  const perServer: Record<string, number> = {};
  const failures: string[] = [];
  const inFlight = new Set<Promise<void>>();
  const send = (): void => {
    const p = new Promise<void>((resolve) => {
      client.Unary({ message: 'hi' }, new grpc.Metadata(), { deadline: Date.now() + 3_000 }, (err, reply) => {
        if (err || reply === undefined) failures.push(`${err?.code}: ${err?.details}`);
        else perServer[reply.server] = (perServer[reply.server] ?? 0) + 1;
        resolve();
      });
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
    await close();
  }
  return { perServer, failed: failures.length, failures };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      service: { type: 'string', default: process.env.ECHO_SERVICE },
      port: { type: 'string', default: process.env.ECHO_PORT ?? '50051' },
      'dns-server': { type: 'string', multiple: true },
      seconds: { type: 'string', default: '30' },
    },
  });
  if (values.service === undefined) {
    console.error(
      'usage: npm start -- --service <name> [--port <port>] [--dns-server <ip[:port]>] [--seconds <n>]',
    );
    process.exit(2);
  }
  run({
    service: values.service,
    port: Number(values.port),
    ...(values['dns-server'] === undefined ? {} : { dnsServers: values['dns-server'] }),
    during: () => new Promise((resolve) => setTimeout(resolve, Number(values.seconds) * 1000)),
  }).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
