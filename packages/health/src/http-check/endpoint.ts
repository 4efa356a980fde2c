/**
 * Active health checking over HTTP, modelled on Envoy's HTTP health
 * checker: an endpoint wrapper for `http2Endpoint` (or any
 * `Endpoint<Http2Request, Http2Response>`) that asks `GET <path>` every
 * `intervalMs` and gates the endpoint's readiness on the answers, so a
 * balancer that picks only `ready` endpoints stops sending to an unhealthy
 * server without knowing about health checks. The `grpc.health.v1`
 * counterpart is `healthChecked`; both share the same gating and events.
 *
 * What it does, per endpoint:
 * - when the inner endpoint becomes `ready` (a session is up), it sends a
 *   check through that endpoint — on its session, with its `:authority` —
 *   after `initialJitterMs` the first time, at once on a later connection,
 *   and holds the endpoint at `connecting` until the first answer, as
 *   `healthChecked` does (gRPC A17's reasoning: calls queued during the
 *   connect should not land on a server about to say it is unhealthy);
 * - an answer is a success when its status is in `expectedStatuses`; a
 *   status outside them, no answer within `timeoutMs`, or a failed request
 *   (a reset stream, a lost session) is a failure;
 * - the first answer on a connection decides at once (`ready` or
 *   `failed`), as Envoy's first check does at startup; after that
 *   `unhealthyThreshold` failures in a row make it `failed`, and
 *   `healthyThreshold` successes in a row make it `ready` again;
 * - each check waits for the previous one to end, then `intervalMs`;
 * - when the connection is lost, checks stop and the verdict goes back to
 *   `unknown`; they start again on the next connection (often a restarted
 *   server, whose history says nothing);
 * - `close()` aborts the check in flight, clears the timer and closes the
 *   inner endpoint.
 *
 * Calls are passed through whatever the health says (gating is the
 * balancer's job, which lets a balancer in panic mode still use an
 * unhealthy endpoint). The checks go straight to the inner endpoint: they
 * are not counted in `pending`, and a layer or detector outside the
 * wrapper never sees them.
 *
 * @module
 */
import {
  DeadlineExceededError,
  type Endpoint,
  background,
  toGrpcTowerError,
  withTimeout,
} from '@grpc-tower/core';
import type { Http2Request, Http2Response } from '@grpc-tower/core/http2';
import { EventStream } from '@grpc-tower/core/internal';
import type { Observable } from 'rxjs';
import type { HealthEvent } from '../events.js';
import { HealthGatedEndpoint } from '../health-check/gated.js';
import {
  type HttpHealthCheckOptions,
  type ResolvedHttpHealthCheckOptions,
  resolveHttpHealthCheckOptions,
} from './options.js';

/**
 * The function {@link httpHealthChecked} returns: wraps an HTTP/2 endpoint
 * in an {@link HttpHealthCheckedEndpoint}; its `events$` carries the
 * health transitions of every endpoint it wrapped.
 *
 * @example
 * ```ts
 * const health: HttpHealthChecker = httpHealthChecked({ path: '/healthz' });
 * health.events$.subscribe((e) => console.log(e));
 * const ep = health(http2Endpoint('127.0.0.2:8080', { scheme: 'http' }));
 * ```
 */
export interface HttpHealthChecker {
  (endpoint: Endpoint<Http2Request, Http2Response>): HttpHealthCheckedEndpoint;
  /** Health transitions of every wrapped endpoint (a hot stream). */
  readonly events$: Observable<HealthEvent>;
  /** The checked options with their defaults. */
  readonly options: ResolvedHttpHealthCheckOptions;
}

/**
 * Makes an endpoint wrapper that checks each HTTP/2 endpoint's health with
 * `GET <path>` and gates its readiness on the answers (see the module
 * documentation for the rules). Throws `ConfigError` naming the option for
 * a bad one; `path` is required.
 *
 * Put it right around the HTTP/2 endpoint, inside outlier detection:
 * `detector.wrap(health(http2Endpoint(address, { scheme: 'http' })))`. The
 * checks go through that endpoint, on its session: the wrapper opens no
 * connection of its own.
 *
 * @example
 * ```ts
 * import { http2Endpoint } from '@grpc-tower/core/http2';
 * import { connect, dns } from '@grpc-tower/discover';
 * import { p2c } from '@grpc-tower/balance';
 *
 * const health = httpHealthChecked({ path: '/healthz', intervalMs: 5_000, unhealthyThreshold: 2 });
 * const endpoints = connect(dns('items.internal', 8080), (a) =>
 *   health(http2Endpoint(a.address, { scheme: 'http' })),
 * );
 * const balancer = p2c(endpoints, { target: 'items' }); // picks only servers whose /healthz answers 2xx or 3xx
 * ```
 */
export function httpHealthChecked(options: HttpHealthCheckOptions): HttpHealthChecker {
  const resolved = resolveHttpHealthCheckOptions(options);
  const events = new EventStream<HealthEvent>();
  const wrap = (endpoint: Endpoint<Http2Request, Http2Response>): HttpHealthCheckedEndpoint =>
    new HttpHealthCheckedEndpoint(endpoint, resolved, events);
  return Object.assign(wrap, { events$: events.events$, options: resolved });
}

/**
 * An HTTP/2 endpoint whose readiness also reflects its health-check
 * answers. Made by an {@link HttpHealthChecker}.
 *
 * @example
 * ```ts
 * const ep = httpHealthChecked({ path: '/healthz' })(http2Endpoint('127.0.0.2:8080', { scheme: 'http' }));
 * ep.readiness$.subscribe((r) => console.log(ep.address, r, ep.health, ep.lastStatus));
 * ```
 */
export class HttpHealthCheckedEndpoint extends HealthGatedEndpoint<Http2Request, Http2Response> {
  readonly #options: ResolvedHttpHealthCheckOptions;
  /** The one request every check sends. */
  readonly #request: Http2Request;
  /** `GET /healthz`, for the reasons. */
  readonly #what: string;
  /** Whether the next connection is the first (the only one `initialJitterMs` delays). */
  #first = true;
  /** Successes (> 0) or failures (< 0) in a row on this connection. */
  #run = 0;
  #lastStatus: number | undefined;
  /** The last failure, as `lastError` gives it: `503`, `timed out after 1000 ms`, … */
  #failure = '';

  /** @internal use {@link httpHealthChecked}. */
  constructor(
    inner: Endpoint<Http2Request, Http2Response>,
    options: ResolvedHttpHealthCheckOptions,
    events: EventStream<HealthEvent>,
  ) {
    super('httpHealthChecked', inner, events);
    this.#options = options;
    this.#request =
      options.headers === undefined
        ? { method: 'GET', path: options.path }
        : { method: 'GET', path: options.path, headers: options.headers };
    this.#what = `GET ${options.path}`;
    this.gate.open();
  }

  /** The HTTP status of the last check that was answered, if any. */
  get lastStatus(): number | undefined {
    return this.#lastStatus;
  }

  /**
   * @internal The verdict, as `lastError` says it while the endpoint is
   * held out: `health check GET /healthz: 503`, `health check GET
   * /healthz: timed out after 1000 ms`.
   */
  protected override verdict(): string {
    return `health check ${this.#what}: ${this.#failure}`;
  }

  /** @internal a new connection: the first check after `initialJitterMs` the first time, else at once. */
  protected override onConnected(): void {
    this.#run = 0;
    const jitter = this.#first ? this.#options.initialJitterMs * this.#options.random() : 0;
    this.#first = false;
    if (jitter >= 1) this.gate.schedule(Math.round(jitter));
    else this.gate.startProbe();
  }

  /** @internal */
  protected override probe(): void {
    const { timeoutMs } = this.#options;
    const { probe, response, settle } = this.gate.begin(withTimeout(background, timeoutMs), this.#request);
    response.then(
      (res) => {
        settle();
        if (!this.gate.end(probe)) return;
        this.#lastStatus = res.status;
        if (this.#expected(res.status)) this.#success(`${this.#what} answered ${res.status}`);
        else this.#failed(String(res.status), `${this.#what} answered ${res.status}`);
      },
      (err: unknown) => {
        const timedOut = probe.scope.context.aborted && err instanceof DeadlineExceededError;
        settle();
        if (!this.gate.end(probe)) return; // stopped on purpose: closed, or the connection went away
        const why = timedOut
          ? `timed out after ${timeoutMs} ms`
          : toGrpcTowerError(err, this.address).message;
        this.#failed(why, `${this.#what} ${timedOut ? why : `failed: ${why}`}`);
      },
    );
  }

  #expected(status: number): boolean {
    for (const [from, to] of this.#options.expectedStatuses) if (status >= from && status <= to) return true;
    return false;
  }

  #success(reason: string): void {
    this.#run = this.#run > 0 ? this.#run + 1 : 1;
    const health = this.gate.health;
    if (health === 'unknown' || (health === 'unhealthy' && this.#run >= this.#options.healthyThreshold)) {
      this.gate.setHealth('healthy', this.#run > 1 ? `${reason} (${this.#run} in a row)` : reason);
    }
    this.gate.schedule(this.#options.intervalMs);
  }

  #failed(failure: string, reason: string): void {
    this.#run = this.#run < 0 ? this.#run - 1 : -1;
    const health = this.gate.health;
    if (health === 'unknown' || (health === 'healthy' && -this.#run >= this.#options.unhealthyThreshold)) {
      this.#failure = failure;
      this.gate.setHealth('unhealthy', -this.#run > 1 ? `${reason} (${-this.#run} in a row)` : reason);
    } else if (health === 'unhealthy') {
      this.#failure = failure; // still out: say why now
    }
    this.gate.schedule(this.#options.intervalMs);
  }
}
