/**
 * The base both active health checkers' endpoints extend
 * (`HealthCheckedEndpoint` over `grpc.health.v1`, `HttpHealthCheckedEndpoint`
 * over an HTTP path): a {@link DelegatingEndpoint} whose readiness,
 * `pending` and `close()` are its {@link HealthGate}'s, and whose
 * `lastError` is the verdict while it holds the endpoint out. Calls, the
 * address, `connected` and `reconnect()` are the inner endpoint's, through
 * the base; a subclass says what a check is, never what is forwarded.
 * (Discovery metadata is no member of an endpoint: it travels on the
 * insert change.)
 *
 * @module
 */
import { DelegatingEndpoint, type Endpoint, type Readiness } from '@grpc-tower/core';
import type { EventStream } from '@grpc-tower/core/internal';
import type { Observable } from 'rxjs';
import type { HealthEvent, HealthState } from '../events.js';
import { HealthGate } from './gate.js';

/**
 * An endpoint whose readiness is gated by a health verdict: the inner
 * endpoint's readiness, held at `connecting` while the verdict is unknown
 * and at `failed` while it is unhealthy. What a check is, and when it runs
 * after a connection comes up, is the subclass's: `healthChecked` and
 * `httpHealthChecked` make the two there are.
 *
 * @example
 * ```ts
 * const ep: HealthGatedEndpoint<GrpcRequest, GrpcResponse> = healthChecked()(grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() }));
 * ep.readiness$.subscribe((r) => console.log(ep.address, r, ep.health));
 * ```
 */
export abstract class HealthGatedEndpoint<Req, Res> extends DelegatingEndpoint<Req, Res> {
  /** Emits the current readiness on subscribe, then each change; completes on close. */
  override readonly readiness$: Observable<Readiness>;
  /** @internal The gate: the verdict, the check in flight, its timer, the lifecycle. */
  protected readonly gate: HealthGate<Req, Res>;

  /**
   * @internal Throws `ConfigError` naming `where` when `inner` is not an
   * endpoint. The subclass calls `gate.open()` at the end of its
   * constructor.
   */
  constructor(where: string, inner: Endpoint<Req, Res>, events: EventStream<HealthEvent>) {
    super(inner, where);
    this.gate = new HealthGate(where, inner, events, {
      connected: () => this.onConnected(),
      probe: () => this.probe(),
    });
    this.readiness$ = this.gate.readiness$;
  }

  /** @internal The connection is up (the first time, or again): start checking, at once or after a wait. */
  protected abstract onConnected(): void;

  /** @internal Start one check now. */
  protected abstract probe(): void;

  /** @internal The verdict that holds the endpoint out, as `lastError` says it. */
  protected abstract verdict(): string;

  /** The current readiness: the inner endpoint's, held at `connecting`/`failed` by the health verdict. */
  override get readiness(): Readiness {
    return this.gate.readiness;
  }

  /** The current health verdict. */
  get health(): HealthState {
    return this.gate.health;
  }

  /**
   * Why the endpoint is not ready: the health verdict while the connection
   * is up and the check holds it out, else the inner endpoint's reason.
   */
  override get lastError(): string | undefined {
    return this.gate.heldOut ? this.verdict() : this.inner.lastError;
  }

  /** Calls in flight on the inner endpoint, not counting the health check. */
  override get pending(): number {
    return this.gate.pending;
  }

  /** Stops health checking (aborting the check in flight) and closes the inner endpoint (which drains its calls). */
  override close(options?: { graceMs?: number }): Promise<void> {
    return this.gate.close(options);
  }
}
