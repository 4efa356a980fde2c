/**
 * Passive health checking: outlier detection from call results, as in
 * Envoy's outlier detection and gRPC A50 ("xDS Outlier Detection
 * Support"). A detector is shared by a set of endpoints; each endpoint it
 * wraps reports the outcome of every call, and the detector ejects the
 * endpoints that fail. An ejected endpoint reports `failed`, so a balancer
 * that picks only `ready` endpoints stops sending to it; it returns by
 * itself when its time is up.
 *
 * The rules:
 * - consecutive failures (Envoy's `consecutive_5xx` with gRPC codes): the
 *   N-th failed call in a row ejects at once; any other outcome resets
 *   the count;
 * - success rate and failure percentage (A50), evaluated every
 *   `intervalMs` over the calls of the last interval, when configured;
 * - an ejection lasts `baseEjectionTimeMs × multiplier`, capped at
 *   `max(baseEjectionTimeMs, maxEjectionTimeMs)`; each ejection raises the
 *   multiplier by one and every interval spent in rotation lowers it by one
 *   (A50), so a server that fails again soon stays out longer, and one that
 *   recovered is forgiven over time;
 * - at most `maxEjectionPercent` of the known endpoints are ejected at
 *   once, but always at least one (A50): one bad minute cannot empty the
 *   pool.
 *
 * What counts (the "signals" contract: decisions rest on what a server or
 * a connection produced): a status the server sent, and a failure of the
 * connection or the stream below gRPC (connect failure, reset, refused
 * stream), each judged by `failureCodes`. A call the caller cancelled or a
 * layer above stopped, and an error raised in this process (a request
 * grpc-js could not start, such as one with a connection-specific header; a
 * draining endpoint) count as neither success nor failure. A deadline
 * (`DEADLINE_EXCEEDED`, from the call's own timer or from the server
 * enforcing the `grpc-timeout` the call sent) counts only when the endpoint
 * had a fair chance to answer: the call had been on it for at least
 * `deadlineMinMs` (1 s), or for at least `deadlineLatencyFactor` (10) times
 * its typical latency (a moving average of its successful calls, taken as
 * at least 10 ms). So a client whose deadlines are shorter than its
 * servers' latency ejects nothing, while a server that hangs past generous
 * deadlines, or answers ten times slower than it usually does, is ejected.
 * Envoy's `split_external_local_origin_errors` makes a similar split
 * between errors of the upstream and errors of the local origin.
 *
 * A response that resolved is read by the detector's `protocol`, the
 * protocol of the endpoint kind (core's `Protocol`): by default
 * `grpcProtocol` (a unary response's status, a stream's final status);
 * with `httpProtocol()` (or `httpOutcomes`), a 5xx response is a failure
 * (502, 503, 504 as `UNAVAILABLE`, the others as `INTERNAL`) and a 4xx is
 * not. Who produced a failure is the protocol's `origin`. Reading a whole
 * response allocates nothing.
 *
 * Deviation from A50: an endpoint returns by its own timer when its time is
 * up, not at the next sweep, so a short base time is honoured exactly.
 * State is kept per address, like A50's map, so an endpoint replaced under
 * the same address keeps its ejection and multiplier while the old and new
 * wrappers coexist.
 *
 * @module
 */
import { ClosedError, ConfigError, type Endpoint } from '@grpc-tower/core';
import { EventStream, deadlineHadFairChance, isEndpoint } from '@grpc-tower/core/internal';
import type { Observable } from 'rxjs';
import type { EjectionAlgorithm, EjectionUnenforced, HealthEvent } from '../events.js';
import { OutlierEndpoint, clock } from './endpoint.js';
import { Entry, type OutlierEndpointStats } from './entry.js';
import { GRPC_OUTCOMES, type OutcomeReader, outcomeReader } from './protocol.js';
import {
  type OutlierDetectionOptions,
  type ResolvedOutlierDetectionOptions,
  resolveOutlierOptions,
} from './options.js';

// what moved out of this module, still reachable through it
export { OutlierEndpoint } from './endpoint.js';
export type { OutlierEndpointStats } from './entry.js';

/**
 * A snapshot of a detector.
 *
 * @example
 * ```ts
 * const s = detector.stats();
 * console.log(`${s.ejected}/${s.known} ejected (at most ${s.maxEjected})`);
 * ```
 */
export interface OutlierStats {
  /** Addresses wrapped and not closed. */
  readonly known: number;
  /** Of those, ejected now. */
  readonly ejected: number;
  /** How many may be ejected at once now. */
  readonly maxEjected: number;
  readonly endpoints: readonly OutlierEndpointStats[];
}

/** Weight of one successful call in an endpoint's typical latency. */
const LATENCY_WEIGHT = 0.2;

/**
 * Creates an outlier detector. Wrap every endpoint of one balanced set
 * with the same detector (the ejection share is counted over them).
 * Throws `ConfigError` for a bad option.
 *
 * @example
 * ```ts
 * import * as grpc from '@grpc/grpc-js';
 * import { connect, dns } from '@grpc-tower/discover';
 * import { grpcEndpoint } from '@grpc-tower/core/grpc';
 * import { p2c } from '@grpc-tower/balance';
 *
 * const detector = outlierDetection({ consecutiveFailures: 5, baseEjectionTimeMs: 30_000 });
 * detector.events$.subscribe((e) => console.warn(e.type, e.endpoint, e));
 * const endpoints = connect(dns('orders.internal', 50051), (a) =>
 *   detector.wrap(grpcEndpoint(a.address, { credentials: grpc.credentials.createInsecure() })),
 * );
 * const balancer = p2c(endpoints, { target: 'orders' });
 * ```
 */
export function outlierDetection(options: OutlierDetectionOptions = {}): OutlierDetector {
  return new OutlierDetector(resolveOutlierOptions(options));
}

/**
 * The detector made by {@link outlierDetection}: wraps endpoints, counts
 * their call outcomes, ejects and returns them.
 *
 * @example
 * ```ts
 * const detector = outlierDetection({ baseEjectionTimeMs: 10_000 });
 * const ep = detector.wrap(grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() }));
 * // ...
 * detector.close();
 * ```
 */
export class OutlierDetector {
  /** The checked options with their defaults. */
  readonly options: ResolvedOutlierDetectionOptions;
  /** Ejections and returns (a hot stream); completes on `close()`. */
  readonly events$: Observable<HealthEvent>;
  readonly #events = new EventStream<HealthEvent>();
  readonly #entries = new Map<string, Entry>();
  /** How responses and failures are read: the protocol of the endpoint kind. */
  readonly #outcomes: OutcomeReader;
  #interval: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /** @internal use {@link outlierDetection}. */
  constructor(options: ResolvedOutlierDetectionOptions) {
    this.options = options;
    this.events$ = this.#events.events$;
    this.#outcomes = options.protocol === undefined ? GRPC_OUTCOMES : outcomeReader(options.protocol);
  }

  /**
   * Wraps `endpoint`: the wrapper passes calls through, reports each
   * call's outcome (a rejection's status code, or for a committed response
   * its final status from `done`, or what the `protocol` option reads in
   * it), and reports `failed` while ejected.
   * Closing the wrapper closes the endpoint and forgets it.
   *
   * @example
   * ```ts
   * const ep = detector.wrap(health(grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() })));
   * ```
   */
  wrap<Req, Res>(endpoint: Endpoint<Req, Res>): OutlierEndpoint<Req, Res> {
    if (this.#closed) throw new ClosedError('outlierDetection: the detector is closed');
    if (!isEndpoint(endpoint)) {
      throw new ConfigError(
        'outlierDetection.wrap',
        'endpoint',
        endpoint,
        'an Endpoint (address, call, close, readiness$)',
      );
    }
    let entry = this.#entries.get(endpoint.address);
    if (entry === undefined) {
      entry = new Entry(endpoint.address);
      this.#entries.set(entry.address, entry);
    }
    const e = entry;
    const wrapper: OutlierEndpoint<Req, Res> = new OutlierEndpoint(endpoint, {
      ejected: () => e.ejected,
      reason: () => e.reason,
      success: (elapsedMs) => this.#success(e, elapsedMs),
      failure: (reason) => this.#failure(e, reason),
      fairChance: (elapsedMs) => deadlineHadFairChance(elapsedMs, e.latencyMs, this.options.deadlineRule),
      detach: () => this.#detach(e, wrapper as OutlierEndpoint<unknown, unknown>),
      failureCodes: this.options.failureCodes,
      outcomes: this.#outcomes,
    });
    // an endpoint that was already closed detached itself while being built
    if (wrapper.readiness === 'closed') return wrapper;
    e.wrappers.add(wrapper as OutlierEndpoint<unknown, unknown>);
    this.#startInterval();
    return wrapper;
  }

  /** How many endpoints may be ejected at once now: the share of the known ones, but at least one. */
  get maxEjected(): number {
    return Math.max(1, Math.floor((this.#entries.size * this.options.maxEjectionPercent) / 100));
  }

  /** A snapshot of every known address. */
  stats(): OutlierStats {
    const endpoints = [...this.#entries.values()].map(
      (e): OutlierEndpointStats => ({
        address: e.address,
        ejected: e.ejected,
        multiplier: e.multiplier,
        ejections: e.ejections,
        consecutiveFailures: e.consecutive,
        successes: e.active.successes,
        failures: e.active.failures,
        typicalLatencyMs: e.latencyMs,
      }),
    );
    return {
      known: this.#entries.size,
      ejected: this.#ejectedCount(),
      maxEjected: this.maxEjected,
      endpoints,
    };
  }

  /**
   * Runs one analysis sweep now (the timer runs one every `intervalMs`):
   * starts a new counting interval, applies the success-rate and
   * failure-percentage rules to the one that ended, lowers the multiplier
   * of every endpoint in rotation by one, and returns endpoints whose time
   * is up.
   *
   * @example
   * ```ts
   * detector.sweep();
   * ```
   */
  sweep(): void {
    if (this.#closed) return;
    const now = clock();
    for (const e of this.#entries.values()) {
      e.inactive = e.active;
      e.active = { successes: 0, failures: 0 };
    }
    if (this.options.successRateEjection !== undefined) this.#successRate(now);
    if (this.options.failurePercentageEjection !== undefined) this.#failurePercentage(now);
    for (const e of this.#entries.values()) {
      if (!e.ejected) {
        if (e.multiplier > 0) e.multiplier--;
      } else if (now >= (e.ejectedAt as number) + e.durationMs) {
        this.#return(e, now);
      }
    }
  }

  /**
   * Stops the sweeps and the timers, returns every ejected endpoint to
   * rotation, and completes `events$`. Wrapped endpoints keep working as
   * plain pass-throughs; they are not closed. Idempotent.
   *
   * @example
   * ```ts
   * await balancer.close();
   * detector.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    const now = clock();
    for (const e of this.#entries.values()) if (e.ejected) this.#return(e, now);
    this.#closed = true;
    if (this.#interval !== undefined) {
      clearInterval(this.#interval);
      this.#interval = undefined;
    }
    this.#events.complete();
  }

  #startInterval(): void {
    if (this.#interval !== undefined || this.#closed) return;
    this.#interval = setInterval(() => this.sweep(), this.options.intervalMs);
    this.#interval.unref();
  }

  #ejectedCount(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.ejected) n++;
    return n;
  }

  #success(entry: Entry, elapsedMs: number): void {
    if (this.#closed) return;
    entry.active.successes++;
    entry.consecutive = 0;
    if (elapsedMs >= 0) {
      const latency = entry.latencyMs;
      entry.latencyMs = latency === undefined ? elapsedMs : latency + (elapsedMs - latency) * LATENCY_WEIGHT;
    }
  }

  #failure(entry: Entry, reason: string): void {
    if (this.#closed) return;
    entry.active.failures++;
    entry.consecutive++;
    entry.lastFailure = reason;
    const threshold = this.options.consecutiveFailures;
    if (threshold <= 0 || entry.consecutive < threshold || entry.ejected) return;
    if (!this.#canEject()) {
      // once per run of failures, not once per failure past the threshold
      if (entry.consecutive === threshold)
        this.#unenforced(entry, 'consecutive-failures', 'max-ejection-percent');
      return;
    }
    const n = entry.consecutive;
    this.#eject(
      entry,
      'consecutive-failures',
      `${n} consecutive failures, the last ${entry.lastFailure}`,
      clock(),
    );
  }

  #canEject(): boolean {
    return this.#ejectedCount() < this.maxEjected;
  }

  #unenforced(entry: Entry, algorithm: EjectionAlgorithm, because: EjectionUnenforced['because']): void {
    this.#events.emit(() => ({ type: 'unenforced', endpoint: entry.address, algorithm, because }));
  }

  /** Whether an outlier found by `rule` is ejected now; reports it when it is not. */
  #enforce(entry: Entry, algorithm: EjectionAlgorithm, enforcementPercentage: number): boolean {
    if (!this.#canEject()) {
      this.#unenforced(entry, algorithm, 'max-ejection-percent');
      return false;
    }
    if (this.options.random() * 100 >= enforcementPercentage) {
      this.#unenforced(entry, algorithm, 'enforcement-percentage');
      return false;
    }
    return true;
  }

  #eject(entry: Entry, algorithm: EjectionAlgorithm, reason: string, now: number): void {
    const { baseEjectionTimeMs: base, maxEjectionTimeMs } = this.options;
    entry.multiplier++;
    entry.ejections++;
    entry.ejectedAt = now;
    entry.reason = reason;
    entry.durationMs = Math.min(base * entry.multiplier, Math.max(base, maxEjectionTimeMs));
    entry.consecutive = 0;
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.#return(entry, clock());
    }, entry.durationMs);
    entry.timer.unref();
    for (const w of entry.wrappers) w.refresh(); // readiness first, then the event
    this.#events.emit(() => ({
      type: 'ejected',
      endpoint: entry.address,
      algorithm,
      reason,
      durationMs: entry.durationMs,
      count: entry.multiplier,
    }));
  }

  #return(entry: Entry, now: number): void {
    if (entry.ejectedAt === undefined) return;
    const ejectedMs = Math.round(now - entry.ejectedAt);
    entry.ejectedAt = undefined;
    entry.consecutive = 0;
    if (entry.timer !== undefined) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
    for (const w of entry.wrappers) w.refresh();
    this.#events.emit(() => ({ type: 'returned', endpoint: entry.address, ejectedMs }));
  }

  #detach(entry: Entry, wrapper: OutlierEndpoint<unknown, unknown>): void {
    entry.wrappers.delete(wrapper);
    if (entry.wrappers.size > 0 || this.#entries.get(entry.address) !== entry) return;
    this.#entries.delete(entry.address);
    if (entry.timer !== undefined) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
    if (this.#entries.size === 0 && this.#interval !== undefined) {
      clearInterval(this.#interval);
      this.#interval = undefined;
    }
  }

  /** A50's success-rate rule over the interval that just ended. */
  #successRate(now: number): void {
    const rule = this.options.successRateEjection!;
    const judged = [...this.#entries.values()].filter(
      (e) => e.inactive.successes + e.inactive.failures >= rule.requestVolume,
    );
    if (judged.length < rule.minimumHosts || judged.length === 0) return;
    const rates = judged.map((e) => e.inactive.successes / (e.inactive.successes + e.inactive.failures));
    const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
    const variance = rates.reduce((a, r) => a + (r - mean) ** 2, 0) / rates.length;
    const stdev = Math.sqrt(variance);
    const threshold = mean - (stdev * rule.stdevFactor) / 1000;
    judged.forEach((e, i) => {
      const rate = rates[i]!;
      if (e.ejected || rate >= threshold) return;
      if (!this.#enforce(e, 'success-rate', rule.enforcementPercentage)) return;
      const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
      this.#eject(
        e,
        'success-rate',
        `success rate ${pct(rate)} below ${pct(threshold)} (mean ${pct(mean)}, stdev ${pct(stdev)})`,
        now,
      );
    });
  }

  /** A50's failure-percentage rule over the interval that just ended. */
  #failurePercentage(now: number): void {
    const rule = this.options.failurePercentageEjection!;
    if (this.#entries.size < rule.minimumHosts) return;
    for (const e of [...this.#entries.values()]) {
      const volume = e.inactive.successes + e.inactive.failures;
      if (e.ejected || volume < rule.requestVolume) continue;
      const failedPct = (e.inactive.failures / volume) * 100;
      if (failedPct < rule.threshold) continue;
      if (!this.#enforce(e, 'failure-percentage', rule.enforcementPercentage)) continue;
      this.#eject(
        e,
        'failure-percentage',
        `${failedPct.toFixed(1)} % of ${volume} calls failed (threshold ${rule.threshold} %)`,
        now,
      );
    }
  }
}
