/**
 * Metrics of the parts of a stack that are not calls: the balancer and its
 * endpoints (read from `stats()` when the SDK collects, so nothing is
 * counted twice), connections (from each endpoint's own readiness),
 * health checks and ejections, discovery, and the retry budget.
 *
 * The inputs are structural: a balancer is anything with grpc-tower's
 * balancer `stats()`, a health or discovery stream anything that emits
 * their events, so this package depends on neither.
 *
 * @module
 */
import type {
  Attributes,
  BatchObservableCallback,
  Counter,
  Meter,
  Observable as ObservableInstrument,
  UpDownCounter,
} from '@opentelemetry/api';
import type { Observable, Subscription } from 'rxjs';
import { telemetryFailed } from './calls.js';
import { Labels, MetricNames } from './names.js';

/** One endpoint as a balancer's `stats()` reports it. */
export interface ObservedEndpointStats {
  readonly address: string;
  /** `ready`, `connecting`, `failed` or `closed`. */
  readonly state: string;
  /** `active`, `incoming` or `draining` (optional). */
  readonly role?: string;
  readonly pending: number;
  readonly ewmaMs: number | undefined;
  readonly cost: number;
  readonly picks: number;
  readonly failures: number;
}

/**
 * What the balancer metrics read: `@grpc-tower/balance`'s `Balancer` has it.
 *
 * @example
 * ```ts
 * const balancer: ObservedBalancer = p2c(endpoints, { target: 'orders' });
 * ```
 */
export interface ObservedBalancer {
  stats(): { readonly waiting: number; readonly endpoints: readonly ObservedEndpointStats[] };
  /** Whether the balancer is in panic mode (optional). */
  readonly panicking?: boolean;
}

/** What the connection metrics read of an endpoint: its address and readiness. */
export interface ObservedEndpoint {
  readonly address: string;
  /** Emits the current readiness on subscribe, then each change; completes on close. */
  readonly readiness$: Observable<string>;
}

/**
 * An event of a health checker or an outlier detector (`@grpc-tower/health`'s
 * `HealthEvent`), as far as the metrics read it.
 */
export interface ObservedHealthEvent {
  readonly type: string;
  readonly endpoint?: string;
  /** A health transition's new state. */
  readonly to?: string;
  /** The ejection algorithm. */
  readonly algorithm?: string;
  /** Why an ejection was not enforced. */
  readonly because?: string;
}

/** An event of a discovery source (`@grpc-tower/discover`'s `DiscoveryEvent`), as far as the metrics read it. */
export interface ObservedDiscoveryEvent {
  readonly type: string;
  readonly source?: string;
  /** How many endpoints a resolution found. */
  readonly count?: number;
}

/** What the budget gauge reads: `@grpc-tower/retry`'s retry and hedging layers have it. */
export interface ObservedRetry {
  stats(): { readonly budgetLevel: number | undefined };
}

/** The endpoint states reported as a state set (one series per state, 1 for the current one). */
const ENDPOINT_STATES = ['ready', 'connecting', 'failed', 'draining'] as const;

/** The label value of an ejection algorithm (A91 spells them with underscores). */
const methodName = (algorithm: string | undefined): string => (algorithm ?? 'unknown').replaceAll('-', '_');

/** A91's values of `grpc.lb.outlier_detection.unenforced_reason`. */
const unenforcedReason = (because: string | undefined): string =>
  because === 'max-ejection-percent' ? 'max_ejection_overflow' : methodName(because);

/** Label sets keyed by strings, kept (bounded by the endpoints and states a stack has). */
class AttrCache {
  readonly #base: Attributes;
  readonly #cache = new Map<string, Attributes>();

  constructor(base: Attributes) {
    this.#base = base;
  }

  get(key: string, extra: () => Attributes): Attributes {
    let attrs = this.#cache.get(key);
    if (attrs === undefined) {
      attrs = { ...this.#base, ...extra() };
      if (this.#cache.size < 4096) this.#cache.set(key, attrs);
    }
    return attrs;
  }
}

/** Sums the balancer's entries of one address (an address being replaced has two). */
interface EndpointRow {
  state: string;
  pending: number;
  ewmaMs: number | undefined;
  cost: number;
  picks: number;
  failures: number;
}

function rowsOf(endpoints: readonly ObservedEndpointStats[]): Map<string, EndpointRow> {
  const rows = new Map<string, EndpointRow>();
  for (const e of endpoints) {
    const state = e.role === 'draining' ? 'draining' : e.state;
    const row = rows.get(e.address);
    if (row === undefined) {
      rows.set(e.address, {
        state,
        pending: e.pending,
        ewmaMs: e.ewmaMs,
        cost: e.cost,
        picks: e.picks,
        failures: e.failures,
      });
      continue;
    }
    // the active entry (listed first) gives the state and the load estimate
    row.pending += e.pending;
    row.picks += e.picks;
    row.failures += e.failures;
  }
  return rows;
}

/**
 * The metrics of one stack's parts, all labelled with its `grpc.target`.
 * `close()` removes its collection callback and unsubscribes from every
 * stream it watches.
 */
export class PartsObserver {
  readonly #meter: Meter;
  readonly #attrs: AttrCache;
  readonly #base: Attributes;
  readonly #subscriptions = new Set<Subscription>();
  readonly #batches: { callback: BatchObservableCallback; instruments: ObservableInstrument[] }[] = [];
  readonly #connected: Counter;
  readonly #connectFailed: Counter;
  readonly #disconnections: Counter;
  readonly #open: UpDownCounter;
  #health: { transitions: Counter; enforced: Counter; unenforced: Counter } | undefined;
  #discovery: { resolutions: Counter; failures: Counter; known: Map<string, number> } | undefined;
  #closed = false;

  constructor(meter: Meter, target: string) {
    this.#meter = meter;
    this.#base = { [Labels.target]: target };
    this.#attrs = new AttrCache(this.#base);
    this.#connected = meter.createCounter(MetricNames.connectionAttemptsSucceeded, {
      description: 'Connection attempts of an endpoint that succeeded.',
      unit: '{attempt}',
    });
    this.#connectFailed = meter.createCounter(MetricNames.connectionAttemptsFailed, {
      description: 'Connection attempts of an endpoint that failed.',
      unit: '{attempt}',
    });
    this.#disconnections = meter.createCounter(MetricNames.disconnections, {
      description: 'Times a connected endpoint lost its connection or was closed.',
      unit: '{disconnection}',
    });
    this.#open = meter.createUpDownCounter(MetricNames.openConnections, {
      description: 'Endpoints connected now.',
      unit: '{connection}',
    });
  }

  #endpointAttrs(address: string): Attributes {
    return this.#attrs.get(address, () => ({ [Labels.endpoint]: address }));
  }

  #keep(subscription: Subscription): void {
    if (this.#closed || subscription.closed) subscription.unsubscribe();
    else this.#subscriptions.add(subscription);
  }

  #batch(callback: BatchObservableCallback, instruments: ObservableInstrument[]): void {
    if (this.#closed) return;
    this.#meter.addBatchObservableCallback(callback, instruments);
    this.#batches.push({ callback, instruments });
  }

  /**
   * Follows one endpoint's connection (A94's subchannel metrics): becoming
   * `ready` is a successful connection attempt, a change from `connecting`
   * to `failed` a failed one; leaving `ready` is a disconnection (labelled
   * `subchannel shutdown` when the endpoint closed).
   */
  endpoint(endpoint: ObservedEndpoint): void {
    const address = endpoint.address;
    const attrs = this.#endpointAttrs(address);
    let previous: string | undefined;
    const change = (state: string): void => {
      try {
        follow(state);
      } catch (err) {
        telemetryFailed('recording a connection change', err);
      }
    };
    const follow = (state: string): void => {
      const was = previous;
      previous = state;
      if (was === state) return;
      if (state === 'ready') {
        this.#connected.add(1, attrs);
        this.#open.add(1, attrs);
      } else if (was === 'ready') {
        const error = state === 'closed' ? 'subchannel shutdown' : 'unknown';
        this.#disconnections.add(
          1,
          this.#attrs.get(`${address}|${error}`, () => ({
            [Labels.endpoint]: address,
            [Labels.disconnectError]: error,
          })),
        );
        this.#open.add(-1, attrs);
      } else if (state === 'failed' && was === 'connecting') {
        this.#connectFailed.add(1, attrs);
      }
    };
    let subscription: Subscription | undefined;
    const done = (): void => {
      change('closed');
      if (subscription !== undefined) this.#subscriptions.delete(subscription);
    };
    subscription = endpoint.readiness$.subscribe({ next: change, error: done, complete: done });
    this.#keep(subscription);
  }

  /** The balancer's per-endpoint state, calls in flight, load, picks and failures; its waiting calls and panic mode. */
  balancer(balancer: ObservedBalancer): void {
    const m = this.#meter;
    const state = m.createObservableGauge(MetricNames.endpointState, {
      description: 'An endpoint state set: 1 for the state it is in, 0 for the others.',
      unit: '1',
    });
    const inFlight = m.createObservableGauge(MetricNames.endpointCallsInFlight, {
      description: 'Calls in flight on an endpoint.',
      unit: '{call}',
    });
    const load = m.createObservableGauge(MetricNames.endpointLoad, {
      description:
        "An endpoint's cost as the balancer's load metric computes it (PeakEWMA: latency × (in flight + 1)).",
      unit: '1',
    });
    const latency = m.createObservableGauge(MetricNames.endpointLatencyEstimate, {
      description: "An endpoint's round-trip estimate (PeakEWMA).",
      unit: 's',
    });
    const picks = m.createObservableCounter(MetricNames.endpointPicks, {
      description: 'Calls the balancer sent to an endpoint.',
      unit: '{call}',
    });
    const failures = m.createObservableCounter(MetricNames.endpointFailures, {
      description: 'Of those, calls that failed on the server or its connection.',
      unit: '{call}',
    });
    const waiting = m.createObservableGauge(MetricNames.callsWaiting, {
      description: 'Calls waiting for a ready endpoint.',
      unit: '{call}',
    });
    const panic = m.createObservableGauge(MetricNames.panic, {
      description: '1 while the balancer is in panic mode (too few endpoints ready), else 0.',
      unit: '1',
    });
    // The SDK keeps reporting the last value of a series no callback
    // observes any more; an endpoint that left is reported once with
    // every state 0 and its gauges 0, so that its last values do not
    // linger (its counters keep their last values).
    let shown = new Set<string>();
    const stateAttrs = (address: string, s: string): Attributes =>
      this.#attrs.get(`${address}|state|${s}`, () => ({
        [Labels.endpoint]: address,
        [Labels.endpointState]: s,
      }));
    this.#batch(
      (result) => {
        const stats = balancer.stats();
        result.observe(waiting, stats.waiting, this.#base);
        if (balancer.panicking !== undefined) result.observe(panic, balancer.panicking ? 1 : 0, this.#base);
        const rows = rowsOf(stats.endpoints);
        for (const address of shown) {
          if (rows.has(address)) continue;
          for (const s of ENDPOINT_STATES) result.observe(state, 0, stateAttrs(address, s));
          const attrs = this.#endpointAttrs(address);
          result.observe(inFlight, 0, attrs);
          result.observe(load, 0, attrs);
          result.observe(latency, 0, attrs);
        }
        shown = new Set(rows.keys());
        for (const [address, row] of rows) {
          const attrs = this.#endpointAttrs(address);
          for (const s of ENDPOINT_STATES)
            result.observe(state, row.state === s ? 1 : 0, stateAttrs(address, s));
          result.observe(inFlight, row.pending, attrs);
          result.observe(load, row.cost, attrs);
          if (row.ewmaMs !== undefined) result.observe(latency, row.ewmaMs / 1000, attrs);
          result.observe(picks, row.picks, attrs);
          result.observe(failures, row.failures, attrs);
        }
      },
      [state, inFlight, load, latency, picks, failures, waiting, panic],
    );
  }

  /** The level of a retry or hedging layer's budget (retries it would grant now). */
  retry(layer: ObservedRetry): void {
    const level = this.#meter.createObservableGauge(MetricNames.retryBudgetLevel, {
      description: 'Retries the retry budget (or tokens the throttle) would grant now.',
      unit: '{retry}',
    });
    this.#batch(
      (result) => {
        const now = layer.stats().budgetLevel;
        if (now !== undefined) result.observe(level, now, this.#base);
      },
      [level],
    );
  }

  /** Health transitions, enforced ejections and ejections not enforced. */
  health(events$: Observable<ObservedHealthEvent>): void {
    this.#health ??= {
      transitions: this.#meter.createCounter(MetricNames.healthTransitions, {
        description: "Changes of an endpoint's health-check state, by the state it entered.",
        unit: '{transition}',
      }),
      enforced: this.#meter.createCounter(MetricNames.ejectionsEnforced, {
        description: 'Endpoints ejected by outlier detection.',
        unit: '{ejection}',
      }),
      unenforced: this.#meter.createCounter(MetricNames.ejectionsUnenforced, {
        description:
          'Outliers detected but not ejected (enforcement percentage, or too many ejected already).',
        unit: '{ejection}',
      }),
    };
    const h = this.#health;
    const countHealth = (e: ObservedHealthEvent): void => {
      const address = e.endpoint ?? '';
      if (e.type === 'health' && e.to !== undefined) {
        const to = e.to;
        h.transitions.add(
          1,
          this.#attrs.get(`${address}|health|${to}`, () => ({
            [Labels.endpoint]: address,
            [Labels.healthState]: to,
          })),
        );
      } else if (e.type === 'ejected') {
        const method = methodName(e.algorithm);
        h.enforced.add(
          1,
          this.#attrs.get(`${address}|ejected|${method}`, () => ({
            [Labels.endpoint]: address,
            [Labels.detectionMethod]: method,
          })),
        );
      } else if (e.type === 'unenforced') {
        const method = methodName(e.algorithm);
        const because = unenforcedReason(e.because);
        h.unenforced.add(
          1,
          this.#attrs.get(`${address}|unenforced|${method}|${because}`, () => ({
            [Labels.endpoint]: address,
            [Labels.detectionMethod]: method,
            [Labels.unenforcedReason]: because,
          })),
        );
      }
    };
    const count = (e: ObservedHealthEvent): void => {
      try {
        countHealth(e);
      } catch (err) {
        telemetryFailed('recording a health event', err);
      }
    };
    this.#keep(events$.subscribe({ next: count, error: () => {} }));
  }

  /** Resolutions, failures and the endpoints each discovery source knows. */
  discovery(events$: Observable<ObservedDiscoveryEvent>): void {
    if (this.#discovery === undefined) {
      const known = new Map<string, number>();
      this.#discovery = {
        resolutions: this.#meter.createCounter(MetricNames.discoveryResolutions, {
          description: 'Resolutions (or watch updates) a discovery source completed.',
          unit: '{resolution}',
        }),
        failures: this.#meter.createCounter(MetricNames.discoveryFailures, {
          description: 'Resolutions that failed, and watches that lost their connection.',
          unit: '{failure}',
        }),
        known,
      };
      const gauge = this.#meter.createObservableGauge(MetricNames.discoveryEndpoints, {
        description: 'Endpoints a discovery source found in its last resolution.',
        unit: '{endpoint}',
      });
      this.#batch(
        (result) => {
          for (const [source, count] of known) result.observe(gauge, count, this.#sourceAttrs(source));
        },
        [gauge],
      );
    }
    const d = this.#discovery;
    this.#keep(
      events$.subscribe({
        next: (e) => {
          try {
            const source = e.source ?? '';
            if (e.type === 'resolved') {
              d.resolutions.add(1, this.#sourceAttrs(source));
              if (typeof e.count === 'number') d.known.set(source, e.count);
            } else if (e.type === 'failed' || e.type === 'disconnected') {
              d.failures.add(1, this.#sourceAttrs(source));
            }
          } catch (err) {
            telemetryFailed('recording a discovery event', err);
          }
        },
        error: () => {},
      }),
    );
  }

  #sourceAttrs(source: string): Attributes {
    return this.#attrs.get(`source|${source}`, () => ({ [Labels.source]: source }));
  }

  /** Stops collecting and watching. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#subscriptions) s.unsubscribe();
    this.#subscriptions.clear();
    for (const b of this.#batches) this.#meter.removeBatchObservableCallback(b.callback, b.instruments);
    this.#batches.length = 0;
  }
}
