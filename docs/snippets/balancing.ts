// Snippets of docs/guides/balancing.md.
import * as grpc from '@grpc/grpc-js';
import {
  type LoadMetric,
  loadFunction,
  p2c,
  peakEwma,
  pendingRequests,
  roundRobin,
} from '@grpc-tower/balance';
import type { Endpoint, Discover } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, grpcEndpoint } from '@grpc-tower/core/grpc';
import { connect, dns, subset } from '@grpc-tower/discover';
import { kubernetes, kubernetesZone } from '@grpc-tower/discover/kubernetes';
import { slowStart } from '@grpc-tower/health';

declare const endpoints: Discover<string, Endpoint<GrpcRequest, GrpcResponse>>;

export function balancers(): void {
  // #region p2c
  // the default: power of two choices with PeakEWMA load
  const balancer = p2c(endpoints, { target: 'dns:orders.internal:50051' });
  // #endregion p2c

  // #region metrics
  // PeakEWMA with its defaults spelled out: servers start at 30 ms until one answers, the
  // average forgets with a 10 s time constant, a peak with 1 s, and no estimate counts as
  // less than 1 ms
  const ewma = p2c(endpoints, {
    load: peakEwma({ defaultRttMs: 30, decayMs: 10_000, peakDecayMs: 1_000, floorMs: 1 }),
  });
  // least-request: the server with fewer calls in flight wins
  const leastRequest = p2c(endpoints, { load: pendingRequests() });
  // any function of an endpoint's address and calls in flight
  const weighted = p2c(endpoints, {
    load: loadFunction((ep) => ep.pending * (ep.address.startsWith('10.1.') ? 2 : 1), 'remote-zone-x2'),
  });
  // the baseline: each ready server in turn
  const rr = roundRobin(endpoints, { target: 'orders' });
  // #endregion metrics

  // #region options
  const tuned = p2c(endpoints, {
    target: 'dns:orders.internal:50051', // named in errors and stats
    failFastMs: 1_000, // with no ready server, a call waits this long (or its deadline) then fails
    drainGraceMs: 15_000, // how long a removed server's calls may take to finish
    panicThresholdPercent: 50, // below 50 % ready, also use connected-but-unhealthy servers
    slowStart: slowStart({ windowMs: 30_000 }), // a new server's share ramps up over 30 s
    excludeLoopBlocks: true, // this client's own GC pauses are not charged to servers (the default)
    tieTolerance: 1, // estimates within 2x with equal calls in flight take turns (the default)
  });
  // #endregion options
  void [balancer, ewma, leastRequest, weighted, rr, tuned];
}

export function weights(): void {
  // #region weights
  // a discovered weight (an SRV record's, or "weight" in an etcd entry's JSON) travels on the
  // insert connect hands the balancer, beside the endpoint; towerChannel does the same
  const weighted = connect(dns('orders.internal', 50051), (addr) =>
    grpcEndpoint(addr.address, { credentials: grpc.credentials.createInsecure() }),
  );
  const balancer = p2c(weighted, { target: 'dns:orders.internal:50051' });
  // classic P2C, where the lower cost always wins: latency first, shares as they fall
  const latencyFirst = p2c(weighted, { tieTolerance: 0 });
  // #endregion weights
  void [balancer, latencyFirst];
}

export function subsetting(): void {
  // #region subset
  // this client is replica 17 of 200 (a StatefulSet ordinal, an indexed Job's index)
  const servers = subset(dns('orders.internal', 50051), {
    size: 12, // servers this client connects to
    clientIndex: 17,
    clientCount: 200,
    seed: 'orders', // one assignment per service: name it after the service
  });
  // only the 12 get an endpoint (and a health check, when the factory adds one)
  const endpoints = connect(servers, (a) =>
    grpcEndpoint(a.address, { credentials: grpc.credentials.createInsecure() }),
  );
  const balancer = p2c(endpoints, { target: 'dns:orders.internal:50051' });

  // no index to hand: a stable id (the pod's name) keeps the same 12 across restarts
  const byId = subset(dns('orders.internal', 50051), {
    size: 12,
    clientId: process.env.HOSTNAME ?? 'local',
    seed: 'orders',
  });
  // #endregion subset
  void [balancer, byId];
}

export async function zoneAware(): Promise<void> {
  // #region zones
  // this client's zone: its node's topology.kubernetes.io/zone (NODE_NAME from the downward API)
  const zone = (await kubernetesZone()) ?? 'unknown';
  // the EndpointSlice source gives each address its zone and topology hints; connect puts
  // them on the insert it hands the balancer, beside the endpoint
  const endpoints = connect(kubernetes({ service: 'orders', namespace: 'shop', port: 'grpc' }), (addr) =>
    grpcEndpoint(addr.address, { credentials: grpc.credentials.createInsecure() }),
  );
  const balancer = p2c(endpoints, {
    target: 'orders.shop',
    zones: {
      local: zone, // required; 'unknown' matches no server, so calls go to every zone
      minEndpoints: 6, // with fewer servers in all, every zone (the default, Envoy's)
      hints: true, // EndpointSlice hints, when every ready server has them (the default)
    },
  });
  // the clients run unevenly: half of them in eu-west-1a (the shares must name the local zone)
  const skewed = p2c(endpoints, {
    zones: { local: 'eu-west-1a', clientShares: { 'eu-west-1a': 2, 'eu-west-1b': 1, 'eu-west-1c': 1 } },
  });
  balancer.events$.subscribe((e) => {
    if (e.type !== 'zones') return;
    const local = `${(e.localShare * 100).toFixed(0)} % local`;
    console.info(
      `zone routing ${e.mode}${e.reason === undefined ? '' : ` (${e.reason})`}: ${local}`,
      e.shares,
    );
  });
  // #endregion zones
  void skewed;
}

// #region custom-metric
// a load metric keeps per-endpoint state: here, the failure ratio of the last 100 calls
// times the calls in flight, so a server that fails often is picked less
const failureAware: LoadMetric = {
  name: 'failure-aware',
  create(endpoint) {
    const recent: boolean[] = [];
    return {
      observe(_rttMs, _now, failed) {
        recent.push(failed);
        if (recent.length > 100) recent.shift();
      },
      cost() {
        const failures = recent.filter(Boolean).length;
        return (endpoint.pending + 1) * (1 + (10 * failures) / Math.max(1, recent.length));
      },
      estimateMs: () => undefined,
    };
  },
};
// #endregion custom-metric

export function observe(): void {
  const balancer = p2c(endpoints, { target: 'orders', load: failureAware });
  // #region stats
  // a snapshot now, or every second (and on every change) as a stream
  const { counts, waiting, endpoints: eps } = balancer.stats();
  console.log(`${counts.ready}/${counts.known} ready, ${waiting} calls waiting for one`);
  for (const e of eps) console.log(e.address, e.state, e.role, e.pending, e.ewmaMs, e.picks, e.failures);

  balancer.stats$.subscribe((s) => console.log(s.readiness, s.counts));
  balancer.events$.subscribe((e) => {
    if (e.type === 'panic')
      console.warn(`panic mode ${e.active ? 'on' : 'off'}: ${e.ready}/${e.known} ready`);
    if (e.type === 'remove') console.info(`${e.address} left; draining`);
  });
  // #endregion stats
}
