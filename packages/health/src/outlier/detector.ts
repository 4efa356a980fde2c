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
import {
  type CallContext,
  ClosedError,
  ConfigError,
  DelegatingEndpoint,
  type Endpoint,
  type Readiness,
  type ResponseStatus,
  Status,
  statusName,
  toGrpcTowerError,
} from '@grpc-tower/core';
import { EventStream, deadlineHadFairChance, isEndpoint } from '@grpc-tower/core/internal';
import { BehaviorSubject, type Observable, type Subscription, distinctUntilChanged } from 'rxjs';
import type { EjectionAlgorithm, EjectionUnenforced, HealthEvent } from '../events.js';
import { connectedOf } from '../pick/connected.js';
import { GRPC_OUTCOMES, type OutcomeReader, outcomeReader } from './protocol.js';
import {
  type OutlierDetectionOptions,
  type ResolvedOutlierDetectionOptions,
  resolveOutlierOptions,
} from './options.js';

/**
 * One address in {@link OutlierStats}.
 *
 * @example
 * ```ts
 * for (const e of detector.stats().endpoints) if (e.ejected) console.log(e.address, e.multiplier);
 * ```
 */
export interface OutlierEndpointStats {
  readonly address: string;
  /** Whether it is ejected now. */
  readonly ejected: boolean;
  /** The ejection multiplier (times ejected, decayed by healthy intervals). */
  readonly multiplier: number;
  /** Ejections since it was first wrapped. */
  readonly ejections: number;
  /** Failed calls in a row so far. */
  readonly consecutiveFailures: number;
  /** Successful calls in the current interval. */
  readonly successes: number;
  /** Failed calls in the current interval. */
  readonly failures: number;
  /** Its typical latency (moving average of its successful calls) in ms; `undefined` before one succeeded. */
  readonly typicalLatencyMs: number | undefined;
}

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

interface Bucket {
  successes: number;
  failures: number;
}

/** The state of one address (A50's map entry). */
class Entry {
  readonly wrappers = new Set<OutlierEndpoint<unknown, unknown>>();
  consecutive = 0;
  lastFailure = '';
  active: Bucket = { successes: 0, failures: 0 };
  inactive: Bucket = { successes: 0, failures: 0 };
  ejectedAt: number | undefined;
  /** Why it was last ejected, such as `5 consecutive failures, the last UNAVAILABLE: …`. */
  reason = '';
  durationMs = 0;
  multiplier = 0;
  ejections = 0;
  /** Moving average of its successful calls' durations, in ms. */
  latencyMs: number | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly address: string) {}

  get ejected(): boolean {
    return this.ejectedAt !== undefined;
  }
}

/** Weight of one successful call in an endpoint's typical latency. */
const LATENCY_WEIGHT = 0.2;

const clock = (): number => performance.now();

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

/** The detector's side of a wrapper. */
interface Tracker {
  ejected(): boolean;
  /** Why the address was last ejected. */
  reason(): string;
  /** A call that succeeded after `elapsedMs` (< 0: failed with a code outside `failureCodes`). */
  success(elapsedMs: number): void;
  failure(reason: string): void;
  /** Whether a deadline after `elapsedMs` on the endpoint counts against it. */
  fairChance(elapsedMs: number): boolean;
  detach(): void;
  readonly failureCodes: ReadonlySet<number>;
  /** How responses and failures are read (the protocol of the endpoint kind). */
  readonly outcomes: OutcomeReader;
}

/**
 * An endpoint observed by an {@link OutlierDetector}: calls pass through
 * and their outcomes are counted; readiness is `failed` while ejected.
 *
 * @example
 * ```ts
 * const inner = grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() });
 * const ep: OutlierEndpoint<GrpcRequest, GrpcResponse> = detector.wrap(inner);
 * console.log(ep.ejected, ep.readiness);
 * ```
 */
export class OutlierEndpoint<Req, Res> extends DelegatingEndpoint<Req, Res> {
  /** Emits the current readiness on subscribe, then each change; completes on close. */
  override readonly readiness$: Observable<Readiness>;
  readonly #tracker: Tracker;
  readonly #outcomes: OutcomeReader;
  readonly #readiness: BehaviorSubject<Readiness>;
  #innerReadiness: Readiness;
  #sub: Subscription | undefined;
  #closing: Promise<void> | undefined;
  #detached = false;

  /** @internal use {@link OutlierDetector.wrap}. */
  constructor(inner: Endpoint<Req, Res>, tracker: Tracker) {
    super(inner, 'outlierDetection.wrap');
    this.#tracker = tracker;
    this.#outcomes = tracker.outcomes;
    this.#innerReadiness = inner.readiness;
    this.#readiness = new BehaviorSubject<Readiness>(this.#compute());
    this.readiness$ = this.#readiness.pipe(distinctUntilChanged());
    this.#sub = inner.readiness$.subscribe({
      next: (r) => {
        this.#innerReadiness = r;
        this.refresh();
      },
      error: () => this.#finish(),
      complete: () => this.#finish(),
    });
  }

  /** The current readiness: `failed` while ejected, else the inner endpoint's. */
  override get readiness(): Readiness {
    return this.#readiness.value;
  }

  /** Whether the detector holds this endpoint's address out of rotation. */
  get ejected(): boolean {
    return !this.#detached && this.#tracker.ejected();
  }

  /**
   * Whether the connection underneath is up, ejected or not: a balancer in
   * panic mode prefers these (see the balancers' `panicThresholdPercent`).
   */
  override get connected(): boolean {
    return this.#innerReadiness !== 'closed' && connectedOf(this.inner);
  }

  /** Why it is not ready: the ejection while ejected, else the inner endpoint's reason. */
  override get lastError(): string | undefined {
    return this.ejected ? `ejected by outlier detection (${this.#tracker.reason()})` : this.inner.lastError;
  }

  /**
   * Starts the inner endpoint's connection attempt now, when its
   * connection failed and it waits out its backoff (`Endpoint.reconnect`);
   * `undefined` while ejected (a new connection would not bring it back
   * before the ejection ends) or when the inner endpoint has none to start.
   *
   * @example
   * ```ts
   * await ep.reconnect();
   * ```
   */
  override reconnect(): Promise<void> | undefined {
    return this.ejected ? undefined : this.inner.reconnect?.();
  }

  override call(req: Req, ctx: CallContext): Promise<Res> {
    const started = clock();
    let result: Promise<Res>;
    try {
      result = this.inner.call(req, ctx);
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (res) => {
        // a policy that throws makes the response count as neither
        let status: ResponseStatus | undefined;
        try {
          status = this.#outcomes.statusOf(res);
          if (status === undefined) {
            this.#outcomes.whenStatus(res, (s) => this.#judge(s, started, ctx));
            return;
          }
        } catch {
          return;
        }
        this.#judge(status, started, ctx);
      },
      (err: unknown) => {
        const e = toGrpcTowerError(err, this.address);
        this.#report(err, e.code, e.message, started, ctx);
      },
    );
    return result;
  }

  /** Forgets this endpoint in the detector and closes the inner endpoint. */
  override close(options?: { graceMs?: number }): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      try {
        await this.inner.close(options);
      } finally {
        this.#finish();
      }
    })();
    return this.#closing;
  }

  /** @internal recomputes the readiness after an ejection, a return or an inner change. */
  refresh(): void {
    const next = this.#compute();
    if (!this.#readiness.closed && this.#readiness.value !== next) this.#readiness.next(next);
  }

  #compute(): Readiness {
    if (this.#innerReadiness === 'closed') return 'closed';
    return this.ejected ? 'failed' : this.#innerReadiness;
  }

  /**
   * Counts a call's outcome: `outcome` is the rejection or the final status
   * (`{ code }`) with its status `code`, judged by where it came from (see
   * the module docs).
   */
  #report(outcome: unknown, code: number, details: string, started: number, ctx: CallContext): void {
    if (this.#detached) return;
    const elapsedMs = clock() - started;
    if (code === Status.OK) {
      this.#tracker.success(elapsedMs);
      return;
    }
    const origin = this.#outcomes.origin(outcome, ctx.aborted);
    if (origin === 'caller' || origin === 'local') return;
    if (origin === 'deadline' && !this.#tracker.fairChance(elapsedMs)) return;
    if (this.#tracker.failureCodes.has(code)) {
      const name =
        origin === 'deadline' ? `${statusName(code)} after ${Math.round(elapsedMs)} ms` : statusName(code);
      this.#tracker.failure(details ? `${name} (${details})` : name);
    } else {
      // a status outside failureCodes is a success, but not a sample of the latency
      this.#tracker.success(-1);
    }
  }

  /** Counts a response's final status, as the protocol read it. */
  #judge(status: ResponseStatus, started: number, ctx: CallContext): void {
    if (status.code === Status.OK) this.#report(undefined, Status.OK, '', started, ctx);
    else this.#report(status, status.code, status.details ?? '', started, ctx);
  }

  #finish(): void {
    this.#sub?.unsubscribe();
    this.#sub = undefined;
    if (!this.#detached) {
      this.#detached = true;
      this.#tracker.detach();
    }
    this.#innerReadiness = 'closed';
    if (!this.#readiness.closed) {
      if (this.#readiness.value !== 'closed') this.#readiness.next('closed');
      this.#readiness.complete();
    }
  }
}
