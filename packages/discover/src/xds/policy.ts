/**
 * A Cluster's outlier detection and circuit breakers mapped onto
 * grpc-tower's own: `outlierDetection` options (`@grpc-tower/health`'s
 * shape, gRPC A50's mapping of the xDS fields, plus Envoy's
 * `consecutive_5xx`, which grpc-tower implements) and a concurrency limit
 * for `max_requests` (gRPC A32's circuit breaking: calls over the limit
 * fail at once). What has no counterpart is listed in `ignored`.
 *
 * @module
 */
import { ConfigError } from '@grpc-tower/core';
import type { Subscription } from 'rxjs';
import type { Cluster, XdsOutlierDetectionFields } from './resources.js';
import { type XdsOptions, xdsWith } from './source.js';

/**
 * grpc-tower's outlier detection options from a Cluster: the shape of
 * `@grpc-tower/health`'s `OutlierDetectionOptions` (so that it can be
 * passed as `towerChannel`'s `outlierDetection`).
 *
 * @example
 * ```ts
 * const od: XdsOutlierDetection = { consecutiveFailures: 3, intervalMs: 5000 };
 * ```
 */
export interface XdsOutlierDetection {
  readonly consecutiveFailures?: number;
  readonly intervalMs?: number;
  readonly baseEjectionTimeMs?: number;
  readonly maxEjectionTimeMs?: number;
  readonly maxEjectionPercent?: number;
  readonly successRateEjection?:
    | false
    | {
        readonly stdevFactor?: number;
        readonly enforcementPercentage?: number;
        readonly minimumHosts?: number;
        readonly requestVolume?: number;
      };
  readonly failurePercentageEjection?:
    | false
    | {
        readonly threshold?: number;
        readonly enforcementPercentage?: number;
        readonly minimumHosts?: number;
        readonly requestVolume?: number;
      };
}

/**
 * What a Cluster asks of the client's resilience, in grpc-tower's terms.
 *
 * @example
 * ```ts
 * const policy: XdsClusterPolicy = { cluster: 'orders', outlierDetection: undefined, maxRequests: 1024, ignored: [] };
 * ```
 */
export interface XdsClusterPolicy {
  readonly cluster: string;
  /** The mapped outlier detection, or `undefined` when the Cluster sets none (gRPC then does none). */
  readonly outlierDetection: XdsOutlierDetection | undefined;
  /** `circuit_breakers`' DEFAULT `max_requests`: the most calls in flight to the cluster, or `undefined`. */
  readonly maxRequests: number | undefined;
  /** The fields set that have no counterpart in grpc-tower, by their proto names. */
  readonly ignored: readonly string[];
}

/** The OutlierDetection fields grpc-tower maps; every other one set is ignored. */
const MAPPED = new Set([
  'consecutive_5xx',
  'enforcing_consecutive_5xx',
  'interval',
  'base_ejection_time',
  'max_ejection_time',
  'max_ejection_percent',
  'enforcing_success_rate',
  'success_rate_minimum_hosts',
  'success_rate_request_volume',
  'success_rate_stdev_factor',
  'failure_percentage_threshold',
  'enforcing_failure_percentage',
  'failure_percentage_minimum_hosts',
  'failure_percentage_request_volume',
]);

function outlierOf(od: XdsOutlierDetectionFields, ignored: string[]): XdsOutlierDetection {
  const n = (name: string): number | undefined => od[name] as number | undefined;
  const enforcing5xx = n('enforcing_consecutive_5xx') ?? 100;
  if (enforcing5xx > 0 && enforcing5xx < 100)
    ignored.push('enforcing_consecutive_5xx (only 0 or 100 is honoured)');
  // A50: success-rate ejection unless its enforcement is 0; failure-percentage only when its enforcement is set > 0
  const srEnforcing = n('enforcing_success_rate') ?? 100;
  const fpEnforcing = n('enforcing_failure_percentage') ?? 0;
  for (const name of Object.keys(od)) if (!MAPPED.has(name)) ignored.push(name);
  // [xDS field, grpc-tower option] for the fields set
  const mapped = (pairs: readonly (readonly [string, string])[]): Record<string, number> =>
    Object.fromEntries(pairs.flatMap(([x, t]) => (n(x) === undefined ? [] : [[t, n(x) as number]])));
  return {
    consecutiveFailures: enforcing5xx === 0 ? 0 : (n('consecutive_5xx') ?? 5),
    ...mapped([
      ['interval', 'intervalMs'],
      ['base_ejection_time', 'baseEjectionTimeMs'],
      ['max_ejection_time', 'maxEjectionTimeMs'],
      ['max_ejection_percent', 'maxEjectionPercent'],
    ]),
    successRateEjection:
      srEnforcing === 0
        ? false
        : {
            enforcementPercentage: srEnforcing,
            ...mapped([
              ['success_rate_stdev_factor', 'stdevFactor'],
              ['success_rate_minimum_hosts', 'minimumHosts'],
              ['success_rate_request_volume', 'requestVolume'],
            ]),
          },
    failurePercentageEjection:
      fpEnforcing === 0
        ? false
        : {
            enforcementPercentage: fpEnforcing,
            ...mapped([
              ['failure_percentage_threshold', 'threshold'],
              ['failure_percentage_minimum_hosts', 'minimumHosts'],
              ['failure_percentage_request_volume', 'requestVolume'],
            ]),
          },
  };
}

/**
 * The policy a decoded Cluster asks for, in grpc-tower's terms (the module
 * documentation says what maps to what).
 *
 * @example
 * ```ts
 * clusterPolicy(cluster).outlierDetection?.consecutiveFailures; // its consecutive_5xx
 * ```
 */
export function clusterPolicy(cluster: Cluster): XdsClusterPolicy {
  const ignored: string[] = [...cluster.ignoredBreakers];
  const outlierDetection =
    cluster.outlierDetection === undefined ? undefined : outlierOf(cluster.outlierDetection, ignored);
  return { cluster: cluster.name, outlierDetection, maxRequests: cluster.maxRequests, ignored };
}

/**
 * Reads the Cluster a target's route sends calls to (the heaviest of a
 * `weighted_clusters`), or `cluster`, from the management server, and
 * returns its outlier detection and circuit breakers in grpc-tower's terms,
 * to build a channel with: `outlierDetection` for `towerChannel`, and
 * `maxRequests` for `concurrencyLimit({ max, queue: 0 })`. It opens an ADS
 * stream of its own and closes it once the Cluster is in hand. Rejects
 * with an `Error` naming the target when no Cluster arrives within
 * `timeoutMs` (default 10 000), and throws `ConfigError` for bad options.
 *
 * @example
 * ```ts
 * const policy = await xdsClusterPolicy({ target: 'orders.shop.svc.cluster.local:50051' });
 * const orders = towerChannel('xds:///orders.shop.svc.cluster.local:50051', grpc.credentials.createInsecure(), {
 *   ...(policy.outlierDetection === undefined ? {} : { outlierDetection: policy.outlierDetection }),
 *   ...(policy.maxRequests === undefined ? {} : { layers: { outer: [concurrencyLimit({ max: policy.maxRequests, queue: 0 })] } }),
 * });
 * ```
 */
export function xdsClusterPolicy(
  options: XdsOptions & { readonly timeoutMs?: number },
): Promise<XdsClusterPolicy> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new ConfigError('xdsClusterPolicy', 'timeoutMs', timeoutMs, 'a finite number > 0');
  }
  let found: ((policy: XdsClusterPolicy) => void) | undefined;
  const source = xdsWith(options, (loaded, complete) => {
    if (!complete || loaded.length === 0) return;
    const heaviest = [...loaded].sort((a, b) => b.weight - a.weight)[0] as (typeof loaded)[number];
    found?.(clusterPolicy(heaviest.cluster));
  });
  return new Promise<XdsClusterPolicy>((resolve, reject) => {
    const what = options.target ?? `cluster ${options.cluster}`;
    let sub: Subscription | undefined;
    const timer = setTimeout(() => {
      found = undefined;
      sub?.unsubscribe();
      reject(new Error(`xdsClusterPolicy: no Cluster for ${what} arrived within ${timeoutMs} ms`));
    }, timeoutMs);
    found = (policy) => {
      found = undefined;
      clearTimeout(timer);
      // after this turn: the hook runs inside the source's own response handling
      queueMicrotask(() => sub?.unsubscribe());
      resolve(policy);
    };
    sub = source.subscribe({ error: () => {} });
    if (found === undefined) sub.unsubscribe();
  });
}
