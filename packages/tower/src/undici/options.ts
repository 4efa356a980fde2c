/**
 * What `towerDispatcher` takes and gives: its options, the telemetry it
 * accepts, the snapshot of its parts and their event streams; and the
 * checks of the options that nothing else checks, giving the dispatcher's
 * own settings.
 *
 * @module
 */
import type { SecureClientSessionOptions } from 'node:http2';
import type { BalancerEvent, BalancerStats } from '@grpc-tower/balance';
import { DEFAULT_CLOSE_GRACE_MS, TIMER_RULE, optionChecks } from '@grpc-tower/core/internal';
import type { Http2Request, Http2Response } from '@grpc-tower/core/http2';
import type { DiscoveredAddress, DnsOptions } from '@grpc-tower/discover';
import type { Discover } from '@grpc-tower/core';
import type { HealthEvent, HttpHealthCheckOptions, OutlierStats } from '@grpc-tower/health';
import type { HttpRetryPolicy, RetryEvent, RetryStats } from '@grpc-tower/retry';
import type { Observable } from 'rxjs';
import { type Dispatcher, errors } from 'undici';
import type { StackOptions, TowerInstrumentation } from '../recipe.js';

/** The name errors give for where a bad option was found. */
export const WHERE = 'towerDispatcher';

/** undici's own default of `headersTimeout` and `bodyTimeout`: 300 s. */
const UNDICI_TIMEOUT_MS = 300_000;

/** The default replay buffer of a streamed request body: 1 MiB, as gRPC's per-call buffer. */
const DEFAULT_REPLAY_BYTES = 1024 * 1024;

/**
 * Options of {@link towerDispatcher}: each changes one part of the stack
 * and leaves the rest as documented.
 *
 * @example
 * ```ts
 * const options: TowerDispatcherOptions = {
 *   dns: { intervalMs: 10_000 },
 *   health: { path: '/healthz' },
 *   retry: { maxAttempts: 3 },
 *   timeoutMs: 5_000,
 * };
 * ```
 */
export interface TowerDispatcherOptions extends StackOptions<Http2Request, Http2Response> {
  /**
   * Discovers the servers instead of DNS (a registry, `staticList`,
   * `etcd`, `kubernetes`): a `Discover` stream of `{ address }` values
   * (`host:port`). The origin still names the dispatcher and gives the
   * TLS server name and `:authority`. Default: `dns(host, port)` of the
   * origin, re-resolved every 5 s.
   */
  readonly discovery?: Discover<string, DiscoveredAddress>;
  /** Options of the default DNS source (interval, families, servers, TTLs…). */
  readonly dns?: DnsOptions;
  /**
   * TLS and session options of every HTTP/2 session (as `http2Endpoint`
   * takes them: TLS options for `tls.connect`, session options for
   * `http2.connect`): `ca`, client certificates, `settings`… The TLS server
   * name is the origin's host (an IP origin sends none); `servername` here
   * overrides it.
   */
  readonly connectOptions?: SecureClientSessionOptions;
  /**
   * The grace time, in ms: how long the requests in flight may go on after
   * `close()` (waiting for a server, retrying, streaming their body) before
   * those left are aborted with `GraceExpiredError` (UNAVAILABLE, "…
   * closed: the 30000 ms grace time ran out"), and how long a server that
   * discovery removed lets its requests finish. Default 30 000, Kubernetes'
   * default termination grace. `close({ graceMs })` overrides it for one
   * close; `destroy()` aborts at once.
   */
  readonly closeGraceMs?: number;
  /**
   * Active HTTP health checks (`GET <path>` on each server's own session,
   * Envoy's HTTP health checker): options with the `path`, or `false`.
   * Default off: HTTP has no standard health path, and checking one the
   * servers do not serve would fail them all (`towerChannel`'s gRPC checks
   * are on by default, since gRPC has a standard health service).
   */
  readonly health?: HttpHealthCheckOptions | false;
  /**
   * The retry policy, or `false` for no retries. Default `httpRetry`'s:
   * at most 3 attempts; idempotent requests (GET, HEAD, OPTIONS, PUT,
   * DELETE, or `idempotent: true`) on 502/503/504 and lost connections;
   * refused streams always; `Retry-After` honoured; within a fresh
   * `retryBudget()` (a policy given here gets one too unless it names its
   * own).
   */
  readonly retry?: HttpRetryPolicy | false;
  /**
   * A deadline over each whole request, in ms: every attempt, backoff and
   * the response body until its end. Default: none (undici's
   * `headersTimeout` and `bodyTimeout` still apply).
   */
  readonly timeoutMs?: number;
  /**
   * The default of undici's `headersTimeout`: the longest wait for the
   * response headers, in ms, over all attempts; 0 for none. Default
   * 300 000, undici's. A request's own `headersTimeout` wins.
   */
  readonly headersTimeout?: number;
  /**
   * The default of undici's `bodyTimeout`: the longest gap between two
   * chunks of the response body while it is read, in ms (a paused reader's
   * time does not count); 0 for none. Default 300 000, undici's. A
   * request's own `bodyTimeout` wins.
   */
  readonly bodyTimeout?: number;
  /**
   * The bytes of a streamed request body kept so that the request can be
   * sent again (a retry, a refused stream) while the body has not passed
   * them; default 1 MiB. 0 keeps none: a streamed body is never re-sent.
   */
  readonly replayBytes?: number;
  /**
   * Where requests to other origins go: any undici `Dispatcher` (an
   * `Agent` for the rest of the internet), so the dispatcher can be the
   * global one. Default: none, and such a request fails with undici's
   * `InvalidArgumentError` naming both origins. Not closed with this
   * dispatcher: it is yours.
   */
  readonly fallback?: Dispatcher;
  /**
   * Metrics and traces of the whole stack: `telemetry()` from
   * `@grpc-tower/telemetry` (OpenTelemetry; register the SDK before creating
   * the dispatcher), labelled with the origin. Each attempt records
   * OpenTelemetry's `http.client.request.duration` and a client span
   * (`traceparent` sent in its headers); the servers' connections, the
   * balancer, the health checks, the outlier detector, discovery and the
   * retry budget are followed as for `towerChannel`, until the dispatcher
   * closes. Default: none.
   */
  readonly telemetry?: TowerHttpTelemetry;
}

/**
 * What {@link TowerDispatcherOptions.telemetry} takes: `@grpc-tower/telemetry`'s
 * `telemetry()` is one; any object of this shape will do.
 *
 * @example
 * ```ts
 * import { telemetry } from '@grpc-tower/telemetry';
 * const t: TowerHttpTelemetry = telemetry();
 * ```
 */
export interface TowerHttpTelemetry {
  /** The telemetry of one dispatcher, labelled with its origin. */
  instrumentHttp(origin: string): TowerInstrumentation<Http2Request, Http2Response>;
}

/**
 * A snapshot of a {@link TowerDispatcher}'s parts.
 *
 * @example
 * ```ts
 * const { balancer, inFlight } = dispatcher.stats();
 * console.log(balancer.counts.ready, 'servers ready,', inFlight, 'requests in flight');
 * ```
 */
export interface TowerDispatcherStats {
  /** The requests dispatched and not over yet. */
  readonly inFlight: number;
  /** The balancer's endpoints, counts and waiting requests. */
  readonly balancer: BalancerStats<string>;
  /** The retry layer's counts; absent with `retry: false`. */
  readonly retry?: RetryStats;
  /** The outlier detector's view of each server; absent with `outlierDetection: false`. */
  readonly outlier?: OutlierStats;
}

/**
 * The event streams of a {@link TowerDispatcher}'s parts (hot; an event is
 * built only while somebody subscribes).
 *
 * @example
 * ```ts
 * dispatcher.events.retry?.subscribe((e) => console.log(e.type, e.method));
 * dispatcher.events.outlier?.subscribe((e) => console.warn(e.type, e.endpoint));
 * ```
 */
export interface TowerDispatcherEvents {
  /** Endpoints added, removed, ready, failed; panic and zone decisions. */
  readonly balancer: Observable<BalancerEvent<string>>;
  /** One event per step of each request's attempts; absent with `retry: false`. */
  readonly retry?: Observable<RetryEvent>;
  /** Health transitions of the checked servers; absent without `health`. */
  readonly health?: Observable<HealthEvent>;
  /** Ejections and returns; absent with `outlierDetection: false`. */
  readonly outlier?: Observable<HealthEvent>;
}

/** Whether `x` looks like an undici `Dispatcher` (from this or another copy of undici, Node's own included). */
const isDispatcher = (x: unknown): x is Dispatcher =>
  typeof x === 'object' && x !== null && typeof (x as { dispatch?: unknown }).dispatch === 'function';

/** The dispatcher's own settings, checked before anything is built. */
export interface Settings {
  readonly fallback: Dispatcher | undefined;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  readonly replayBytes: number;
  readonly timeoutMs: number | undefined;
  readonly closeGraceMs: number;
}

/** A request's own `headersTimeout` or `bodyTimeout`, checked as undici checks it, else the dispatcher's. */
export function timeoutOf(name: string, value: number | null | undefined, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new errors.InvalidArgumentError(`invalid ${name}`);
  return value;
}

/** Checks the options that nothing else checks; returns the dispatcher's own settings. */
export function checkOptions(options: TowerDispatcherOptions): Settings {
  const check = optionChecks(WHERE);
  if (options.fallback !== undefined && !isDispatcher(options.fallback)) {
    throw check.error('fallback', options.fallback, 'an undici Dispatcher (such as new Agent())');
  }
  if (options.connectOptions !== undefined) check.object('connectOptions', options.connectOptions);
  return {
    fallback: options.fallback,
    headersTimeout: check.number('headersTimeout', options.headersTimeout, TIMER_RULE, UNDICI_TIMEOUT_MS),
    bodyTimeout: check.number('bodyTimeout', options.bodyTimeout, TIMER_RULE, UNDICI_TIMEOUT_MS),
    replayBytes: check.number('replayBytes', options.replayBytes, { min: 0 }, DEFAULT_REPLAY_BYTES),
    timeoutMs:
      options.timeoutMs === undefined ? undefined : check.number('timeoutMs', options.timeoutMs, TIMER_RULE),
    closeGraceMs: check.number('closeGraceMs', options.closeGraceMs, TIMER_RULE, DEFAULT_CLOSE_GRACE_MS),
  };
}
