/**
 * What the xDS source makes of a RouteConfiguration and the
 * ClusterLoadAssignments: the route chosen for a target (its virtual host
 * by domain, its first route that matches every call, one cluster or
 * `weighted_clusters`) and the endpoint set of the clusters to call, each
 * endpoint with its zone, weight, priority and, when the route splits
 * calls, its cluster as its group.
 *
 * @internal
 * @module
 */
import type { DiscoveredAddress } from '../address.js';
import type { EndpointState } from '../events.js';
import type { ClusterLoadAssignment, HealthStatus, RouteConfiguration } from './resources.js';

const HEALTHY: ReadonlySet<HealthStatus> = new Set(['HEALTHY', 'UNKNOWN']);

/**
 * @internal A cluster calls go to, and its weight among the route's
 * clusters (1 for a single cluster).
 *
 * @example
 * ```ts
 * const canary: WeightedCluster = { name: 'orders-canary', weight: 10 };
 * ```
 */
export interface WeightedCluster {
  readonly name: string;
  readonly weight: number;
}

/** What the route chooses: its clusters, and the parts of the routes that were not honoured. */
interface RouteChoice {
  readonly clusters: readonly WeightedCluster[] | undefined;
  readonly notes: readonly { input: string; reason: string }[];
}

/** Whether `domain` (a virtual host's domain pattern) matches `host`, and how specific the match is. */
function domainScore(domain: string, host: string): number {
  const d = domain.toLowerCase();
  const h = host.toLowerCase();
  if (d === h) return 4;
  if (d.startsWith('*') && d.length > 1 && h.endsWith(d.slice(1))) return 3;
  if (d.endsWith('*') && d.length > 1 && h.startsWith(d.slice(0, -1))) return 2;
  if (d === '*') return 1;
  return 0;
}

/**
 * @internal The clusters calls for `target` go to under `rc`: the most
 * specific virtual host, its first catch-all route; `notes` names what was
 * not honoured.
 *
 * @example
 * ```ts
 * const { clusters, notes } = chooseRoute(routeConfiguration, 'orders.shop:50051');
 * ```
 */
export function chooseRoute(rc: RouteConfiguration, target: string): RouteChoice {
  let best: RouteConfiguration['virtualHosts'][number] | undefined;
  let bestScore = 0;
  for (const vh of rc.virtualHosts) {
    const score = Math.max(0, ...vh.domains.map((d) => domainScore(d, target)));
    if (score > bestScore) {
      best = vh;
      bestScore = score;
    }
  }
  const where = `RouteConfiguration ${rc.name || '(inline)'}`;
  if (best === undefined) {
    return { clusters: undefined, notes: [{ input: where, reason: `no virtual host matches ${target}` }] };
  }
  const notes: { input: string; reason: string }[] = [];
  const index = best.routes.findIndex((r) => r.catchAll && r.target !== undefined);
  const route = index >= 0 ? best.routes[index] : best.routes.find((r) => r.target !== undefined);
  const skipped = best.routes.slice(0, index >= 0 ? index : best.routes.length).flatMap((r) => r.matchers);
  if (skipped.length > 0) {
    notes.push({
      input: `${where} virtual host ${best.name}`,
      reason: `route matchers not implemented (${[...new Set(skipped)].join(', ')}): every call takes the default route`,
    });
  }
  if (route?.target === undefined) {
    notes.push({ input: `${where} virtual host ${best.name}`, reason: 'no route sends calls to a cluster' });
    return { clusters: undefined, notes };
  }
  if (index < 0) {
    notes.push({
      input: `${where} virtual host ${best.name}`,
      reason: 'no catch-all route: the first route is used',
    });
  }
  if ('cluster' in route.target) return { clusters: [{ name: route.target.cluster, weight: 1 }], notes };
  // weighted_clusters: a cluster of weight 0 takes no call; one named twice counts once, with its weights summed
  const byName = new Map<string, number>();
  for (const w of route.target.weighted) {
    if (w.weight > 0) byName.set(w.name, (byName.get(w.name) ?? 0) + w.weight);
  }
  return { clusters: [...byName].map(([name, weight]) => ({ name, weight })), notes };
}

/**
 * @internal One cluster's endpoints as loaded: its assignment, and its
 * weight when the route splits calls.
 *
 * @example
 * ```ts
 * const loaded: LoadedCluster = { cluster: { name: 'orders', weight: 1 }, cla };
 * ```
 */
export interface LoadedCluster {
  readonly cluster: WeightedCluster;
  readonly cla: ClusterLoadAssignment;
}

/**
 * @internal The endpoints of the clusters to call, of every priority, each
 * with its priority (the balancer chooses among them by readiness) and,
 * when the route splits calls across clusters, its cluster as its group;
 * each one's state, and the addresses listed more than once.
 *
 * @example
 * ```ts
 * const { set, states } = endpointSet([{ cluster: { name: 'orders', weight: 1 }, cla }], false);
 * ```
 */
export function endpointSet(
  loaded: readonly LoadedCluster[],
  split: boolean,
): {
  set: Map<string, DiscoveredAddress>;
  states: Map<string, { state: EndpointState; zone: string; health: HealthStatus }>;
  duplicates: Map<string, number>;
} {
  // an address listed at two priorities counts once, at the higher one (the lower number)
  const localities = loaded.flatMap(({ cluster, cla }) =>
    cla.localities.map((l) => ({ ...l, group: split ? cluster : undefined })),
  );
  localities.sort((a, b) => a.priority - b.priority);
  const set = new Map<string, DiscoveredAddress>();
  const states = new Map<string, { state: EndpointState; zone: string; health: HealthStatus }>();
  const duplicates = new Map<string, number>();
  for (const l of localities) {
    for (const e of l.endpoints) {
      if (states.has(e.address)) {
        duplicates.set(e.address, (duplicates.get(e.address) ?? 1) + 1);
        continue;
      }
      const state: EndpointState = HEALTHY.has(e.health)
        ? 'ready'
        : e.health === 'DRAINING'
          ? 'terminating'
          : 'not-serving';
      states.set(e.address, { state, zone: l.zone, health: e.health });
      if (state === 'ready') {
        set.set(e.address, {
          address: e.address,
          weight: l.weight * e.weight,
          ...(l.zone === '' ? {} : { zone: l.zone }),
          ...(l.priority === 0 ? {} : { priority: l.priority }),
          ...(l.group === undefined ? {} : { group: l.group.name, groupWeight: l.group.weight }),
        });
      }
    }
  }
  return { set, states, duplicates };
}
