// A client for a gRPC service behind a Kubernetes headless Service
// (k8s/echo.yaml): DNS discovery on the Service's name, health checks on
// every pod, P2C over the healthy ones, retries and a timeout (the stack is
// in client.ts). With the servers' graceful shutdown (graceful-shutdown.ts),
// a rolling update loses no call. The test plays a rollout against a real
// DNS server (dnsmasq). endpointslices.ts is the same client finding the
// pods through the Kubernetes API instead (--discovery kubernetes).
//
// In a pod:   ECHO_SERVICE=echo.default.svc.cluster.local ECHO_PORT=50051 npm start -- --seconds 60
//             ECHO_DISCOVERY=kubernetes ECHO_SERVICE=echo ECHO_PORT=grpc npm start -- --seconds 60
// Locally:    npm start -- --service echo.test --port 50051 --dns-server 127.0.0.1:5353 --seconds 10
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { dns } from '@grpc-tower/discover';
import {
  type EchoClient,
  type KubernetesResult,
  type TrafficOptions,
  echoClientOver,
  sendTraffic,
} from './client.js';

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

/** The echo client for a headless Service. */
export function echoClient(address: ServiceAddress): EchoClient {
  // one A record per ready pod, resolved again every 5 s; the last answer is kept if DNS fails
  const pods = dns(address.service, address.port, {
    intervalMs: address.resolveEveryMs ?? 5_000,
    ...(address.dnsServers === undefined ? {} : { servers: address.dnsServers }),
  });
  return echoClientOver(pods, {
    target: `dns:${address.service}:${address.port}`,
    authority: address.service,
  });
}

/** Options of {@link run}. */
export interface KubernetesOptions extends ServiceAddress, TrafficOptions {}

/** Sends steady traffic through the headless Service's client while `during` runs. */
export function run(options: KubernetesOptions): Promise<KubernetesResult> {
  return sendTraffic(echoClient(options), options);
}

const usage = `usage: npm start -- --service <name> [--port <port>] [--dns-server <ip[:port]>] [--seconds <n>]
       npm start -- --discovery kubernetes --service <Service> [--namespace <ns>] [--port <name|number>] [--seconds <n>]`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      discovery: { type: 'string', default: process.env.ECHO_DISCOVERY ?? 'dns' },
      service: { type: 'string', default: process.env.ECHO_SERVICE },
      namespace: { type: 'string', default: process.env.ECHO_NAMESPACE },
      port: { type: 'string', default: process.env.ECHO_PORT ?? '50051' },
      'dns-server': { type: 'string', multiple: true },
      seconds: { type: 'string', default: '30' },
    },
  });
  if (values.service === undefined || (values.discovery !== 'dns' && values.discovery !== 'kubernetes')) {
    console.error(usage);
    process.exitCode = 2;
    return;
  }
  const traffic: TrafficOptions = {
    during: () => new Promise((resolve) => setTimeout(resolve, Number(values.seconds) * 1000)),
  };
  let result: KubernetesResult;
  if (values.discovery === 'kubernetes') {
    // loaded only here: a client on DNS never loads @kubernetes/client-node
    const { endpointSlicesClient } = await import('./endpointslices.js');
    const port = /^\d+$/.test(values.port) ? Number(values.port) : values.port;
    const echo = await endpointSlicesClient({
      service: values.service,
      port,
      ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
      log: (line) => console.error(line),
    });
    result = await sendTraffic(echo, traffic);
  } else {
    result = await run({
      service: values.service,
      port: Number(values.port),
      ...(values['dns-server'] === undefined ? {} : { dnsServers: values['dns-server'] }),
      ...traffic,
    });
  }
  console.log(JSON.stringify(result, null, 2));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
