/**
 * PeakEWMA load, as designed for Finagle and used by Linkerd and tower's
 * `PeakEwma`: a moving average of round-trip times that is raised at once
 * by any sample above it (peak-sensitive), decays with a time constant, and
 * is multiplied by the calls in flight plus one. The defaults (30 ms seed,
 * 10 s decay, 1 ms floor) are Linkerd's and Finagle's.
 *
 * Two refinements over the classic form, each measured in the bench:
 *
 * - **A peak forgets on its own, faster clock.** The estimate is the larger
 *   of the time-weighted average of the samples (10 s time constant) and the
 *   last peak, which decays with `peakDecayMs` (1 s). One stall of a fast
 *   server (a GC pause, a descheduled process) then costs it traffic for
 *   about a second, not for the ten the average needs to come back down,
 *   while a server that stays slow keeps an average that says so.
 * - **An endpoint that has not answered yet is taken to be like its peers.**
 *   Until its first sample its estimate is the running average of every
 *   endpoint's samples (the 30 ms seed only while none has answered), so
 *   endpoints connected at the same time all get their first calls instead
 *   of losing every comparison to the first one that answered.
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
  /** The decay time constant of the average, in ms; default 10 000 (Finagle, Linkerd). */
  readonly decayMs?: number;
  /**
   * The decay time constant of a peak (a sample above the estimate), in ms;
   * at most `decayMs`. Default 1000: a transient stall is forgotten within
   * seconds. Set it equal to `decayMs` for the classic PeakEWMA, whose peak
   * decays with the average.
   */
  readonly peakDecayMs?: number;
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
  const peakDecayMs = check.number(
    'peakDecayMs',
    options.peakDecayMs,
    { min: 0, max: decayMs, exclusive: true },
    Math.min(1_000, decayMs),
  );
  const floorMs = check.number('floorMs', options.floorMs, { min: 0 }, 1);
  const deadlineRule = deadlineRuleOptions(check, options);
  // A running average of the successful samples of every endpoint of this
  // metric: an endpoint that has not answered yet is estimated there, not
  // at the fixed seed, once its peers have answered (see `defaultRttMs`).
  const peers: PeerAverage = { rtt: undefined, seed: defaultRttMs };
  const clocks: Clocks = { decayMs, peakDecayMs, floorMs };
  return {
    name: 'peak-ewma',
    create: (endpoint, now) => new PeakEwmaLoad(endpoint, now, clocks, peers, deadlineRule),
  };
}

interface PeerAverage {
  rtt: number | undefined;
  readonly seed: number;
}

interface Clocks {
  readonly decayMs: number;
  readonly peakDecayMs: number;
  readonly floorMs: number;
}

/** Weight of one sample in the peers' running average. */
const PEER_WEIGHT = 0.05;

/** The PeakEWMA state of one endpoint. */
class PeakEwmaLoad implements EndpointLoad {
  readonly #endpoint: LoadSubject;
  readonly #clocks: Clocks;
  readonly #peers: PeerAverage;
  readonly #deadlineRule: DeadlineRule;
  /** The time-weighted average of the samples, as of `#stamp`. */
  #mean = 0;
  #stamp: number;
  /** The last peak, as of `#peakStamp`. */
  #peak = 0;
  #peakStamp: number;
  #sampled = false;

  constructor(
    endpoint: LoadSubject,
    now: number,
    clocks: Clocks,
    peers: PeerAverage,
    deadlineRule: DeadlineRule,
  ) {
    this.#endpoint = endpoint;
    this.#clocks = clocks;
    this.#peers = peers;
    this.#deadlineRule = deadlineRule;
    this.#stamp = now;
    this.#peakStamp = now;
  }

  observe(rttMs: number, now: number, failed: boolean, deadline = false): void {
    if (!(rttMs >= 0)) return;
    // the caller's deadline cut the call short: a sample only after a fair chance
    if (
      failed &&
      deadline &&
      !deadlineHadFairChance(rttMs, this.#sampled ? this.estimateMs(now) : undefined, this.#deadlineRule)
    ) {
      return;
    }
    if (!failed) {
      const peers = this.#peers.rtt;
      this.#peers.rtt = peers === undefined ? rttMs : peers + (rttMs - peers) * PEER_WEIGHT;
    }
    if (!this.#sampled) {
      if (failed) {
        // no answer yet: a failure may raise the estimate as a peak, above what the peers suggest
        if (rttMs > this.#peakAt(now)) {
          this.#peak = rttMs;
          this.#peakStamp = now;
        }
        return;
      }
      this.#sampled = true;
      this.#mean = rttMs;
      this.#peak = rttMs;
      this.#stamp = now;
      this.#peakStamp = now;
      return;
    }
    if (rttMs > this.#peakAt(now)) {
      this.#peak = rttMs;
      this.#peakStamp = now;
    }
    // a failure may raise the estimate (as a peak), never lower the average
    if (failed && rttMs <= this.#mean) return;
    const elapsed = now - this.#stamp;
    const keep = elapsed > 0 ? Math.exp(-elapsed / this.#clocks.decayMs) : 1;
    this.#mean = this.#mean * keep + rttMs * (1 - keep);
    if (now > this.#stamp) this.#stamp = now;
  }

  #peakAt(now: number): number {
    const age = now - this.#peakStamp;
    return age > 0 ? this.#peak * Math.exp(-age / this.#clocks.peakDecayMs) : this.#peak;
  }

  estimateMs(now: number): number {
    if (!this.#sampled) return Math.max(this.#peers.rtt ?? this.#peers.seed, this.#peakAt(now));
    const idle = now - this.#stamp;
    const mean = idle > 0 ? this.#mean * Math.exp(-idle / this.#clocks.decayMs) : this.#mean;
    return Math.max(mean, this.#peakAt(now));
  }

  /** The calls in flight the last `cost()` counted (for the picker's tie rule). */
  pendingAtCost = 0;

  cost(now: number): number {
    const pending = this.#endpoint.pending;
    this.pendingAtCost = pending;
    return Math.max(this.estimateMs(now), this.#clocks.floorMs) * (pending + 1);
  }
}
