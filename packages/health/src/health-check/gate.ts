/**
 * What the active health checkers share (`healthChecked` over
 * `grpc.health.v1`, `httpHealthChecked` over an HTTP path): the readiness of
 * a wrapped endpoint gated by a health verdict, the verdict's transitions
 * published as events, the one check in flight and the one timer, and the
 * lifecycle (checks start when the connection is up, stop when it goes
 * away, and `close()` stops them and closes the inner endpoint).
 *
 * A {@link HealthGate} is held by each checked endpoint; the endpoint's
 * {@link GateDriver} says what a check is.
 *
 * @internal
 * @module
 */
import { CancelledError, ConfigError, type Endpoint, type Readiness, type Scope } from '@grpc-tower/core';
import { type EventStream, isEndpoint } from '@grpc-tower/core/internal';
import { BehaviorSubject, type Observable, type Subscription, distinctUntilChanged } from 'rxjs';
import type { HealthEvent, HealthState } from '../events.js';
import type { ServingStatus } from './proto.js';

/** One health check in flight; stale answers are told apart by identity. */
export interface Probe {
  readonly scope: Scope;
}

/** What a checked endpoint tells its gate. */
export interface GateDriver {
  /** The connection is up (the first time, or again): start checking, at once or after a wait. */
  connected(): void;
  /** Start one check now (the gate has made sure none is in flight and the connection is up). */
  probe(): void;
}

/**
 * The readiness of one checked endpoint: the inner endpoint's, held at
 * `connecting` while the verdict is `unknown` and at `failed` while it is
 * `unhealthy`.
 *
 * @internal
 */
export class HealthGate<Req, Res> {
  /** Emits the current readiness on subscribe, then each change; completes on close. */
  readonly readiness$: Observable<Readiness>;
  readonly #inner: Endpoint<Req, Res>;
  readonly #events: EventStream<HealthEvent>;
  readonly #driver: GateDriver;
  readonly #readiness: BehaviorSubject<Readiness>;
  #innerReadiness: Readiness = 'connecting';
  #health: HealthState = 'unknown';
  #status: ServingStatus | undefined;
  #probe: Probe | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Health calls counted in the inner endpoint's `pending`. */
  #inflight = 0;
  #sub: Subscription | undefined;
  #closing: Promise<void> | undefined;

  /** Throws `ConfigError` (from `where`) when `inner` is not an endpoint. Call {@link open} next. */
  constructor(
    where: string,
    inner: Endpoint<Req, Res>,
    events: EventStream<HealthEvent>,
    driver: GateDriver,
  ) {
    if (!isEndpoint(inner)) {
      throw new ConfigError(where, 'endpoint', inner, 'an Endpoint (address, call, close, readiness$)');
    }
    this.#inner = inner;
    this.#events = events;
    this.#driver = driver;
    this.#readiness = new BehaviorSubject<Readiness>(this.#compute());
    this.readiness$ = this.#readiness.pipe(distinctUntilChanged());
  }

  /** Follows the inner endpoint's readiness (which may start a check at once). */
  open(): void {
    this.#sub = this.#inner.readiness$.subscribe({
      next: (r) => this.#onInner(r),
      error: () => this.#finish(),
      complete: () => this.#finish(),
    });
  }

  get readiness(): Readiness {
    return this.#readiness.value;
  }

  get health(): HealthState {
    return this.#health;
  }

  /** The last serving status of a `grpc.health.v1` answer, reset with the connection. */
  get servingStatus(): ServingStatus | undefined {
    return this.#status;
  }

  /** Whether the verdict holds out an endpoint whose connection is up (then the verdict explains `failed`). */
  get heldOut(): boolean {
    return this.#innerReadiness === 'ready' && this.#health === 'unhealthy';
  }

  /** Calls in flight on the inner endpoint, not counting the health check. */
  get pending(): number {
    return Math.max(0, this.#inner.pending - this.#inflight);
  }

  /**
   * Sets the verdict; on a change, publishes the readiness first (so a
   * listener of the event sees the new state), then the event.
   * `status` is a `grpc.health.v1` serving status, when one came.
   */
  setHealth(to: HealthState, reason: string, status?: ServingStatus): void {
    if (status !== undefined || to === 'unknown') this.#status = status;
    const from = this.#health;
    if (from === to) return;
    this.#health = to;
    this.#publish();
    this.#events.emit(() => ({ type: 'health', endpoint: this.#inner.address, from, to, reason, status }));
  }

  /** Starts a check if none is in flight, the connection is up and the endpoint is not closing. */
  startProbe(): void {
    if (this.#closing !== undefined || this.#innerReadiness !== 'ready' || this.#probe !== undefined) return;
    this.#driver.probe();
  }

  /**
   * Sends `req` through the inner endpoint as the check in flight, counted
   * apart from the endpoint's calls; `settle` runs once when it is over.
   */
  begin(scope: Scope, req: Req): { probe: Probe; response: Promise<Res>; settle(): void } {
    const probe: Probe = { scope };
    this.#probe = probe;
    this.#inflight++;
    let open = true;
    const settle = (): void => {
      if (!open) return;
      open = false;
      this.#inflight--;
      scope.release();
    };
    const response = new Promise<Res>((resolve) => resolve(this.#inner.call(req, scope.context)));
    return { probe, response, settle };
  }

  /** Whether `probe` is the check in flight (not one stopped on purpose). */
  current(probe: Probe): boolean {
    return this.#probe === probe;
  }

  /** Ends `probe` if it is the check in flight; false for one stopped on purpose. */
  end(probe: Probe): boolean {
    if (this.#probe !== probe) return false;
    this.#probe = undefined;
    return true;
  }

  /** Runs {@link startProbe} after `delayMs` (an unref'd timer, cleared on close). */
  schedule(delayMs: number): void {
    this.#clearTimer();
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.startProbe();
    }, delayMs);
    timer.unref();
    this.#timer = timer;
  }

  /** Aborts the check in flight, clears the timer, and closes the inner endpoint (which drains its calls). */
  close(options?: { graceMs?: number }): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#stopProbe();
    this.#clearTimer();
    this.#closing = (async () => {
      try {
        await this.#inner.close(options);
      } finally {
        this.#finish();
      }
    })();
    return this.#closing;
  }

  #finish(): void {
    this.#stopProbe();
    this.#clearTimer();
    this.#sub?.unsubscribe();
    this.#sub = undefined;
    this.#innerReadiness = 'closed';
    if (!this.#readiness.closed) {
      if (this.#readiness.value !== 'closed') this.#readiness.next('closed');
      this.#readiness.complete();
    }
  }

  #compute(): Readiness {
    const r = this.#innerReadiness;
    if (r !== 'ready') return r;
    switch (this.#health) {
      case 'healthy':
        return 'ready';
      case 'unhealthy':
        return 'failed';
      default:
        return 'connecting';
    }
  }

  #publish(): void {
    const next = this.#compute();
    if (!this.#readiness.closed && this.#readiness.value !== next) this.#readiness.next(next);
  }

  #onInner(r: Readiness): void {
    const prev = this.#innerReadiness;
    this.#innerReadiness = r;
    if (r === 'ready') {
      if (prev !== 'ready' && this.#closing === undefined) this.#driver.connected();
    } else if (prev === 'ready' || r === 'closed') {
      // checks pause while the connection is down; the verdict starts again on the next one
      this.#stopProbe();
      this.#clearTimer();
      if (r !== 'closed') this.setHealth('unknown', `connection ${r === 'failed' ? 'failed' : 'lost'}`);
    }
    this.#publish();
  }

  #stopProbe(): void {
    const probe = this.#probe;
    this.#probe = undefined;
    probe?.scope.controller.abort(new CancelledError('health check stopped'));
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }
}
