/**
 * PeakEWMA load, as designed for Finagle and used by Linkerd and tower's
 * `PeakEwma`: a moving average of round-trip times that jumps to any sample
 * above it (peak-sensitive), decays toward lower samples with a time
 * constant, and is multiplied by the calls in flight plus one. The defaults
 * (30 ms seed, 10 s decay, 1 ms floor) are Linkerd's and Finagle's.
 *
 * @module
 */
import {
  type DeadlineRule,
  deadlineHadFairChance,
  deadlineRuleOptions,
  optionChecks,
} from '@grpc-tower/core/internal';
import type { EndpointLoad, LoadMetric, LoadSubject } from './metric.js';

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
  /**
   * A call that failed at its deadline may raise the estimate only when it
   * had been on the endpoint at least this long, in ms (≥ 0), or
   * `deadlineLatencyFactor` × the estimate; default 1000 (the outlier
   * detector's rule).
   */
  readonly deadlineMinMs?: number;
  /** ...or at least this many times (≥ 1) the endpoint's own estimate (taken as at least 10 ms); default 10. */
  readonly deadlineLatencyFactor?: number;
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
 *   every call), while a call that hung until a generous deadline still
 *   counts as slow. Only failures the endpoint produced count (the
 *   balancer does not report cancelled calls or errors raised in this
 *   process), and a call that ended at its deadline raises the average
 *   only when the endpoint had a fair chance: it had been there for at
 *   least `deadlineMinMs` (1 s), or `deadlineLatencyFactor` (10) times the
 *   endpoint's own estimate from its answers (taken as at least 10 ms). A
 *   caller's 2 ms deadline says nothing about a 20 ms server;
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
  const check = optionChecks('peakEwma');
  check.object('options', options);
  const defaultRttMs = check.number('defaultRttMs', options.defaultRttMs, { min: 0 }, 30);
  const decayMs = check.number('decayMs', options.decayMs, { min: 0, exclusive: true }, 10_000);
  const floorMs = check.number('floorMs', options.floorMs, { min: 0 }, 1);
  const deadlineRule = deadlineRuleOptions(check, options);
  // A running average of the successful samples of every endpoint of this
  // metric: a new endpoint starts there, not at the fixed seed, once its
  // peers have answered (see `defaultRttMs`).
  const peers: PeerAverage = { rtt: undefined };
  return {
    name: 'peak-ewma',
    create: (endpoint, now) =>
      new PeakEwmaLoad(endpoint, now, peers.rtt ?? defaultRttMs, decayMs, floorMs, peers, deadlineRule),
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
  readonly #deadlineRule: DeadlineRule;

  constructor(
    endpoint: LoadSubject,
    now: number,
    rtt: number,
    decayMs: number,
    floorMs: number,
    peers: PeerAverage,
    deadlineRule: DeadlineRule,
  ) {
    this.#peers = peers;
    this.#deadlineRule = deadlineRule;
    this.#endpoint = endpoint;
    this.#rtt = rtt;
    this.#stamp = now;
    this.#decayMs = decayMs;
    this.#floorMs = floorMs;
  }

  observe(rttMs: number, now: number, failed: boolean, deadline = false): void {
    if (!(rttMs >= 0)) return;
    // the caller's deadline cut the call short: a sample only after a fair chance
    if (
      failed &&
      deadline &&
      !deadlineHadFairChance(rttMs, this.#sampled ? this.#rtt : undefined, this.#deadlineRule)
    ) {
      return;
    }
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
