/**
 * The endpoint an outlier detector wraps: calls pass through, each call's
 * outcome is read through the endpoint kind's protocol and reported to the
 * detector (which counts it for the endpoint's address), and the readiness
 * is `failed` while the address is ejected.
 *
 * @module
 */
import {
  type CallContext,
  DelegatingEndpoint,
  type Endpoint,
  type Readiness,
  type ResponseStatus,
  Status,
  statusName,
  toGrpcTowerError,
} from '@grpc-tower/core';
import { BehaviorSubject, type Observable, type Subscription, distinctUntilChanged } from 'rxjs';
import { connectedOf } from '../pick/connected.js';
import type { OutcomeReader } from './protocol.js';

/**
 * The clock outlier detection measures with, in ms.
 *
 * @internal
 */
export const clock = (): number => performance.now();

/**
 * The detector's side of a wrapper.
 *
 * @internal
 */
export interface Tracker {
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
 * An endpoint observed by an `OutlierDetector`: calls pass through
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

  /** @internal use `OutlierDetector.wrap`. */
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
