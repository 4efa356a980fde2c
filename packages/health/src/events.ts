/**
 * What health checking and outlier detection report: health transitions,
 * the one-time note that a server has no health service, ejections and
 * returns. Each event names the endpoint by address and says why.
 *
 * @module
 */
import type { ServingStatus } from './health-check/proto.js';

/**
 * What an active health check currently believes about an endpoint:
 * - `unknown`: no answer yet on the current connection (the endpoint is
 *   held at `connecting`, as gRPC A17 does until the first response);
 * - `healthy`: the server reported `SERVING`, or has no health service
 *   (HTTP checks: its answers had an expected status);
 * - `unhealthy`: the server reported another status, or the check failed
 *   (HTTP checks: as many times in a row as `unhealthyThreshold`).
 *
 * @example
 * ```ts
 * if (endpoint.health === 'unhealthy') console.warn(endpoint.address, 'is out of rotation');
 * ```
 */
export type HealthState = 'unknown' | 'healthy' | 'unhealthy';

/**
 * Which rule ejected an endpoint:
 * - `consecutive-failures`: that many failed calls in a row (Envoy's
 *   `consecutive_5xx`, counting gRPC codes);
 * - `success-rate`: its success rate fell below the mean minus
 *   `stdevFactor` standard deviations (gRPC A50);
 * - `failure-percentage`: its failure percentage reached the threshold
 *   (gRPC A50).
 *
 * @example
 * ```ts
 * detector.events$.subscribe((e) => e.type === 'ejected' && metrics.count(`ejected.${e.algorithm}`));
 * ```
 */
export type EjectionAlgorithm = 'consecutive-failures' | 'success-rate' | 'failure-percentage';

/**
 * A health check changed its verdict about an endpoint.
 *
 * @example
 * ```ts
 * const e: HealthTransition = {
 *   type: 'health', endpoint: '127.0.0.2:50051', from: 'healthy', to: 'unhealthy',
 *   reason: 'server reported NOT_SERVING', status: 'NOT_SERVING',
 * };
 * ```
 */
export interface HealthTransition {
  readonly type: 'health';
  /** The endpoint's address. */
  readonly endpoint: string;
  readonly from: HealthState;
  readonly to: HealthState;
  /** Why, in words: the status the server sent, or how the check failed. */
  readonly reason: string;
  /** The `grpc.health.v1` serving status the server sent, when this change came from one (never for HTTP checks). */
  readonly status: ServingStatus | undefined;
}

/**
 * The server answered the health check with `UNIMPLEMENTED`: it has no
 * health service, so it is treated as healthy and not checked again on this
 * connection (gRPC A17). Reported once per endpoint.
 *
 * @example
 * ```ts
 * const e: HealthUnimplemented = { type: 'unimplemented', endpoint: '127.0.0.2:50051', reason: '…' };
 * ```
 */
export interface HealthUnimplemented {
  readonly type: 'unimplemented';
  readonly endpoint: string;
  readonly reason: string;
}

/**
 * Outlier detection took an endpoint out of rotation.
 *
 * @example
 * ```ts
 * const e: EndpointEjected = {
 *   type: 'ejected', endpoint: '127.0.0.2:50051', algorithm: 'consecutive-failures',
 *   reason: '5 consecutive failures, the last UNAVAILABLE', durationMs: 30_000, count: 1,
 * };
 * ```
 */
export interface EndpointEjected {
  readonly type: 'ejected';
  readonly endpoint: string;
  readonly algorithm: EjectionAlgorithm;
  readonly reason: string;
  /** How long it stays out: the base ejection time × `count`, capped. */
  readonly durationMs: number;
  /** The ejection multiplier after this ejection: times ejected, less one per healthy interval. */
  readonly count: number;
}

/**
 * An ejected endpoint's time is up: it is back in rotation (if its own
 * readiness is `ready`).
 *
 * @example
 * ```ts
 * const e: EndpointReturned = { type: 'returned', endpoint: '127.0.0.2:50051', ejectedMs: 30_004 };
 * ```
 */
export interface EndpointReturned {
  readonly type: 'returned';
  readonly endpoint: string;
  /** How long it was out, in ms (measured). */
  readonly ejectedMs: number;
}

/**
 * An endpoint met an ejection rule but was not ejected (gRFC A91's
 * unenforced ejection): its rule's `enforcementPercentage` draw said no
 * (`enforcement-percentage`), or `maxEjectionPercent` of the endpoints are
 * out already (`max-ejection-percent`). A consecutive-failures outlier is
 * reported once per run of failures, when the run reaches the threshold.
 *
 * @example
 * ```ts
 * const e: EjectionUnenforced = {
 *   type: 'unenforced', endpoint: '127.0.0.2:50051', algorithm: 'success-rate', because: 'max-ejection-percent',
 * };
 * ```
 */
export interface EjectionUnenforced {
  readonly type: 'unenforced';
  readonly endpoint: string;
  readonly algorithm: EjectionAlgorithm;
  readonly because: 'enforcement-percentage' | 'max-ejection-percent';
}

/**
 * Any event of `healthChecked(...).events$` or `outlierDetection(...).events$`.
 * Merge both with RxJS `merge` for one log.
 *
 * @example
 * ```ts
 * merge(health.events$, detector.events$).subscribe((e) => log.info(e.type, e.endpoint, e));
 * ```
 */
export type HealthEvent =
  | HealthTransition
  | HealthUnimplemented
  | EndpointEjected
  | EjectionUnenforced
  | EndpointReturned;
