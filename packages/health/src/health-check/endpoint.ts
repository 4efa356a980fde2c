/**
 * Active health checking with the standard `grpc.health.v1` service,
 * following gRPC A17 ("Client-Side Health Checking"): an endpoint wrapper
 * whose readiness is the inner endpoint's readiness AND the health the
 * server reports, so any balancer that only picks `ready` endpoints stops
 * sending to an unhealthy server without knowing about health checks.
 *
 * What it does, per endpoint:
 * - when the inner endpoint becomes `ready` (a connection is up), it starts
 *   a `Health/Watch` stream through that endpoint and holds the endpoint at
 *   `connecting` until the first answer, so calls queued during the
 *   connect do not all land on a server that is about to say it is
 *   unhealthy (A17, "Race Conditions and Subchannel Startup");
 * - `SERVING` makes it `ready`; `NOT_SERVING`, `SERVICE_UNKNOWN`,
 *   `UNKNOWN`, or a Watch that ends (with any status, OK included) make it
 *   `failed`;
 * - a Watch that ends with `UNIMPLEMENTED` means the server has no health
 *   service: the endpoint counts as healthy, is not checked again on that
 *   connection, and an `unimplemented` event is reported once;
 * - a Watch that ended is restarted after an exponential backoff, except
 *   right after a stream that delivered a message, which restarts at once
 *   (A17: any message resets the backoff);
 * - when the connection is lost the verdict goes back to `unknown` and a
 *   new Watch starts on the next connection; `close()` cancels the Watch
 *   and closes the inner endpoint.
 *
 * With `mode: 'check'`, a unary `Health/Check` runs every `intervalMs`
 * instead, each bounded by `timeoutMs`; `NOT_FOUND` counts as
 * `SERVICE_UNKNOWN`, a timeout or any other failure as unhealthy.
 *
 * Calls are passed through whatever the health says: gating is the
 * balancer's job, which lets a balancer in panic mode still use an
 * unhealthy endpoint. The health stream does not count in `pending`.
 *
 * @module
 */
import {
  CancelledError,
  type CallContext,
  ConfigError,
  type Endpoint,
  type Readiness,
  type Scope,
  Status,
  background,
  linkedScope,
  statusName,
  toGrpcTowerError,
  withTimeout,
} from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, RequestMessages } from '@grpc-tower/core/grpc';
import { isEndpoint } from '@grpc-tower/core/internal';
import { Metadata } from '@grpc/grpc-js';
import { BehaviorSubject, type Observable, Subject, type Subscription, distinctUntilChanged } from 'rxjs';
import type { HealthEvent, HealthState } from '../events.js';
import { connectedOf } from '../pick/connected.js';
import {
  type HealthCheckOptions,
  type ResolvedHealthCheckOptions,
  resolveHealthCheckOptions,
} from './options.js';
import {
  CHECK_METHOD,
  type ServingStatus,
  WATCH_METHOD,
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
} from './proto.js';

/**
 * The function {@link healthChecked} returns: wraps an endpoint in a
 * {@link HealthCheckedEndpoint}; its `events$` carries the health events of
 * every endpoint it wrapped.
 *
 * @example
 * ```ts
 * const health: HealthChecker = healthChecked({ service: 'orders.v1.Orders' });
 * health.events$.subscribe((e) => console.log(e));
 * const ep = health(grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() }));
 * ```
 */
export interface HealthChecker {
  (endpoint: Endpoint<GrpcRequest, GrpcResponse>): HealthCheckedEndpoint;
  /** Health transitions and `unimplemented` notes of every wrapped endpoint (a hot stream). */
  readonly events$: Observable<HealthEvent>;
  /** The checked options with their defaults. */
  readonly options: ResolvedHealthCheckOptions;
}

/**
 * Makes an endpoint wrapper that checks each endpoint's health with the
 * `grpc.health.v1` service and gates its readiness on it (see the module
 * documentation for the rules). Throws `ConfigError` for a bad option.
 *
 * Put it right around the gRPC endpoint, inside outlier detection, so the
 * health stream is not counted as a call:
 * `detector.wrap(health(grpcEndpoint(address, { credentials })))`. The
 * health calls go through that endpoint, on its connection and with its
 * credentials: the wrapper opens no channel of its own.
 *
 * @example
 * ```ts
 * import * as grpc from '@grpc/grpc-js';
 * import { connect, dns } from '@grpc-tower/discover';
 * import { grpcEndpoint } from '@grpc-tower/core/grpc';
 * import { p2c } from '@grpc-tower/balance';
 *
 * const health = healthChecked({ service: '' });
 * const endpoints = connect(dns('orders.internal', 50051), (a) =>
 *   health(grpcEndpoint(a.address, { credentials: grpc.credentials.createInsecure() })),
 * );
 * const balancer = p2c(endpoints, { target: 'orders' }); // picks only SERVING servers
 * ```
 */
export function healthChecked(options: HealthCheckOptions = {}): HealthChecker {
  const resolved = resolveHealthCheckOptions(options);
  const events = new Subject<HealthEvent>();
  const wrap = (endpoint: Endpoint<GrpcRequest, GrpcResponse>): HealthCheckedEndpoint =>
    new HealthCheckedEndpoint(endpoint, resolved, events);
  return Object.assign(wrap, { events$: events.asObservable(), options: resolved });
}

/** One health call in flight. */
interface Probe {
  readonly scope: Scope;
  /** Whether this call delivered a message (A17: resets the backoff). */
  received: boolean;
}

/**
 * An endpoint whose readiness also reflects the server's reported health.
 * Made by a {@link HealthChecker}.
 *
 * @example
 * ```ts
 * const ep = healthChecked()(grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() }));
 * ep.readiness$.subscribe((r) => console.log(ep.address, r, ep.health, ep.servingStatus));
 * ```
 */
export class HealthCheckedEndpoint implements Endpoint<GrpcRequest, GrpcResponse> {
  readonly address: string;
  /** The wrapped endpoint. */
  readonly inner: Endpoint<GrpcRequest, GrpcResponse>;
  /** Emits the current readiness on subscribe, then each change; completes on close. */
  readonly readiness$: Observable<Readiness>;
  readonly #options: ResolvedHealthCheckOptions;
  readonly #events: Subject<HealthEvent>;
  readonly #readiness: BehaviorSubject<Readiness>;
  readonly #request: Buffer;
  #innerReadiness: Readiness = 'connecting';
  #health: HealthState = 'unknown';
  #status: ServingStatus | undefined;
  #probe: Probe | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The current backoff ceiling, 0 before the first failure. */
  #backoffMs = 0;
  #reportedUnimplemented = false;
  /** Health calls counted in the inner endpoint's `pending`. */
  #inflight = 0;
  #sub: Subscription | undefined;
  #closing: Promise<void> | undefined;

  /** @internal use {@link healthChecked}. */
  constructor(
    inner: Endpoint<GrpcRequest, GrpcResponse>,
    options: ResolvedHealthCheckOptions,
    events: Subject<HealthEvent>,
  ) {
    if (!isEndpoint(inner)) {
      throw new ConfigError(
        'healthChecked',
        'endpoint',
        inner,
        'an Endpoint (address, call, close, readiness$)',
      );
    }
    this.inner = inner;
    this.address = inner.address;
    this.#options = options;
    this.#events = events;
    this.#request = encodeHealthCheckRequest(options.service);
    this.#readiness = new BehaviorSubject<Readiness>(this.#compute());
    this.readiness$ = this.#readiness.pipe(distinctUntilChanged());
    this.#sub = inner.readiness$.subscribe({
      next: (r) => this.#onInner(r),
      error: () => this.#finish(),
      complete: () => this.#finish(),
    });
  }

  /** The current readiness: the inner endpoint's, held at `connecting`/`failed` by the health verdict. */
  get readiness(): Readiness {
    return this.#readiness.value;
  }

  /** The current health verdict. */
  get health(): HealthState {
    return this.#health;
  }

  /** The last serving status the server sent, if any. */
  get servingStatus(): ServingStatus | undefined {
    return this.#status;
  }

  /**
   * Whether the connection underneath is up, whatever the health says: a
   * balancer in panic mode prefers these over endpoints that cannot connect
   * (see `panicThreshold`).
   */
  get connected(): boolean {
    return connectedOf(this.inner);
  }

  /**
   * Why the endpoint is not ready: the health verdict while the connection
   * is up (`health check: NOT_SERVING`), else the inner endpoint's reason.
   */
  get lastError(): string | undefined {
    if (this.#innerReadiness === 'ready' && this.#health === 'unhealthy') {
      return `health check: ${this.#status ?? 'unhealthy'}`;
    }
    return this.inner.lastError;
  }

  /** Calls in flight on the inner endpoint, not counting the health call. */
  get pending(): number {
    return Math.max(0, this.inner.pending - this.#inflight);
  }

  /** The inner endpoint's weight. */
  get weight(): number | undefined {
    return this.inner.weight;
  }

  /** The inner endpoint's zone. */
  get zone(): string | undefined {
    return this.inner.zone;
  }

  /** The inner endpoint's topology hints. */
  get forZones(): readonly string[] | undefined {
    return this.inner.forZones;
  }

  call(req: GrpcRequest, ctx: CallContext): Promise<GrpcResponse> {
    return this.inner.call(req, ctx);
  }

  /** Stops health checking and closes the inner endpoint (which drains its calls). */
  close(options?: { graceMs?: number }): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#stopProbe();
    this.#clearTimer();
    this.#closing = (async () => {
      try {
        await this.inner.close(options);
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
      if (prev !== 'ready' && this.#closing === undefined) {
        // a new connection: a fresh Watch, at once
        this.#backoffMs = 0;
        this.#startProbe();
      }
    } else if (prev === 'ready' || r === 'closed') {
      this.#stopProbe();
      this.#clearTimer();
      if (r !== 'closed')
        this.#setHealth('unknown', `connection ${r === 'failed' ? 'failed' : 'lost'}`, undefined);
    }
    this.#publish();
  }

  #setHealth(to: HealthState, reason: string, status: ServingStatus | undefined): void {
    if (status !== undefined || to === 'unknown') this.#status = status;
    const from = this.#health;
    if (from === to) return;
    this.#health = to;
    this.#publish(); // readiness first, so a listener of the event sees the new state
    this.#events.next({ type: 'health', endpoint: this.address, from, to, reason, status });
  }

  #startProbe(): void {
    if (this.#closing !== undefined || this.#innerReadiness !== 'ready' || this.#probe !== undefined) return;
    if (this.#options.mode === 'watch') this.#watch();
    else this.#check();
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

  #schedule(delayMs: number): void {
    this.#clearTimer();
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.#startProbe();
    }, delayMs);
    timer.unref();
    this.#timer = timer;
  }

  /** The next backoff wait: the ceiling grows by the multiplier up to the cap, jittered. */
  #nextBackoff(): number {
    const b = this.#options.backoff;
    this.#backoffMs = this.#backoffMs === 0 ? b.initialMs : Math.min(this.#backoffMs * b.multiplier, b.maxMs);
    const jittered = this.#backoffMs * (1 + b.jitter * (2 * this.#options.random() - 1));
    return Math.max(0, Math.round(jittered));
  }

  #healthRequest(method: string, kind: 'serverStream' | 'unary'): GrpcRequest {
    return {
      method,
      kind,
      metadata: new Metadata(),
      messages: RequestMessages.of(this.#request),
      host: undefined,
      credentials: undefined,
      attempt: 0,
    };
  }

  /** Starts a health call through the inner endpoint; `settle` runs once when it is over. */
  #begin(scope: Scope, req: GrpcRequest): { probe: Probe; response: Promise<GrpcResponse>; settle(): void } {
    const probe: Probe = { scope, received: false };
    this.#probe = probe;
    this.#inflight++;
    let open = true;
    const settle = (): void => {
      if (!open) return;
      open = false;
      this.#inflight--;
      scope.release();
    };
    const response = new Promise<GrpcResponse>((resolve) => resolve(this.inner.call(req, scope.context)));
    return { probe, response, settle };
  }

  #watch(): void {
    const { probe, response, settle } = this.#begin(
      linkedScope(background),
      this.#healthRequest(WATCH_METHOD, 'serverStream'),
    );
    response.then(
      (res) => {
        res.stream.start({
          onMessage: (message) => {
            if (this.#probe !== probe) return;
            probe.received = true;
            this.#backoffMs = 0;
            this.#onServingStatus(decodeHealthCheckResponse(message));
            res.stream.read();
          },
          onStatus: (status) => {
            settle();
            this.#watchEnded(probe, status.code, status.details);
          },
        });
        res.stream.read();
      },
      (err: unknown) => {
        settle();
        const e = toGrpcTowerError(err, this.address);
        this.#watchEnded(probe, e.code, e.message);
      },
    );
  }

  #watchEnded(probe: Probe, code: number, details: string): void {
    if (this.#probe !== probe) return; // stopped on purpose
    this.#probe = undefined;
    if (code === Status.UNIMPLEMENTED) {
      this.#unimplemented('Watch');
      return;
    }
    this.#setHealth('unhealthy', `health watch ended with ${describe(code, details)}`, undefined);
    this.#schedule(probe.received ? 0 : this.#nextBackoff());
  }

  #check(): void {
    const { probe, response, settle } = this.#begin(
      withTimeout(background, this.#options.timeoutMs),
      this.#healthRequest(CHECK_METHOD, 'unary'),
    );
    response
      .then((res) => {
        settle(); // a unary response resolves after its status: the call is over
        return readOne(res);
      })
      .then(
        ({ message, code, details }) => {
          if (this.#probe !== probe) return;
          this.#probe = undefined;
          if (code === Status.OK && message !== undefined) {
            this.#onServingStatus(decodeHealthCheckResponse(message));
          } else {
            this.#checkFailed(code, details);
          }
          this.#schedule(this.#options.intervalMs);
        },
        (err: unknown) => {
          settle();
          if (this.#probe !== probe) return;
          this.#probe = undefined;
          const e = toGrpcTowerError(err, this.address);
          if (e.code === Status.UNIMPLEMENTED) {
            this.#unimplemented('Check');
            return;
          }
          this.#checkFailed(e.code, e.message);
          this.#schedule(this.#options.intervalMs);
        },
      );
  }

  #checkFailed(code: number, details: string): void {
    if (code === Status.NOT_FOUND) {
      const name = this.#options.service;
      this.#setHealth('unhealthy', `server does not know service "${name}" (NOT_FOUND)`, 'SERVICE_UNKNOWN');
    } else if (code === Status.DEADLINE_EXCEEDED) {
      this.#setHealth('unhealthy', `health check timed out after ${this.#options.timeoutMs} ms`, undefined);
    } else {
      this.#setHealth('unhealthy', `health check failed with ${describe(code, details)}`, undefined);
    }
  }

  #onServingStatus(status: ServingStatus | undefined): void {
    if (status === undefined) {
      this.#setHealth('unhealthy', 'server sent a malformed HealthCheckResponse', undefined);
    } else if (status === 'SERVING') {
      this.#setHealth('healthy', 'server reported SERVING', status);
    } else {
      this.#setHealth('unhealthy', `server reported ${status}`, status);
    }
  }

  #unimplemented(method: 'Watch' | 'Check'): void {
    const reason = `server has no grpc.health.v1 service (${method} returned UNIMPLEMENTED): treated as healthy`;
    if (!this.#reportedUnimplemented) {
      this.#reportedUnimplemented = true;
      this.#events.next({ type: 'unimplemented', endpoint: this.address, reason });
    }
    this.#setHealth('healthy', reason, undefined);
  }
}

function describe(code: number, details: string): string {
  return details.length > 0 ? `${statusName(code)}: ${details}` : statusName(code);
}

/** Reads the first message and the final status of a committed response. */
function readOne(res: GrpcResponse): Promise<{ message: Buffer | undefined; code: number; details: string }> {
  return new Promise((resolve) => {
    let message: Buffer | undefined;
    res.stream.start({
      onMessage: (m) => {
        message ??= m;
        res.stream.read();
      },
      onStatus: (s) => resolve({ message, code: s.code, details: s.details }),
    });
    res.stream.read();
  });
}
