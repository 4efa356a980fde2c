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
  type Endpoint,
  Status,
  background,
  linkedScope,
  statusName,
  toGrpcTowerError,
  withTimeout,
} from '@grpc-tower/core';
import { EventStream } from '@grpc-tower/core/internal';
import { type GrpcRequest, type GrpcResponse, RequestMessages } from '@grpc-tower/core/grpc';
import { Metadata } from '@grpc/grpc-js';
import type { Observable } from 'rxjs';
import type { HealthEvent } from '../events.js';
import type { Probe } from './gate.js';
import { HealthGatedEndpoint } from './gated.js';
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
  const events = new EventStream<HealthEvent>();
  const wrap = (endpoint: Endpoint<GrpcRequest, GrpcResponse>): HealthCheckedEndpoint =>
    new HealthCheckedEndpoint(endpoint, resolved, events);
  return Object.assign(wrap, { events$: events.events$, options: resolved });
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
export class HealthCheckedEndpoint extends HealthGatedEndpoint<GrpcRequest, GrpcResponse> {
  readonly #options: ResolvedHealthCheckOptions;
  readonly #events: EventStream<HealthEvent>;
  readonly #request: Buffer;
  /** The current backoff ceiling, 0 before the first failure. */
  #backoffMs = 0;
  /** Whether the Watch in flight delivered a message (A17: resets the backoff). */
  #received = false;
  #reportedUnimplemented = false;

  /** @internal use {@link healthChecked}. */
  constructor(
    inner: Endpoint<GrpcRequest, GrpcResponse>,
    options: ResolvedHealthCheckOptions,
    events: EventStream<HealthEvent>,
  ) {
    super('healthChecked', inner, events);
    this.#options = options;
    this.#events = events;
    this.#request = encodeHealthCheckRequest(options.service);
    this.gate.open();
  }

  /** The last serving status the server sent, if any. */
  get servingStatus(): ServingStatus | undefined {
    return this.gate.servingStatus;
  }

  /** @internal The verdict, as `lastError` says it while the endpoint is held out: `health check: NOT_SERVING`. */
  protected override verdict(): string {
    return `health check: ${this.gate.servingStatus ?? 'unhealthy'}`;
  }

  /** @internal a new connection: a fresh check, at once. */
  protected override onConnected(): void {
    this.#backoffMs = 0;
    this.gate.startProbe();
  }

  /** @internal */
  protected override probe(): void {
    if (this.#options.mode === 'watch') this.#watch();
    else this.#check();
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

  #watch(): void {
    this.#received = false;
    const { probe, response, settle } = this.gate.begin(
      linkedScope(background),
      this.#healthRequest(WATCH_METHOD, 'serverStream'),
    );
    response.then(
      (res) => {
        res.stream.start({
          onMessage: (message) => {
            if (!this.gate.current(probe)) return;
            this.#received = true;
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
    if (!this.gate.end(probe)) return; // stopped on purpose
    if (code === Status.UNIMPLEMENTED) {
      this.#unimplemented('Watch');
      return;
    }
    this.gate.setHealth('unhealthy', `health watch ended with ${describe(code, details)}`);
    this.gate.schedule(this.#received ? 0 : this.#nextBackoff());
  }

  #check(): void {
    const { probe, response, settle } = this.gate.begin(
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
          if (!this.gate.end(probe)) return;
          if (code === Status.OK && message !== undefined) {
            this.#onServingStatus(decodeHealthCheckResponse(message));
          } else {
            this.#checkFailed(code, details);
          }
          this.gate.schedule(this.#options.intervalMs);
        },
        (err: unknown) => {
          settle();
          if (!this.gate.end(probe)) return;
          const e = toGrpcTowerError(err, this.address);
          if (e.code === Status.UNIMPLEMENTED) {
            this.#unimplemented('Check');
            return;
          }
          this.#checkFailed(e.code, e.message);
          this.gate.schedule(this.#options.intervalMs);
        },
      );
  }

  #checkFailed(code: number, details: string): void {
    if (code === Status.NOT_FOUND) {
      const name = this.#options.service;
      this.gate.setHealth(
        'unhealthy',
        `server does not know service "${name}" (NOT_FOUND)`,
        'SERVICE_UNKNOWN',
      );
    } else if (code === Status.DEADLINE_EXCEEDED) {
      this.gate.setHealth('unhealthy', `health check timed out after ${this.#options.timeoutMs} ms`);
    } else {
      this.gate.setHealth('unhealthy', `health check failed with ${describe(code, details)}`);
    }
  }

  #onServingStatus(status: ServingStatus | undefined): void {
    if (status === undefined) {
      this.gate.setHealth('unhealthy', 'server sent a malformed HealthCheckResponse');
    } else if (status === 'SERVING') {
      this.gate.setHealth('healthy', 'server reported SERVING', status);
    } else {
      this.gate.setHealth('unhealthy', `server reported ${status}`, status);
    }
  }

  #unimplemented(method: 'Watch' | 'Check'): void {
    const reason = `server has no grpc.health.v1 service (${method} returned UNIMPLEMENTED): treated as healthy`;
    if (!this.#reportedUnimplemented) {
      this.#reportedUnimplemented = true;
      this.#events.emit(() => ({ type: 'unimplemented', endpoint: this.address, reason }));
    }
    this.gate.setHealth('healthy', reason);
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
