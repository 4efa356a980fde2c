/**
 * The four xDS resources a proxyless client reads, decoded from their wire
 * form into what the source uses, and checked: a resource this source
 * cannot use throws {@link XdsResourceError} with the reason, which the
 * source sends back in a NACK. Field numbers are the Envoy API v3's.
 *
 * @module
 */
import { formatAddress, isHost } from '@grpc-tower/core';
import { type Fields, msg, msgs, num, readFields, str, strs, uint32Value } from './wire.js';

/** The type URLs of the resources, as they appear in `Any` and in DiscoveryRequest/Response. */
export const TYPE_URL = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoints: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
} as const;

/** A resource kind. */
export type ResourceKind = keyof typeof TYPE_URL;

const HCM_URL =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** A resource that cannot be used; its message goes into the NACK's `error_detail`. */
export class XdsResourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XdsResourceError';
  }
}

/** A google.protobuf.Any: its type URL and payload. */
export interface AnyValue {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

/** Decodes a google.protobuf.Any. */
export function readAny(bytes: Uint8Array): AnyValue {
  const f = readFields(bytes);
  return { typeUrl: str(f, 1), value: msg(f, 2) ?? new Uint8Array() };
}

/** A Listener: the RouteConfiguration it names (RDS), or routes given inline. */
export interface Listener {
  readonly name: string;
  readonly routeConfigName?: string;
  readonly inlineRoute?: RouteConfiguration;
}

/** Where a route sends calls: one cluster, or clusters by weight. */
export type RouteTarget =
  | { readonly cluster: string }
  | { readonly weighted: readonly { readonly name: string; readonly weight: number }[] };

/** One route of a virtual host: its catch-all-ness, the matchers it has beyond a prefix, and its target. */
export interface Route {
  /** The route matches every call (prefix `""` or `/`, nothing else). */
  readonly catchAll: boolean;
  /** Matchers this source does not evaluate (headers, regex, runtime fraction...), by field name. */
  readonly matchers: readonly string[];
  /** Undefined for an action that is not a route (redirect, direct response...). */
  readonly target: RouteTarget | undefined;
}

/** A RouteConfiguration's virtual hosts. */
export interface RouteConfiguration {
  readonly name: string;
  readonly virtualHosts: readonly {
    readonly name: string;
    readonly domains: readonly string[];
    readonly routes: readonly Route[];
  }[];
}

/** A Cluster of type EDS: the name its endpoints come under. */
export interface Cluster {
  readonly name: string;
  readonly edsServiceName: string;
  /** `outlier_detection`, its fields as sent (durations in ms), or `undefined` when the Cluster has none. */
  readonly outlierDetection: XdsOutlierDetectionFields | undefined;
  /** `circuit_breakers`: the DEFAULT priority's `max_requests`, when set. */
  readonly maxRequests: number | undefined;
  /** The `circuit_breakers` fields set that grpc-tower does not map. */
  readonly ignoredBreakers: readonly string[];
}

/**
 * A Cluster's `outlier_detection` (envoy.config.cluster.v3.OutlierDetection):
 * the fields set, by their proto names, durations in ms.
 *
 * @example
 * ```ts
 * const od: XdsOutlierDetectionFields = { consecutive_5xx: 3, interval: 5000 };
 * ```
 */
export type XdsOutlierDetectionFields = Readonly<Record<string, number | boolean>>;

/** The fields of OutlierDetection by number: a UInt32Value, a Duration, or a bool. */
const OUTLIER_FIELDS: ReadonlyMap<number, readonly [string, 'u32' | 'duration' | 'bool' | 'BoolValue']> =
  new Map([
    [1, ['consecutive_5xx', 'u32']],
    [2, ['interval', 'duration']],
    [3, ['base_ejection_time', 'duration']],
    [4, ['max_ejection_percent', 'u32']],
    [5, ['enforcing_consecutive_5xx', 'u32']],
    [6, ['enforcing_success_rate', 'u32']],
    [7, ['success_rate_minimum_hosts', 'u32']],
    [8, ['success_rate_request_volume', 'u32']],
    [9, ['success_rate_stdev_factor', 'u32']],
    [10, ['consecutive_gateway_failure', 'u32']],
    [11, ['enforcing_consecutive_gateway_failure', 'u32']],
    [12, ['split_external_local_origin_errors', 'bool']],
    [13, ['consecutive_local_origin_failure', 'u32']],
    [14, ['enforcing_consecutive_local_origin_failure', 'u32']],
    [15, ['enforcing_local_origin_success_rate', 'u32']],
    [16, ['failure_percentage_threshold', 'u32']],
    [17, ['enforcing_failure_percentage', 'u32']],
    [18, ['enforcing_failure_percentage_local_origin', 'u32']],
    [19, ['failure_percentage_minimum_hosts', 'u32']],
    [20, ['failure_percentage_request_volume', 'u32']],
    [21, ['max_ejection_time', 'duration']],
    [22, ['max_ejection_time_jitter', 'duration']],
    [23, ['successful_active_health_check_uneject_host', 'BoolValue']],
    [25, ['always_eject_one_host', 'BoolValue']],
  ]);

/** A google.protobuf.Duration in ms. */
function durationMs(bytes: Uint8Array): number {
  const d = readFields(bytes);
  return num(d, 1) * 1000 + num(d, 2) / 1e6;
}

/** The fields an OutlierDetection message sets (unknown numbers left out). */
function decodeOutlierDetection(bytes: Uint8Array): XdsOutlierDetectionFields {
  const f = readFields(bytes);
  const out: Record<string, number | boolean> = {};
  for (const [n, [name, kind]] of OUTLIER_FIELDS) {
    if (!f.has(n)) continue;
    if (kind === 'bool') out[name] = num(f, n) !== 0;
    else if (kind === 'BoolValue') out[name] = (uint32Value(f, n) ?? 0) !== 0;
    else if (kind === 'u32') out[name] = uint32Value(f, n) ?? 0;
    else out[name] = durationMs(msg(f, n) as Uint8Array);
  }
  return out;
}

/** The DEFAULT priority's `max_requests` of a CircuitBreakers message, and the other fields it sets. */
function decodeCircuitBreakers(bytes: Uint8Array): { maxRequests: number | undefined; ignored: string[] } {
  const f = readFields(bytes);
  const ignored = new Set<string>();
  let maxRequests: number | undefined;
  const names = new Map([
    [2, 'max_connections'],
    [3, 'max_pending_requests'],
    [5, 'max_retries'],
    [7, 'max_connection_pools'],
    [8, 'retry_budget'],
  ]);
  for (const t of msgs(f, 1)) {
    const th = readFields(t);
    const priority = num(th, 1); // 0 DEFAULT, 1 HIGH
    if (priority !== 0) {
      ignored.add('thresholds of priority HIGH');
      continue;
    }
    maxRequests = uint32Value(th, 4) ?? maxRequests;
    for (const [n, name] of names) if (th.has(n)) ignored.add(name);
  }
  if (f.has(2)) ignored.add('per_host_thresholds');
  return { maxRequests, ignored: [...ignored] };
}

/** `health_status` values (envoy.config.core.v3.HealthStatus). */
export const HEALTH = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED'] as const;
/** One health status. */
export type HealthStatus = (typeof HEALTH)[number];

/** One endpoint of a ClusterLoadAssignment. */
export interface LbEndpoint {
  /** `host:port`, the discovery key. */
  readonly address: string;
  readonly health: HealthStatus;
  /** `load_balancing_weight`, 1 when unset. */
  readonly weight: number;
}

/** One locality of a ClusterLoadAssignment. */
export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
  /** `load_balancing_weight`, 1 when unset. */
  readonly weight: number;
  readonly priority: number;
  readonly endpoints: readonly LbEndpoint[];
}

/** A ClusterLoadAssignment. */
export interface ClusterLoadAssignment {
  readonly clusterName: string;
  readonly localities: readonly Locality[];
}

function named(f: Fields, n: number, what: string): string {
  const name = str(f, n);
  if (name === '') throw new XdsResourceError(`${what} has no name`);
  return name;
}

/** Decodes and checks a Listener (an API listener whose HttpConnectionManager names its routes). */
export function decodeListener(bytes: Uint8Array): Listener {
  const f = readFields(bytes);
  const name = named(f, 1, 'Listener');
  const api = msg(f, 19);
  if (api === undefined)
    throw new XdsResourceError(`Listener ${name}: no api_listener (not a listener for clients)`);
  const inner = msg(readFields(api), 1);
  if (inner === undefined) throw new XdsResourceError(`Listener ${name}: api_listener.api_listener unset`);
  const any = readAny(inner);
  if (any.typeUrl !== HCM_URL) {
    throw new XdsResourceError(
      `Listener ${name}: api_listener is ${any.typeUrl || 'empty'}, not an HttpConnectionManager`,
    );
  }
  const hcm = readFields(any.value);
  const rds = msg(hcm, 3);
  if (rds !== undefined) {
    const routeConfigName = str(readFields(rds), 2);
    if (routeConfigName === '')
      throw new XdsResourceError(`Listener ${name}: rds.route_config_name is empty`);
    return { name, routeConfigName };
  }
  const inline = msg(hcm, 4);
  if (inline !== undefined) return { name, inlineRoute: decodeRouteConfiguration(inline, true) };
  throw new XdsResourceError(`Listener ${name}: the HttpConnectionManager has neither rds nor route_config`);
}

/** RouteMatch fields other than the path prefix, by number, with their names for events. */
const MATCHERS: ReadonlyMap<number, string> = new Map([
  [2, 'path'],
  [10, 'safe_regex'],
  [14, 'path_separated_prefix'],
  [15, 'path_match_policy'],
  [6, 'headers'],
  [7, 'query_parameters'],
  [9, 'runtime_fraction'],
  [11, 'dynamic_metadata'],
  [13, 'filter_state'],
]);

function decodeRoute(bytes: Uint8Array, where: string): Route {
  const f = readFields(bytes);
  const matchBytes = msg(f, 1);
  if (matchBytes === undefined) throw new XdsResourceError(`${where}: a route has no match`);
  const m = readFields(matchBytes);
  const matchers = [...MATCHERS].filter(([n]) => m.has(n)).map(([, label]) => label);
  const prefix = m.has(1) ? str(m, 1) : undefined;
  const catchAll = matchers.length === 0 && (prefix === '' || prefix === '/');
  const action = msg(f, 2);
  if (action === undefined) return { catchAll, matchers, target: undefined };
  const a = readFields(action);
  const cluster = str(a, 1);
  if (cluster !== '') return { catchAll, matchers, target: { cluster } };
  const weightedBytes = msg(a, 3);
  if (weightedBytes !== undefined) {
    const weighted = msgs(readFields(weightedBytes), 1).map((cw) => {
      const c = readFields(cw);
      return { name: named(c, 1, `${where}: a weighted cluster`), weight: uint32Value(c, 2) ?? 0 };
    });
    if (weighted.length === 0) throw new XdsResourceError(`${where}: weighted_clusters has no cluster`);
    if (weighted.every((w) => w.weight === 0))
      throw new XdsResourceError(`${where}: weighted_clusters weigh 0 in all`);
    return { catchAll, matchers, target: { weighted } };
  }
  // cluster_header, cluster_specifier_plugin: a cluster chosen per call, which this source cannot follow
  return { catchAll, matchers, target: undefined };
}

/** Decodes and checks a RouteConfiguration. */
export function decodeRouteConfiguration(bytes: Uint8Array, inline = false): RouteConfiguration {
  const f = readFields(bytes);
  const name = inline ? str(f, 1) : named(f, 1, 'RouteConfiguration');
  const where = `RouteConfiguration ${name || '(inline)'}`;
  const virtualHosts = msgs(f, 2).map((vh) => {
    const v = readFields(vh);
    return { name: str(v, 1), domains: strs(v, 2), routes: msgs(v, 3).map((r) => decodeRoute(r, where)) };
  });
  return { name, virtualHosts };
}

/** Decodes and checks a Cluster: it must be of type EDS with its endpoints over ADS. */
export function decodeCluster(bytes: Uint8Array): Cluster {
  const f = readFields(bytes);
  const name = named(f, 1, 'Cluster');
  if (f.has(38))
    throw new XdsResourceError(`Cluster ${name}: a custom cluster_type (such as aggregate) is not supported`);
  const type = num(f, 2);
  if (type !== 3) {
    const names = ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST'];
    throw new XdsResourceError(
      `Cluster ${name}: type ${names[type] ?? String(type)} is not supported (only EDS)`,
    );
  }
  const eds = msg(f, 3);
  const edsServiceName = eds === undefined ? '' : str(readFields(eds), 2);
  const od = msg(f, 19);
  const cb = msg(f, 10);
  const breakers = cb === undefined ? { maxRequests: undefined, ignored: [] } : decodeCircuitBreakers(cb);
  return {
    name,
    edsServiceName: edsServiceName || name,
    outlierDetection: od === undefined ? undefined : decodeOutlierDetection(od),
    maxRequests: breakers.maxRequests,
    ignoredBreakers: breakers.ignored,
  };
}

/** Decodes and checks a ClusterLoadAssignment: every endpoint a socket address with an IP and a port. */
export function decodeClusterLoadAssignment(bytes: Uint8Array): ClusterLoadAssignment {
  const f = readFields(bytes);
  const clusterName = named(f, 1, 'ClusterLoadAssignment (cluster_name)');
  const where = `ClusterLoadAssignment ${clusterName}`;
  const localities = msgs(f, 2).map((lb): Locality => {
    const l = readFields(lb);
    const loc = msg(l, 1);
    const lf = loc === undefined ? new Map() : readFields(loc);
    const weight = uint32Value(l, 3) ?? 1;
    const endpoints = msgs(l, 2).map((eb): LbEndpoint => {
      const e = readFields(eb);
      const endpoint = msg(e, 1);
      const address = endpoint === undefined ? undefined : msg(readFields(endpoint), 1);
      const socket = address === undefined ? undefined : msg(readFields(address), 1);
      if (socket === undefined) throw new XdsResourceError(`${where}: an endpoint has no socket_address`);
      const s = readFields(socket);
      const host = str(s, 2);
      const port = num(s, 3);
      if (!isHost(host) || host === '')
        throw new XdsResourceError(`${where}: invalid endpoint host ${JSON.stringify(host)}`);
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw new XdsResourceError(`${where}: endpoint ${host} has port ${port}, not 1 to 65535`);
      }
      const health = HEALTH[num(e, 2)] ?? 'UNKNOWN';
      const w = uint32Value(e, 4) ?? 1;
      if (w === 0)
        throw new XdsResourceError(`${where}: endpoint ${host}:${port} has load_balancing_weight 0`);
      return { address: formatAddress(host, port), health, weight: w };
    });
    return {
      region: str(lf, 1),
      zone: str(lf, 2),
      subZone: str(lf, 3),
      weight,
      priority: num(l, 5),
      endpoints,
    };
  });
  return { clusterName, localities };
}

/** The name of a decoded resource, the key it is cached under. */
export function resourceName(kind: ResourceKind, bytes: Uint8Array): { name: string; value: unknown } {
  switch (kind) {
    case 'listener': {
      const v = decodeListener(bytes);
      return { name: v.name, value: v };
    }
    case 'route': {
      const v = decodeRouteConfiguration(bytes);
      return { name: v.name, value: v };
    }
    case 'cluster': {
      const v = decodeCluster(bytes);
      return { name: v.name, value: v };
    }
    case 'endpoints': {
      const v = decodeClusterLoadAssignment(bytes);
      return { name: v.clusterName, value: v };
    }
  }
}

/** The name a resource carries, read without checking the rest, so a broken one can be named in its NACK. */
export function peekName(kind: ResourceKind, bytes: Uint8Array): string {
  try {
    return str(readFields(bytes), 1) || '(unnamed)';
  } catch {
    return `(malformed ${kind})`;
  }
}
