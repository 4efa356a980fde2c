/**
 * Where the demo publishes which servers exist, as the story changes them.
 *
 * - `dns`: the demo's DNS server (`dns-server.ts`) serves one A record per
 *   ready server; the grpc-tower client resolves the name every second.
 * - `kubernetes`: a stand-in Kubernetes API server (the test support's,
 *   `startKubeApi()`: HTTPS on loopback, list and watch; its certificates
 *   are made with the `openssl` CLI) serves one EndpointSlice of the
 *   Service `demo/echo`, each server an endpoint with the conditions the
 *   EndpointSlice controller would give its pod: ready; not ready and not
 *   serving (crashed); terminating while still serving (stopping); or not
 *   listed. The grpc-tower client watches it through `kubernetes()`.
 *
 * - `xds`: a stand-in xDS management server (the test support's,
 *   `startXdsServer()`: ADS on loopback) serves the chain of the name
 *   `echo.demo`, each server an endpoint of its ClusterLoadAssignment:
 *   HEALTHY (ready), UNHEALTHY (crashed), DRAINING (stopping), or not
 *   listed. The grpc-tower client follows it through `xds()`.
 *
 * All publish the same servers to DNS, where the plain grpc-js client
 * (`--compare`) reads them, so the comparison stays fair: DNS lists the
 * ready servers only.
 */
import { type DiscoveryKind, type DiscoveryTarget, type TowerDiscovery, dnsDiscovery } from './clients.js';
import { DemoDns } from './dns-server.js';
import type { DemoServer } from './servers.js';

/** What the story says about a listed server. */
export type ServerState = 'ready' | 'not-ready' | 'terminating';

/** A running registry (see the module's comment). */
export interface Registry {
  readonly kind: DiscoveryKind;
  /** What the grpc-tower client reads. */
  readonly tower: TowerDiscovery;
  /** What the plain grpc-js client reads: the DNS server and the name. */
  readonly dns: DiscoveryTarget;
  /** Where the servers are published, in words, for the header line. */
  readonly where: string;
  /** Sets the state of `server` (`undefined`: no longer listed) and publishes the change. */
  set(server: DemoServer, state: ServerState | undefined): void;
  close(): Promise<void>;
}

/** The Service the EndpointSlice belongs to, as `kubernetes()` names it. */
export const KUBE_NAMESPACE = 'demo';
export const KUBE_SERVICE = 'echo';

/**
 * Starts the registry for `kind`, with every server of `fleet` (in its
 * order) not listed yet, and the DNS name `name`.
 *
 * @example
 * ```ts
 * const registry = await startRegistry('kubernetes', fleet, 'echo.demo');
 * registry.set(A, 'ready');
 * ```
 */
export async function startRegistry(
  kind: DiscoveryKind,
  fleet: readonly DemoServer[],
  name: string,
): Promise<Registry> {
  const port = fleet[0]?.port ?? 0;
  const dnsServer = await DemoDns.start();
  const dns: DiscoveryTarget = { dnsServer: dnsServer.address, name, port };
  const states = new Map<DemoServer, ServerState>();
  const publishDns = (): void =>
    dnsServer.set(
      name,
      fleet.filter((s) => states.get(s) === 'ready').map((s) => s.host),
    );
  publishDns();
  if (kind === 'dns') {
    return {
      kind,
      tower: dnsDiscovery(dns),
      dns,
      where: `DNS name ${name} served at ${dnsServer.address}`,
      set(server, state) {
        if (state === undefined) states.delete(server);
        else states.set(server, state);
        publishDns();
      },
      close: () => dnsServer.close(),
    };
  }
  try {
    const base: RegistryBase = { fleet, states, dns, publishDns, closeDns: () => dnsServer.close() };
    return await (kind === 'xds' ? xdsRegistry(base) : kubeRegistry(base));
  } catch (err) {
    await dnsServer.close();
    throw err;
  }
}

/** What every registry but DNS's builds on: the servers, their states, and the DNS it also publishes. */
interface RegistryBase {
  readonly fleet: readonly DemoServer[];
  readonly states: Map<DemoServer, ServerState>;
  readonly dns: DiscoveryTarget;
  readonly publishDns: () => void;
  readonly closeDns: () => Promise<void>;
}

async function kubeRegistry(base: RegistryBase): Promise<Registry> {
  const { fleet, states, dns, publishDns, closeDns } = base;
  // loaded only for this discovery: a DNS run never loads @kubernetes/client-node
  const [{ endpointSlice, startKubeApi }, { kubernetes }, { KubeConfig }] = await Promise.all([
    import('../../../packages/discover/src/test/kube-api.js'),
    import('@grpc-tower/discover/kubernetes'),
    import('@kubernetes/client-node'),
  ]);
  const api = await startKubeApi().catch((err: unknown) => {
    throw new Error(
      `--discovery kubernetes: the stand-in Kubernetes API server did not start (it needs the openssl CLI): ${String(err)}`,
      { cause: err },
    );
  });
  const port = dns.port;
  const publishSlice = (): void => {
    api.apply(
      endpointSlice({
        name: `${KUBE_SERVICE}-d3m0x`,
        namespace: KUBE_NAMESPACE,
        service: KUBE_SERVICE,
        ports: [{ name: 'grpc', port, protocol: 'TCP' }],
        endpoints: fleet
          .filter((s) => states.has(s))
          .map((s) => {
            const state = states.get(s);
            return {
              addresses: [s.host],
              ready: state === 'ready',
              serving: state !== 'not-ready',
              terminating: state === 'terminating',
              pod: `${KUBE_SERVICE}-${s.name.toLowerCase()}`,
            };
          }),
      }),
    );
  };
  publishSlice();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(api.kubeconfig);
  const source = kubernetes({ service: KUBE_SERVICE, namespace: KUBE_NAMESPACE, port: 'grpc', kubeConfig });
  return {
    kind: 'kubernetes',
    tower: {
      kind: 'kubernetes',
      source,
      target: source.name,
      authority: `${KUBE_SERVICE}.${KUBE_NAMESPACE}.svc.cluster.local`,
      description: 'kubernetes (EndpointSlices watch)',
    },
    dns,
    where:
      `EndpointSlices of Service ${KUBE_NAMESPACE}/${KUBE_SERVICE} served by a stand-in Kubernetes API at ${api.url}, ` +
      `the ready ones also as DNS name ${dns.name} at ${dns.dnsServer}`,
    ...publishing(states, [publishSlice, publishDns], () => [api.close(), closeDns()]),
  };
}

/** A registry's `set` (a state, then every publication) and `close` (every closer, failures ignored). */
function publishing(
  states: Map<DemoServer, ServerState>,
  publishers: readonly (() => void)[],
  closers: () => Promise<unknown>[],
): Pick<Registry, 'set' | 'close'> {
  return {
    set(server, state) {
      if (state === undefined) states.delete(server);
      else states.set(server, state);
      for (const publish of publishers) publish();
    },
    async close() {
      await Promise.allSettled(closers());
    },
  };
}

/** The xDS name the demo serves (a Listener, as in `xds:///echo.demo`). */
export const XDS_NAME = 'echo.demo';

async function xdsRegistry(base: RegistryBase): Promise<Registry> {
  const { fleet, states, dns, publishDns, closeDns } = base;
  // loaded only for this discovery: a DNS run never loads the Envoy protos or the xDS source
  const [{ startXdsServer }, { xds }] = await Promise.all([
    import('../../../packages/discover/src/test/xds-server.js'),
    import('@grpc-tower/discover/xds'),
  ]);
  const control = await startXdsServer({ host: '127.0.0.1' });
  const health = { ready: 'HEALTHY', 'not-ready': 'UNHEALTHY', terminating: 'DRAINING' } as const;
  const publishEds = (): void =>
    control.serve(XDS_NAME, [
      {
        zone: 'demo',
        endpoints: fleet
          .filter((s) => states.has(s))
          .map((s) => ({ address: s.address, health: health[states.get(s) as ServerState] })),
      },
    ]);
  publishEds();
  const source = xds({
    target: XDS_NAME,
    bootstrap: control.bootstrap({ id: 'grpc-tower-demo', zone: 'demo' }),
  });
  return {
    kind: 'xds',
    tower: {
      kind: 'xds',
      source,
      target: `xds:///${XDS_NAME}`,
      authority: XDS_NAME,
      description: 'xds (ADS stream)',
    },
    dns,
    where: `EDS of ${XDS_NAME} served by a stand-in xDS management server at ${control.address}, the ready ones also as DNS name ${dns.name} at ${dns.dnsServer}`,
    ...publishing(states, [publishEds, publishDns], () => [control.close(), closeDns()]),
  };
}
