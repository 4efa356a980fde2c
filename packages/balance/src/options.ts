/**
 * The options that {@link p2c} and {@link roundRobin} share, and the one
 * place they are checked: a bad value throws a `ConfigError` that names the
 * balancer, the option and the value.
 *
 * @module
 */
import { type OptionChecks, POSITIVE_TIMER_RULE, TIMER_RULE, optionChecks } from '@grpc-tower/core/internal';

/**
 * Options shared by {@link p2c} and {@link roundRobin}.
 *
 * @example
 * ```ts
 * const options: BalancerOptions = { target: 'dns:orders:50051', failFastMs: 1000, drainGraceMs: 10_000 };
 * ```
 */
export interface BalancerOptions {
  /** The name of what is balanced, used in errors and stats, such as `'dns:orders:50051'`; default `'unnamed'`. */
  readonly target?: string;
  /**
   * How long a call waits for a ready endpoint when none is ready, in ms;
   * default 3000 (Linkerd's fail-fast). The call's deadline, when sooner,
   * ends the wait first. 0 fails at once.
   */
  readonly failFastMs?: number;
  /** Wait for a ready endpoint until the call's deadline or cancellation, with no fail-fast; default false. */
  readonly waitForReady?: boolean;
  /** The random source, uniform in [0, 1); default `Math.random`. Seed it for reproducible picks. */
  readonly random?: () => number;
  /** How long a removed or replaced endpoint may take to finish its calls, passed to its `close()`; default: the endpoint's own. */
  readonly drainGraceMs?: number;
  /**
   * When discovery inserts a new endpoint under a known key, how long the
   * old endpoint keeps serving while the new one is not ready yet, in ms;
   * default 10 000. The new one takes over as soon as it is ready, or as
   * soon as the old one stops being ready; past this wait it takes over
   * anyway and the old one drains, so an endpoint that never connects
   * cannot keep a replaced one open for ever. 0 replaces at once.
   */
  readonly replaceWaitMs?: number;
  /** How often `stats$` emits while nothing changes, in ms; default 1000. */
  readonly statsIntervalMs?: number;
  /**
   * Panic threshold in percent (Envoy, Finagle); default 50. When fewer
   * than this share of the known endpoints are ready, calls are balanced
   * across every endpoint whose connection is up (`endpoint.connected`),
   * including those a health check or outlier detection holds out, instead
   * of piling onto the few ready ones or failing. 0 disables it.
   */
  readonly panicThresholdPercent?: number;
  /**
   * Leave out of each call's round-trip time the time this process's event
   * loop was blocked while the call was in flight (a GC pause, a long
   * synchronous task); default true. The load metric then sees the
   * servers' latency rather than the client's own pauses, which would
   * otherwise be charged to whichever endpoints had calls in flight. Only
   * for load metrics that use round-trip times (not `pendingRequests()`,
   * nor `roundRobin`). See the balancing guide, "Client pauses".
   */
  readonly excludeLoopBlocks?: boolean;
  /**
   * Zone-aware routing (Envoy's, with Kubernetes topology hints), off by
   * default: calls stay in this client's zone while it has enough ready
   * capacity for its share of the clients, and spill over to the other
   * zones in proportion to their spare capacity when it does not. Reads
   * each endpoint's `zone` and `forZones` (`Insert.metadata`, on the
   * insert beside the endpoint). See {@link ZoneRoutingOptions} and the balancing
   * guide, "Zone-aware routing".
   */
  readonly zones?: ZoneRoutingOptions;
  /**
   * The ready share, in percent, a priority level needs to take calls;
   * default 0: one ready endpoint is enough, as gRPC's priority policy.
   * When the endpoints carry several priorities (`EndpointMetadata.priority`, 0
   * the highest), calls go to the highest level whose ready share meets
   * it, else to the highest level with a ready endpoint; they fail over
   * and back as readiness changes. 72 fails over about where Envoy's
   * priority levels start to spill (1 ÷ 1.4, its overprovisioning factor).
   * See the balancing guide, "Priorities".
   */
  readonly priorityReadyPercent?: number;
}

/**
 * The options of zone-aware routing ({@link BalancerOptions.zones}). The
 * routing is re-decided on every membership or readiness change, never
 * per call; it is published as {@link ZoneRouting} in `stats().zones`,
 * `balancer.zoneRouting` and a `zones` event.
 *
 * @example
 * ```ts
 * const balancer = p2c(endpoints, {
 *   zones: { local: process.env.ZONE ?? 'eu-west-1a', clientShares: { 'eu-west-1a': 2, 'eu-west-1b': 1 } },
 * });
 * ```
 */
export interface ZoneRoutingOptions {
  /** This client's zone, such as its node's `topology.kubernetes.io/zone`; required. */
  readonly local: string;
  /**
   * Below this many known endpoints (all zones, ready or not), zone-aware
   * routing is off and calls go to every zone; default 6 (Envoy's
   * `min_cluster_size`). An integer ≥ 0.
   */
  readonly minEndpoints?: number;
  /**
   * The share of this service's clients in each zone: any positive
   * numbers, normalised (`{ a: 2, b: 1 }` is two thirds in `a`); it must
   * give the local zone a share, and a zone left out has none. Default:
   * equal shares for every zone that has a known endpoint.
   */
  readonly clientShares?: Readonly<Record<string, number>>;
  /**
   * Honour topology hints (`Insert.metadata.forZones`) as kube-proxy does: when
   * every ready endpoint has hints and at least one is hinted for the
   * local zone, calls go only to those; default true.
   */
  readonly hints?: boolean;
}

/**
 * @internal Validated balancer options, every default filled in.
 *
 * @example
 * ```ts
 * const resolved: ResolvedOptions = resolveOptions('p2c', discover, { target: 'orders' });
 * resolved.replaceWaitMs; // 10000
 * ```
 */
export interface ResolvedOptions {
  readonly target: string;
  readonly failFastMs: number;
  readonly waitForReady: boolean;
  readonly random: () => number;
  readonly drainGraceMs: number | undefined;
  readonly replaceWaitMs: number;
  readonly statsIntervalMs: number;
  readonly panicThresholdPercent: number;
  readonly excludeLoopBlocks: boolean;
  /** Zone-aware routing, or `undefined` when off. */
  readonly zones: ResolvedZones | undefined;
  readonly priorityReadyPercent: number;
}

/**
 * @internal Validated zone-aware routing options, defaults filled in.
 *
 * @example
 * ```ts
 * const zones: ResolvedZones = { local: 'a', minEndpoints: 6, clientShares: undefined, hints: true };
 * ```
 */
export interface ResolvedZones {
  readonly local: string;
  readonly minEndpoints: number;
  /** The client shares normalised to sum to 1, or `undefined`: equal shares of the zones with a known endpoint. */
  readonly clientShares: ReadonlyMap<string, number> | undefined;
  readonly hints: boolean;
}

/**
 * @internal Checks the shared options; throws `ConfigError` naming `where`,
 * the option and the value.
 *
 * @example
 * ```ts
 * resolveOptions('p2c', discover, { failFastMs: -1 }); // ConfigError: p2c: option "failFastMs" ...
 * ```
 */
export function resolveOptions(where: string, discover: unknown, options: BalancerOptions): ResolvedOptions {
  const check = optionChecks(where);
  if (typeof (discover as { subscribe?: unknown } | null)?.subscribe !== 'function') {
    throw check.error('discover', discover, 'an Observable of Change (insert/remove) values');
  }
  check.object('options', options);
  const target = check.string('target', options.target, 'unnamed');
  // longer than a timer can wait is allowed: the call's signal ends such a wait
  const failFastMs = check.number('failFastMs', options.failFastMs, { min: 0 }, 3000);
  const waitForReady = check.boolean('waitForReady', options.waitForReady, false);
  const random = check.function<() => number>(
    'random',
    options.random,
    'a function returning [0, 1)',
    Math.random,
  );
  const drainGraceMs =
    options.drainGraceMs === undefined
      ? undefined
      : check.number('drainGraceMs', options.drainGraceMs, { min: 0 });
  const replaceWaitMs = check.number('replaceWaitMs', options.replaceWaitMs, TIMER_RULE, 10_000);
  const statsIntervalMs = check.number('statsIntervalMs', options.statsIntervalMs, POSITIVE_TIMER_RULE, 1000);
  const panicThresholdPercent = check.number(
    'panicThresholdPercent',
    options.panicThresholdPercent,
    { min: 0, max: 100 },
    50,
  );
  const excludeLoopBlocks = check.boolean('excludeLoopBlocks', options.excludeLoopBlocks, true);
  const zones = options.zones === undefined ? undefined : resolveZones(check, options.zones);
  const priorityReadyPercent = check.number(
    'priorityReadyPercent',
    options.priorityReadyPercent,
    { min: 0, max: 100 },
    0,
  );
  return {
    target,
    failFastMs,
    waitForReady,
    random,
    drainGraceMs,
    replaceWaitMs,
    statsIntervalMs,
    panicThresholdPercent,
    excludeLoopBlocks,
    zones,
    priorityReadyPercent,
  };
}

/** Checks `options.zones`, naming `zones.<field>` in its errors. */
function resolveZones(check: OptionChecks, value: ZoneRoutingOptions): ResolvedZones {
  const zones = check.object('zones', value);
  const local = check.string('zones.local', zones.local);
  const minEndpoints = check.number('zones.minEndpoints', zones.minEndpoints, { min: 0, integer: true }, 6);
  const hints = check.boolean('zones.hints', zones.hints, true);
  if (zones.clientShares === undefined) return { local, minEndpoints, clientShares: undefined, hints };
  const given = check.object('zones.clientShares', zones.clientShares);
  const clientShares = new Map<string, number>();
  let max = 0;
  for (const [zone, share] of Object.entries(given)) {
    if (zone.length === 0)
      throw check.error('zones.clientShares', given, 'zone names of at least one character');
    clientShares.set(zone, check.number(`zones.clientShares.${zone}`, share, { min: 0, exclusive: true }));
    max = Math.max(max, share);
  }
  if (!clientShares.has(local)) {
    throw check.error('zones.clientShares', given, `an object giving the local zone "${local}" a share`);
  }
  // normalised (scaled by the largest first, so that no sum overflows)
  let total = 0;
  for (const share of clientShares.values()) total += share / max;
  for (const [zone, share] of clientShares) clientShares.set(zone, share / max / total);
  return { local, minEndpoints, clientShares, hints };
}
