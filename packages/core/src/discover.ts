/**
 * Discovery as a stream of changes, tower's `Discover` model: a source emits
 * `insert` when an endpoint appears (or is replaced) and `remove` when it
 * goes away. Any RxJS `Observable<Change<K, E>>` is a valid source. The
 * types live in core so that a consumer (a balancer) can take a `Discover`
 * without depending on the discovery sources of `@grpc-tower/discover`.
 *
 * An insert carries, beside the endpoint, what a balancer needs to place
 * it ({@link EndpointMetadata}: weight, zone, topology hints, priority,
 * group), as tower's
 * `Change::Insert` carries the service with what its balancer reads; the
 * endpoint itself is only a service with readiness.
 *
 * Contract for consumers: an insert of a known key replaces the old value
 * (which drains once the new one is ready) and its metadata; a remove of
 * an unknown key is ignored. Contract for sources: never complete or error on a transient
 * failure; keep the last known set and report the failure on an events
 * stream.
 *
 * @module
 */
import type { Observable } from 'rxjs';

/**
 * What a balancer reads of a discovered endpoint beside the endpoint: its
 * share, where it runs, its priority level and its group. Every member is optional; a balancer fixes them
 * when it first sees the endpoint under its key.
 *
 * @example
 * ```ts
 * const m: EndpointMetadata = { weight: 3, zone: 'eu-west-1a', forZones: ['eu-west-1a'] };
 * const canaryStandby: EndpointMetadata = { priority: 1, group: 'canary', groupWeight: 10 };
 * ```
 */
export interface EndpointMetadata {
  /**
   * The endpoint's share among equally loaded endpoints, relative to the
   * others' (a finite number ≥ 0; 1 when absent), such as an SRV record's
   * weight or the `weight` an etcd entry carries. The p2c balancer draws
   * endpoints in proportion to it and divides their cost by it; 0 counts
   * as a very small share (RFC 2782).
   */
  readonly weight?: number | undefined;
  /**
   * The zone (locality) the endpoint runs in, such as a Kubernetes node's
   * `topology.kubernetes.io/zone` (`'eu-west-1a'`); none when absent. A
   * balancer with zone-aware routing prefers the endpoints of its own zone
   * while they have enough ready capacity.
   */
  readonly zone?: string | undefined;
  /**
   * Topology hints: the zones whose clients this endpoint is meant for (a
   * Kubernetes EndpointSlice's `hints.forZones`). A balancer with
   * zone-aware routing and hints on sends a client's calls only to the
   * endpoints hinted for its zone, when every ready endpoint has hints, as
   * kube-proxy does.
   */
  readonly forZones?: readonly string[] | undefined;
  /**
   * The priority level of the endpoint: an integer ≥ 0, 0 the highest (an
   * xDS locality's `priority`); 0 when absent. A balancer sends calls to
   * the highest priority whose endpoints are ready enough, and fails over
   * to the next one when they are not (see the balancing guide,
   * "Priorities").
   */
  readonly priority?: number | undefined;
  /**
   * The group the endpoint belongs to, such as the xDS cluster of a route's
   * `weighted_clusters` (a canary split); none when absent. When the
   * endpoints carry more than one group, a balancer first draws a group in
   * proportion to the groups' `groupWeight`, then picks within it.
   */
  readonly group?: string | undefined;
  /**
   * The weight of the endpoint's group among the groups (a finite number
   * > 0, 1 when absent): the group's share of the calls, such as a weighted
   * cluster's weight. The endpoints of one group carry the same one.
   */
  readonly groupWeight?: number | undefined;
}

/**
 * An endpoint appeared, or replaced the one under the same key, with what
 * a balancer needs to place it (`metadata`, optional).
 *
 * @example
 * ```ts
 * const c: Insert<string, string> = { type: 'insert', key: '10.0.0.1:80', endpoint: '10.0.0.1:80' };
 * const weighted: Insert<string, string> = { ...c, metadata: { weight: 3, zone: 'eu-west-1a' } };
 * ```
 */
export interface Insert<K, E> {
  readonly type: 'insert';
  readonly key: K;
  readonly endpoint: E;
  /** The endpoint's weight, zone, topology hints, priority and group, when discovery knows them. */
  readonly metadata?: EndpointMetadata | undefined;
}

/**
 * The endpoint under `key` went away.
 *
 * @example
 * ```ts
 * const c: Remove<string> = { type: 'remove', key: '10.0.0.1:80' };
 * ```
 */
export interface Remove<K> {
  readonly type: 'remove';
  readonly key: K;
}

/**
 * One discovery change.
 *
 * @example
 * ```ts
 * const changes: Change<string, string>[] = [
 *   { type: 'insert', key: 'a', endpoint: '127.0.0.2:50051' },
 *   { type: 'remove', key: 'a' },
 * ];
 * ```
 */
export type Change<K, E> = Insert<K, E> | Remove<K>;

/**
 * A discovery source: an Observable of changes.
 *
 * @example
 * ```ts
 * const src: Discover<string, string> = of({ type: 'insert', key: 'a', endpoint: '127.0.0.2:50051' });
 * ```
 */
export type Discover<K, E> = Observable<Change<K, E>>;
