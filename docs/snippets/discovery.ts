// Snippets of docs/guides/discovery.md.
import * as grpc from '@grpc/grpc-js';
import { concurrencyLimit } from '@grpc-tower/core';
import { p2c } from '@grpc-tower/balance';
import { grpcEndpoint } from '@grpc-tower/core/grpc';
import { connect, dns, dnsSrv, merge, poll, staticList } from '@grpc-tower/discover';
import { etcd } from '@grpc-tower/discover/etcd';
import { kubernetes, kubernetesZone } from '@grpc-tower/discover/kubernetes';
import { loadBootstrap, xds, xdsClusterPolicy } from '@grpc-tower/discover/xds';
import { towerChannel } from 'grpc-tower';

declare const caCertificate: Buffer;

export function sources(): void {
  // #region headless-dns
  // <service>.<namespace>.svc.cluster.local: the cluster DNS answers with the ready pods
  const pods = connect(dns('echo.default.svc.cluster.local', 50051), (pod) =>
    grpcEndpoint(pod.address, {
      credentials: grpc.credentials.createInsecure(),
      authority: 'echo.default.svc.cluster.local',
    }),
  );
  const echo = p2c(pods, { target: 'dns:echo.default.svc.cluster.local:50051' });
  // #endregion headless-dns

  // #region static
  // a fixed list: tests, a fixed pool, or a proxy's address
  const fixed = staticList(['10.0.0.7:50051', { address: '10.0.0.8:50051', weight: 2 }]);
  // #endregion static

  // #region dns
  // A and AAAA records: a Kubernetes headless Service, a DNS round-robin name
  const orders = dns('orders.default.svc.cluster.local', 50051, {
    intervalMs: 5_000, // resolve again every 5 s (±10 % jitter); the default
    respectTtl: true, // but never sooner than the records' TTL
    servers: ['10.96.0.10'], // optional: ask these servers instead of the system's
  });
  // #endregion dns

  // #region srv
  // SRV records carry the port (and a weight) per server: Consul's DNS interface, for one
  const catalog = dnsSrv('_grpc._tcp.catalog.service.consul', { servers: ['127.0.0.1:8600'] });
  // #endregion srv

  // #region etcd
  // every key under the prefix is one server: "10.0.0.7:50051" or {"address": …, "weight": …}
  const payments = etcd(['http://etcd-0:2379', 'http://etcd-1:2379'], '/services/payments/');
  // #endregion etcd

  // #region poll
  // any registry you can ask for the full list: poll() calls it, diffs the answers, emits changes
  const inventory = poll(
    async (signal) => {
      const res = await fetch('http://registry.internal/v1/services/inventory', { signal });
      if (!res.ok) throw new Error(`registry answered ${res.status}`); // keeps the last set, backs off
      return (await res.json()) as string[]; // ['10.0.0.7:50051', …]
    },
    { name: 'registry:inventory', intervalMs: 10_000 },
  );
  // #endregion poll

  // #region merge
  // several sources as one: two clusters behind one balancer
  const both = merge([dns('orders.eu-west.internal', 50051), dns('orders.eu-central.internal', 50051)]);
  // #endregion merge
  void [echo, fixed, orders, catalog, payments, inventory, both];
}

export function endpointSlices(): void {
  // #region endpointslices
  // the Service's EndpointSlices, listed then watched: ready pods join, terminating ones leave at once
  const pods = kubernetes({ service: 'echo', namespace: 'default', port: 'grpc' });
  pods.events$.subscribe((e) => {
    // "pod echo-7d4b9-x2kq (10.1.2.3:50051) is terminating: no new calls; its calls in flight finish, …"
    if (e.type === 'endpoint') console.info(e.reason);
  });
  const echo = towerChannel(
    'dns:///echo.default.svc.cluster.local:50051',
    grpc.credentials.createInsecure(),
    {
      discovery: pods, // instead of the target's DNS name, which still names the channel and gives the authority
    },
  );
  // #endregion endpointslices
  void echo;
}

export async function zones(): Promise<void> {
  // #region zones
  // this pod's zone: the topology.kubernetes.io/zone label of the node named by $NODE_NAME
  const local = await kubernetesZone();
  const orders = towerChannel(
    'dns:///orders.shop.svc.cluster.local:50051',
    grpc.credentials.createInsecure(),
    {
      discovery: kubernetes({ service: 'orders', namespace: 'shop', port: 'grpc' }),
      // calls stay in this zone while it has enough ready pods, and spill over when it does not
      ...(local === undefined ? {} : { balancer: { zones: { local } } }),
    },
  );
  // #endregion zones
  void orders;
}

export function mesh(): void {
  // #region xds
  // the bootstrap a proxyless gRPC client reads: GRPC_XDS_BOOTSTRAP (a file) or GRPC_XDS_BOOTSTRAP_CONFIG
  const orders = towerChannel(
    'xds:///orders.shop.svc.cluster.local:50051',
    grpc.credentials.createInsecure(),
  );

  // or the source itself, to watch its events or give the bootstrap in code
  const payments = xds({ target: 'payments.shop.svc.cluster.local:50051' });
  payments.events$.subscribe((e) => {
    if (e.type === 'invalid') console.warn(e.error.message); // a resource NACKed, with the reason sent back
    if (e.type === 'ignored') console.warn(`${e.input}: ${e.reason}`); // a route feature not implemented
  });
  // this client's zone from the bootstrap's node.locality: calls stay in it while it has enough endpoints
  const local = loadBootstrap(undefined).node.locality?.zone;
  const pay = towerChannel(
    'xds:///payments.shop.svc.cluster.local:50051',
    grpc.credentials.createInsecure(),
    {
      discovery: payments,
      ...(local === undefined ? {} : { balancer: { zones: { local } } }),
    },
  );
  // #endregion xds
  void [orders, pay];
}

export async function meshPolicy(): Promise<void> {
  // #region xds-policy
  // the Cluster's outlier detection and max_requests, read once, as grpc-tower options
  const policy = await xdsClusterPolicy({ target: 'orders.shop.svc.cluster.local:50051' });
  const orders = towerChannel(
    'xds:///orders.shop.svc.cluster.local:50051',
    grpc.credentials.createInsecure(),
    {
      outlierDetection: policy.outlierDetection ?? {},
      ...(policy.maxRequests === undefined
        ? {}
        : { layers: { outer: [concurrencyLimit({ max: policy.maxRequests, queue: 0 })] } }),
    },
  );
  // #endregion xds-policy
  void orders;
}

export function connecting(): void {
  // #region connect
  // connect() makes one endpoint per address; the balancer owns it and drains it when the address goes away
  const source = dns('orders.internal', 50051);
  const endpoints = connect(source, (addr) =>
    grpcEndpoint(addr.address, {
      credentials: grpc.credentials.createSsl(caCertificate),
      authority: 'orders.internal', // the certificate's name, since addr.address is an IP
      channelOptions: { 'grpc.keepalive_time_ms': 30_000 },
    }),
  );
  const balancer = p2c(endpoints, {
    target: 'dns:orders.internal:50051',
    drainGraceMs: 10_000, // how long a removed server's calls may take to finish
  });
  // #endregion connect
  void balancer;
}

export function events(): void {
  const source = dns('orders.internal', 50051);
  // #region events
  // sources never fail the stream: they keep the last set and report what went wrong here
  source.events$.subscribe((e) => {
    switch (e.type) {
      case 'resolved':
        console.info(`${e.source}: ${e.count} servers (+${e.inserted} −${e.removed})`);
        break;
      case 'failed':
        console.warn(`${e.source}: ${e.error.message}; keeping the last set`);
        break;
      case 'empty-kept':
        console.warn(`${e.source}: empty answer ignored, keeping ${e.kept} servers`);
        break;
      case 'partial':
        console.warn(`${e.source}: ${e.error.message}; keeping ${e.kept} IPv${e.family} servers`);
        break;
      case 'invalid':
        console.warn(`${e.source}: skipped ${e.input}: ${e.error.message}`);
        break;
      case 'endpoint': // kubernetes(): a pod turned ready, terminating or not serving, or left
        console.info(`${e.source}: ${e.reason}`);
        break;
    }
  });
  // #endregion events
}
