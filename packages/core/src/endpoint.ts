/**
 * An {@link Endpoint} is a service for one address that also tells whether
 * it can take calls now (its readiness), how loaded it is, and that drains
 * on `close()`. Balancers choose among endpoints; health checks and outlier
 * detection wrap endpoints and gate their readiness.
 *
 * @module
 */
import type { Observable } from 'rxjs';
import type { CallContext } from './context.js';
import { ConfigError } from './errors.js';
import { isEndpoint } from './internal/endpoint.js';
import type { Service } from './service.js';

/**
 * Whether an endpoint can take calls:
 * - `ready`: connected, calls go out now;
 * - `connecting`: connecting or reconnecting (with backoff); not picked;
 * - `failed`: the last connection attempt failed, or a health check or
 *   outlier detection holds it out; it keeps trying and may return;
 * - `closed`: closed for good.
 */
export type Readiness = 'ready' | 'connecting' | 'failed' | 'closed';

/**
 * A service for one address, with readiness and load.
 *
 * @example
 * ```ts
 * const ep = grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() });
 * ep.readiness$.subscribe((r) => console.log(ep.address, r));
 * ```
 */
export interface Endpoint<Req, Res> extends Service<Req, Res> {
  /** The address calls go to, as `host:port` (IPv6 as `[::1]:50051`). */
  readonly address: string;
  /** The current readiness, synchronously. */
  readonly readiness: Readiness;
  /** The readiness: emits the current value on subscribe, then each change; completes on close. */
  readonly readiness$: Observable<Readiness>;
  /** Calls started and not yet settled. */
  readonly pending: number;
  /**
   * Whether the connection is up, even when a health check or outlier
   * detection holds the endpoint out (then `readiness` is `'failed'`).
   * Optional: when absent, `readiness === 'ready'` is the answer. A
   * balancer in panic mode sends to connected endpoints.
   */
  readonly connected?: boolean;
  /**
   * Why the endpoint is not ready, when it knows: the last connection error
   * (`connect ECONNREFUSED 10.0.0.7:50051`, a TLS handshake failure), or the
   * verdict that holds it out (`health check: NOT_SERVING`). Optional. A
   * balancer that cannot place a call names it in its error.
   */
  readonly lastError?: string | undefined;
  /**
   * The endpoint's share among equally loaded endpoints, relative to the
   * others' (a finite number > 0; optional, 1 when absent or invalid), such
   * as an SRV record's weight or the `weight` an etcd entry carries. The p2c
   * balancer draws endpoints in proportion to it and divides their cost by
   * it.
   */
  readonly weight?: number | undefined;
  /**
   * The zone (locality) the endpoint runs in, such as a Kubernetes node's
   * `topology.kubernetes.io/zone` (`'eu-west-1a'`). Optional: an endpoint
   * without one is in no zone. A balancer with zone-aware routing prefers
   * the endpoints of its own zone while they have enough ready capacity.
   */
  readonly zone?: string | undefined;
  /**
   * Topology hints: the zones whose clients this endpoint is meant for
   * (a Kubernetes EndpointSlice's `hints.forZones`). Optional. A balancer
   * with zone-aware routing and hints on sends a client's calls only to the
   * endpoints hinted for its zone, when every ready endpoint has hints, as
   * kube-proxy does.
   */
  readonly forZones?: readonly string[] | undefined;
  /**
   * The priority level of the endpoint: an integer ≥ 0, 0 the highest
   * (an xDS locality's `priority`). Optional: an endpoint without one is
   * at priority 0. A balancer sends calls to the highest priority whose
   * endpoints are ready enough, and fails over to the next one when they
   * are not (see the balancing guide, "Priorities").
   */
  readonly priority?: number | undefined;
  /**
   * The group the endpoint belongs to, such as the xDS cluster of a route's
   * `weighted_clusters` (a canary split). Optional. When endpoints carry
   * more than one group, a balancer first draws a group in proportion to
   * the groups' {@link Endpoint.groupWeight}, then picks within it.
   */
  readonly group?: string | undefined;
  /**
   * The weight of the endpoint's group among the groups (a finite number
   * > 0, 1 when absent): the group's share of the calls, such as a weighted
   * cluster's weight. The endpoints of one group carry the same one.
   */
  readonly groupWeight?: number | undefined;
  /**
   * Starts a connection attempt now, when the endpoint's connection failed
   * and it is waiting out its reconnect backoff. Optional. Returns a
   * promise that resolves (never rejects) when that attempt ends, connected
   * or failed, or `undefined` when there is nothing to start: the endpoint
   * is not failed (ready, connecting, closed), is held out with its
   * connection up (a health check, outlier detection), or already made
   * such an attempt within its current backoff interval, so that a stream
   * of calls to a dead server does not become a stream of connections.
   * Idempotent: while the attempt runs it returns that attempt's promise.
   * The backoff schedule resumes after the attempt.
   *
   * A balancer calls it when a call finds every endpoint failed (a client
   * built before its servers were up, whose endpoints sit in backoff), and
   * counts the endpoint as connecting until the promise resolves.
   *
   * @example
   * ```ts
   * const attempt = endpoint.reconnect?.();
   * if (attempt !== undefined) await attempt; // then read endpoint.readiness
   * ```
   */
  reconnect?(): Promise<void> | undefined;
  /**
   * Stops taking new calls, waits for the calls in flight (at most
   * `graceMs`, then cancels them), then releases every resource.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

/**
 * An endpoint that passes everything to the endpoint it wraps: the base of
 * a wrapper that changes one or two things about an endpoint and forwards
 * the rest. A health check extends it and overrides the readiness (and
 * `pending`, `lastError`, `close`); outlier detection overrides `call` to
 * observe outcomes, and the readiness to hold an ejected endpoint out.
 *
 * What it forwards costs one method call each: `call`, `readiness`,
 * `pending`, `lastError` and `reconnect` read the inner endpoint when
 * asked; `address` and the discovery metadata (`weight`, `zone`,
 * `forZones`, `priority`, `group`, `groupWeight`) are read once, when wrapped, as a balancer fixes them when it
 * first sees the endpoint. `connected` is the inner connection's (its
 * `connected`, else whether it is `ready`), which stays true when a
 * subclass holds a connected endpoint out.
 *
 * A subclass that publishes a readiness of its own declares `readiness$`
 * again and sets it in its constructor.
 *
 * @example
 * ```ts
 * // an endpoint that refuses calls while a flag is off, and is otherwise its inner endpoint
 * class Switchable<Req, Res> extends DelegatingEndpoint<Req, Res> {
 *   on = true;
 *   override call(req: Req, ctx: CallContext): Promise<Res> {
 *     return this.on ? this.inner.call(req, ctx) : Promise.reject(new Error('switched off'));
 *   }
 * }
 * const ep = new Switchable(grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() }));
 * ```
 */
export class DelegatingEndpoint<Req, Res> implements Endpoint<Req, Res> {
  /** The wrapped endpoint. */
  readonly inner: Endpoint<Req, Res>;
  /** The inner endpoint's address. */
  readonly address: string;
  /** The inner endpoint's readiness stream (a subclass that gates readiness declares its own). */
  readonly readiness$: Observable<Readiness>;
  /** The inner endpoint's weight, as it was when wrapped. */
  readonly weight: number | undefined;
  /** The inner endpoint's zone, as it was when wrapped. */
  readonly zone: string | undefined;
  /** The inner endpoint's topology hints, as they were when wrapped. */
  readonly forZones: readonly string[] | undefined;
  /** The inner endpoint's priority, as it was when wrapped. */
  readonly priority: number | undefined;
  /** The inner endpoint's group, as it was when wrapped. */
  readonly group: string | undefined;
  /** The inner endpoint's group weight, as it was when wrapped. */
  readonly groupWeight: number | undefined;

  /**
   * Wraps `inner`. Throws `ConfigError` naming `where` (the function the
   * user called) when `inner` is not an endpoint.
   */
  constructor(inner: Endpoint<Req, Res>, where = 'DelegatingEndpoint') {
    if (!isEndpoint(inner)) {
      throw new ConfigError(where, 'endpoint', inner, 'an Endpoint (address, call, close, readiness$)');
    }
    this.inner = inner;
    this.address = inner.address;
    this.readiness$ = inner.readiness$;
    this.weight = inner.weight;
    this.zone = inner.zone;
    this.forZones = inner.forZones;
    this.priority = inner.priority;
    this.group = inner.group;
    this.groupWeight = inner.groupWeight;
  }

  /** The inner endpoint's readiness. */
  get readiness(): Readiness {
    return this.inner.readiness;
  }

  /** The inner endpoint's calls in flight. */
  get pending(): number {
    return this.inner.pending;
  }

  /** Whether the inner endpoint's connection is up: its `connected`, else whether it is `ready`. */
  get connected(): boolean {
    const inner = this.inner;
    return inner.connected ?? inner.readiness === 'ready';
  }

  /** Why the inner endpoint is not ready, when it knows. */
  get lastError(): string | undefined {
    return this.inner.lastError;
  }

  /** The inner endpoint's `reconnect()`, or `undefined` when it has none (see {@link Endpoint.reconnect}). */
  reconnect(): Promise<void> | undefined {
    return this.inner.reconnect?.();
  }

  /** Sends the call to the inner endpoint. */
  call(req: Req, ctx: CallContext): Promise<Res> {
    return this.inner.call(req, ctx);
  }

  /** Closes the inner endpoint (which drains its calls). */
  close(options?: { graceMs?: number }): Promise<void> {
    return this.inner.close(options);
  }
}

/**
 * @internal Checks an endpoint's `weight` option: `undefined`, or a finite
 * number ≥ 0 (0 is an SRV record's "very small chance"). Throws
 * `ConfigError` naming `where`.
 *
 * @example
 * ```ts
 * const weight = checkWeight('grpcEndpoint', options.weight);
 * ```
 */
export function checkWeight(where: string, weight: unknown): number | undefined {
  if (weight === undefined) return undefined;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) {
    throw new ConfigError(where, 'weight', weight, 'a finite number >= 0');
  }
  return weight;
}

/**
 * @internal Checks an endpoint's `zone` option: `undefined`, or a
 * non-empty string. Throws `ConfigError` naming `where`.
 *
 * @example
 * ```ts
 * const zone = checkZone('grpcEndpoint', options.zone);
 * ```
 */
export function checkZone(where: string, zone: unknown): string | undefined {
  if (zone === undefined) return undefined;
  if (typeof zone !== 'string' || zone.length === 0) {
    throw new ConfigError(where, 'zone', zone, 'a non-empty string');
  }
  return zone;
}

/**
 * @internal Checks an endpoint's `forZones` option: `undefined`, or an
 * array of non-empty strings; returns a frozen copy. Throws `ConfigError`
 * naming `where`.
 *
 * @example
 * ```ts
 * const forZones = checkForZones('grpcEndpoint', options.forZones);
 * ```
 */
export function checkForZones(where: string, forZones: unknown): readonly string[] | undefined {
  if (forZones === undefined) return undefined;
  if (!Array.isArray(forZones) || !forZones.every((z) => typeof z === 'string' && z.length > 0)) {
    throw new ConfigError(where, 'forZones', forZones, 'an array of non-empty strings');
  }
  return Object.freeze([...(forZones as string[])]);
}

/**
 * @internal Checks an endpoint's `priority` option: `undefined`, or an
 * integer ≥ 0 (0 the highest). Throws `ConfigError` naming `where`.
 *
 * @example
 * ```ts
 * const priority = checkPriority('grpcEndpoint', options.priority);
 * ```
 */
export function checkPriority(where: string, priority: unknown): number | undefined {
  if (priority === undefined) return undefined;
  if (typeof priority !== 'number' || !Number.isSafeInteger(priority) || priority < 0) {
    throw new ConfigError(where, 'priority', priority, 'an integer >= 0');
  }
  return priority;
}

/**
 * @internal Checks an endpoint's `group` and `groupWeight` options:
 * `undefined`, or a non-empty string and a finite number > 0. Throws
 * `ConfigError` naming `where`.
 *
 * @example
 * ```ts
 * const { group, groupWeight } = checkGroup('grpcEndpoint', options.group, options.groupWeight);
 * ```
 */
export function checkGroup(
  where: string,
  group: unknown,
  groupWeight: unknown,
): { group: string | undefined; groupWeight: number | undefined } {
  if (group !== undefined && (typeof group !== 'string' || group.length === 0)) {
    throw new ConfigError(where, 'group', group, 'a non-empty string');
  }
  if (
    groupWeight !== undefined &&
    (typeof groupWeight !== 'number' || !Number.isFinite(groupWeight) || groupWeight <= 0)
  ) {
    throw new ConfigError(where, 'groupWeight', groupWeight, 'a finite number > 0');
  }
  return { group: group as string | undefined, groupWeight: groupWeight as number | undefined };
}
