/**
 * Load metrics: how a balancer compares two endpoints. Each endpoint gets
 * its own {@link EndpointLoad} state; the balancer asks it for a `cost`
 * when the endpoint is one of the two candidates of a pick, and reports
 * each call's round-trip time to it.
 *
 * Two metrics are built in:
 * - {@link pendingRequests}: the endpoint's calls in flight (least-request,
 *   as in Envoy and tower's `PendingRequests`).
 * - {@link peakEwma}: Finagle's and Linkerd's PeakEWMA (also tower's
 *   `PeakEwma`): a moving average of round-trip times that jumps to any
 *   sample above it (peak-sensitive), decays toward lower samples with a
 *   time constant, and is multiplied by the calls in flight plus one.
 *
 * "In flight" is the endpoint's own `pending` count (the
 * `Endpoint` contract). For a gRPC endpoint a
 * stream stays pending until its status arrives, which is a truer measure of
 * the work it puts on the server than counting only until the balancer's
 * promise settles; it also sees calls that reached the endpoint through
 * another path.
 *
 * @module
 */
import { ConfigError } from '@grpc-tower/core';

/**
 * What a load metric sees of an endpoint: its address and its calls in
 * flight.
 *
 * @example
 * ```ts
 * const subject: LoadSubject = { address: '127.0.0.2:50051', pending: 3 };
 * ```
 */
export interface LoadSubject {
  readonly address: string;
  /** Calls started on the endpoint and not yet finished. */
  readonly pending: number;
}

/**
 * The load state of one endpoint, made by a {@link LoadMetric}.
 *
 * Times are milliseconds on one monotonic clock (`performance.now()` in
 * the balancer), passed in so that the state is easy to test.
 *
 * @example
 * ```ts
 * const load = peakEwma().create({ address: 'a:1', pending: 0 }, performance.now());
 * load.observe(12, performance.now(), false);
 * load.cost(performance.now()); // about 12: the first sample replaced the 30 ms seed
 * ```
 */
export interface EndpointLoad {
  /** The endpoint's cost at `now`: of two candidates, the lower cost is picked. */
  cost(now: number): number;
  /**
   * A call on the endpoint settled `rttMs` after it started; `failed` when
   * it settled with an error. For a streaming call the balancer's promise
   * settles at the first response (the commit point), so `rttMs` is the
   * time to the first response. Unless the balancer was created with
   * `excludeLoopBlocks: false`, `rttMs` leaves out the time this process's
   * event loop was blocked while the call was in flight.
   */
  observe(rttMs: number, now: number, failed: boolean): void;
  /** The current round-trip estimate in ms for stats, or `undefined` when the metric keeps none. */
  estimateMs(now: number): number | undefined;
}

/**
 * A load metric: makes the load state of each endpoint.
 *
 * @example
 * ```ts
 * // the least recently used endpoint wins
 * const lru: LoadMetric = {
 *   name: 'lru',
 *   create: () => {
 *     let last = 0;
 *     return { cost: () => last, observe: (_rtt, now) => { last = now; }, estimateMs: () => undefined };
 *   },
 * };
 * ```
 */
export interface LoadMetric {
  /** A short name for stats and benchmarks, such as `'peak-ewma'`. */
  readonly name: string;
  /** Creates the state of a new endpoint, at time `now`. */
  create(endpoint: LoadSubject, now: number): EndpointLoad;
  /**
   * Whether `observe` uses the round-trip time; default true. A metric that
   * ignores it says `false`, and the balancer then skips the work of
   * measuring it without the client's event-loop blocks.
   */
  readonly usesRoundTripTimes?: boolean;
}

/**
 * A load function: the cost of an endpoint, computed from what the balancer
 * knows of it. The simplest way to plug in your own load.
 *
 * @example
 * ```ts
 * const squaredPending: LoadFunction = (ep) => ep.pending * ep.pending;
 * const balancer = p2c(discover, { load: squaredPending });
 * ```
 */
export type LoadFunction = (endpoint: LoadSubject) => number;

/**
 * Least-request load: the cost of an endpoint is its calls in flight.
 *
 * @example
 * ```ts
 * const balancer = p2c(discover, { load: pendingRequests() });
 * ```
 */
export function pendingRequests(): LoadMetric {
  return {
    name: 'pending-requests',
    usesRoundTripTimes: false,
    create: (endpoint) => ({
      cost: () => endpoint.pending,
      observe: () => undefined,
      estimateMs: () => undefined,
    }),
  };
}

/**
 * Options of {@link peakEwma}.
 *
 * @example
 * ```ts
 * const options: PeakEwmaOptions = { defaultRttMs: 30, decayMs: 10_000, floorMs: 1 };
 * ```
 */
export interface PeakEwmaOptions {
  /** The round-trip estimate a new endpoint starts with, in ms; default 30 (Linkerd). */
  readonly defaultRttMs?: number;
  /** The decay time constant in ms; default 10 000 (Finagle, Linkerd). */
  readonly decayMs?: number;
  /** The least estimate used in the cost, in ms; default 1 (Finagle's floor). */
  readonly floorMs?: number;
}

/**
 * PeakEWMA load (Finagle, Linkerd, tower): the cost of an endpoint is
 * `max(rtt, floorMs) × (pending + 1)`, where `rtt` is an exponentially
 * weighted moving average of its round-trip times with these rules:
 *
 * - a new endpoint starts at `defaultRttMs`, and its first successful
 *   sample replaces that seed outright: the seed only ranks an endpoint that
 *   has not answered yet (with tower's rule, a 2 ms server seeded at 30 ms
 *   takes tens of seconds of traffic to look fast, because every sample's
 *   weight is tied to elapsed time);
 * - a sample above the average replaces it at once (peak-sensitive: a slow
 *   endpoint is avoided after one slow call);
 * - a sample below it pulls the average toward it with weight
 *   `1 - exp(-elapsed / decayMs)`, where `elapsed` is the time since the
 *   previous sample: the weight depends on time, not on the rate of calls,
 *   and after a long pause a fresh sample counts for most of the average;
 * - a failed call can raise the average but never lower it: an endpoint
 *   that fails fast must not look fast (the "black hole" that attracts
 *   every call), while a call that timed out still counts as slow;
 * - the cost uses the average decayed toward zero by the time since the
 *   last sample (`× exp(-idle / decayMs)`), so that an endpoint that stopped
 *   getting calls because it was slow is tried again after a while and can
 *   show that it recovered. Under steady traffic `idle` is the gap between
 *   two calls and the decay is negligible; unlike tower and Finagle, which
 *   store this decay on every read, the stored average is left alone, so it
 *   converges to the observed round-trip time instead of below it.
 *
 * @example
 * ```ts
 * const balancer = p2c(discover, { load: peakEwma({ defaultRttMs: 30, decayMs: 10_000 }) });
 * ```
 */
export function peakEwma(options: PeakEwmaOptions = {}): LoadMetric {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('peakEwma', 'options', options, 'an object');
  }
  const defaultRttMs = options.defaultRttMs ?? 30;
  const decayMs = options.decayMs ?? 10_000;
  const floorMs = options.floorMs ?? 1;
  if (!Number.isFinite(defaultRttMs) || defaultRttMs < 0) {
    throw new ConfigError('peakEwma', 'defaultRttMs', defaultRttMs, 'a finite number >= 0');
  }
  if (!Number.isFinite(decayMs) || decayMs <= 0) {
    throw new ConfigError('peakEwma', 'decayMs', decayMs, 'a finite number > 0');
  }
  if (!Number.isFinite(floorMs) || floorMs < 0) {
    throw new ConfigError('peakEwma', 'floorMs', floorMs, 'a finite number >= 0');
  }
  // A running average of the successful samples of every endpoint of this
  // metric: a new endpoint starts there, not at the fixed seed, once its
  // peers have answered (see `defaultRttMs`).
  const peers: PeerAverage = { rtt: undefined };
  return {
    name: 'peak-ewma',
    create: (endpoint, now) =>
      new PeakEwmaLoad(endpoint, now, peers.rtt ?? defaultRttMs, decayMs, floorMs, peers),
  };
}

interface PeerAverage {
  rtt: number | undefined;
}

/** Weight of one sample in the peers' running average. */
const PEER_WEIGHT = 0.05;

/** The PeakEWMA state of one endpoint. */
class PeakEwmaLoad implements EndpointLoad {
  readonly #endpoint: LoadSubject;
  readonly #decayMs: number;
  readonly #floorMs: number;
  /** The estimate as of `#stamp`. */
  #rtt: number;
  #stamp: number;
  #sampled = false;
  readonly #peers: PeerAverage;

  constructor(
    endpoint: LoadSubject,
    now: number,
    rtt: number,
    decayMs: number,
    floorMs: number,
    peers: PeerAverage,
  ) {
    this.#peers = peers;
    this.#endpoint = endpoint;
    this.#rtt = rtt;
    this.#stamp = now;
    this.#decayMs = decayMs;
    this.#floorMs = floorMs;
  }

  observe(rttMs: number, now: number, failed: boolean): void {
    if (!(rttMs >= 0)) return;
    if (!failed) {
      const peers = this.#peers.rtt;
      this.#peers.rtt = peers === undefined ? rttMs : peers + (rttMs - peers) * PEER_WEIGHT;
    }
    if (!this.#sampled && !failed) {
      // the seed only ranked an endpoint that had not answered yet
      this.#sampled = true;
      this.#rtt = rttMs;
    } else if (rttMs > this.#rtt) {
      this.#rtt = rttMs;
    } else if (failed) {
      return;
    } else {
      const elapsed = now - this.#stamp;
      const keep = elapsed > 0 ? Math.exp(-elapsed / this.#decayMs) : 1;
      this.#rtt = this.#rtt * keep + rttMs * (1 - keep);
    }
    if (now > this.#stamp) this.#stamp = now;
  }

  estimateMs(now: number): number {
    const idle = now - this.#stamp;
    return idle > 0 ? this.#rtt * Math.exp(-idle / this.#decayMs) : this.#rtt;
  }

  cost(now: number): number {
    const rtt = this.estimateMs(now);
    return Math.max(rtt, this.#floorMs) * (this.#endpoint.pending + 1);
  }
}

/**
 * Turns a {@link LoadFunction} into a {@link LoadMetric}.
 *
 * @example
 * ```ts
 * const metric = loadFunction((ep) => ep.pending, 'pending');
 * ```
 */
export function loadFunction(fn: LoadFunction, name = 'custom'): LoadMetric {
  if (typeof fn !== 'function') throw new ConfigError('loadFunction', 'fn', fn, 'a function');
  return {
    name,
    usesRoundTripTimes: false,
    create: (endpoint) => ({
      cost: () => fn(endpoint),
      observe: () => undefined,
      estimateMs: () => undefined,
    }),
  };
}
