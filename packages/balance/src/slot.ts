/**
 * One endpoint as the balancer tracks it ({@link Slot}): its key, role,
 * readiness as last seen, load state, pick counters, and its placement,
 * read once from the insert change's metadata (weight, zone, topology
 * hints, priority, group; see `Insert.metadata` in `@grpc-tower/core`) when the balancer
 * first sees the endpoint under its key.
 *
 * @internal
 * @module
 */
import type { Endpoint, EndpointMetadata, Readiness } from '@grpc-tower/core';
import type { Subscription } from 'rxjs';
import type { EndpointLoad } from './load/metric.js';
import type { GroupCandidate } from './pick/groups.js';
import type { PanicCandidate } from './pick/panic.js';
import type { ZoneCandidate } from './pick/zones.js';

/**
 * The role of an endpoint in the balancer:
 * - `active`: the endpoint of its key; picked when ready;
 * - `incoming`: inserted again under a known key; waits to be ready (at
 *   most `replaceWaitMs`), then replaces the active one (which drains);
 * - `draining`: removed or replaced; finishes its calls, then closes.
 *
 * @example
 * ```ts
 * const draining = balancer.stats().endpoints.filter((e) => e.role === 'draining').length;
 * ```
 */
export type EndpointRole = 'active' | 'incoming' | 'draining';

/** What weight 0 (an SRV record's "very small chance", RFC 2782) counts as. */
const ZERO_WEIGHT = 0.01;

/**
 * @internal The weight an insert asks for: a finite number > 0,
 * `ZERO_WEIGHT` for 0, else (absent or invalid) 1.
 *
 * @example
 * ```ts
 * weightOf({ weight: 0 }); // 0.01
 * ```
 */
export function weightOf(metadata: EndpointMetadata | undefined): number {
  const w: unknown = metadata?.weight;
  if (w === 0) return ZERO_WEIGHT;
  return typeof w === 'number' && Number.isFinite(w) && w > 0 ? w : 1;
}

/** The zone an insert says the endpoint runs in: a non-empty string, else none. */
function zoneOf(metadata: EndpointMetadata | undefined): string | undefined {
  const zone: unknown = metadata?.zone;
  return typeof zone === 'string' && zone.length > 0 ? zone : undefined;
}

/** Its topology hints: the zone names in `forZones`, or none when it names none (as kube-proxy reads hints). */
function forZonesOf(metadata: EndpointMetadata | undefined): readonly string[] | undefined {
  const forZones: unknown = metadata?.forZones;
  if (!Array.isArray(forZones)) return undefined;
  const names = forZones.filter((z): z is string => typeof z === 'string' && z.length > 0);
  return names.length > 0 ? names : undefined;
}

/** Its priority level: an integer ≥ 0, else 0 (the highest). */
function priorityOf(metadata: EndpointMetadata | undefined): number {
  const p: unknown = metadata?.priority;
  return typeof p === 'number' && Number.isSafeInteger(p) && p >= 0 ? p : 0;
}

/** Its group: a non-empty string, else `''` (no group). */
function groupOf(metadata: EndpointMetadata | undefined): string {
  const g: unknown = metadata?.group;
  return typeof g === 'string' ? g : '';
}

/** Its group's weight: a finite number > 0, else 1. */
function groupWeightOf(metadata: EndpointMetadata | undefined): number {
  const w: unknown = metadata?.groupWeight;
  return typeof w === 'number' && Number.isFinite(w) && w > 0 ? w : 1;
}

/**
 * @internal One endpoint as the balancer tracks it: its key, role,
 * readiness as last seen, placement, load state and pick counters.
 *
 * @example
 * ```ts
 * const slot = new Slot('a', endpoint, pendingRequests().create(endpoint, 0), 'active', { weight: 2 });
 * slot.picks++;
 * ```
 */
export class Slot<K, Req, Res> implements PanicCandidate, ZoneCandidate, GroupCandidate {
  /** Position in the ready set, -1 when not in it (managed by `ReadySet`). */
  readyIndex = -1;
  readonly address: string;
  readiness: Readiness;
  role: EndpointRole;
  /** Calls the balancer sent to it. */
  picks = 0;
  /** Of those, the calls that failed (not by the caller's own cancellation). */
  failures = 0;
  readySince = 0;
  /** Its share among equally loaded endpoints: the insert's `weight` when valid (see `weightOf`), else 1. */
  readonly weight: number;
  /** The insert's zone (see `zoneOf`), fixed when the balancer first sees the endpoint. */
  readonly zone: string | undefined;
  /** The insert's topology hints (see `forZonesOf`), fixed when the balancer first sees the endpoint. */
  readonly forZones: readonly string[] | undefined;
  /** The insert's priority level (see `priorityOf`), fixed when the balancer first sees the endpoint. */
  readonly priority: number;
  /** The insert's group (see `groupOf`) and its weight (see `groupWeightOf`), fixed when first seen. */
  readonly group: string;
  readonly groupWeight: number;
  /** Its pass in the picker's stride scheduling (ties between equal costs). */
  pass = 0;
  sub: Subscription | undefined;
  closing: Promise<void> | undefined;
  /** While incoming: the bound of the wait for it to be ready. */
  replaceTimer: ReturnType<typeof setTimeout> | undefined;
  /** The connection attempt `EndpointSet.reconnect` asked it for, until it ends. */
  reconnect: Promise<void> | undefined;

  constructor(
    readonly key: K,
    readonly endpoint: Endpoint<Req, Res>,
    readonly load: EndpointLoad,
    role: EndpointRole,
    metadata: EndpointMetadata | undefined,
  ) {
    this.address = endpoint.address;
    this.weight = weightOf(metadata);
    this.zone = zoneOf(metadata);
    this.forZones = forZonesOf(metadata);
    this.priority = priorityOf(metadata);
    this.group = groupOf(metadata);
    this.groupWeight = groupWeightOf(metadata);
    this.readiness = endpoint.readiness;
    this.role = role;
  }

  /** Whether its connection is up, even when a health check holds it out. */
  get connected(): boolean {
    return this.endpoint.connected ?? this.readiness === 'ready';
  }
}
