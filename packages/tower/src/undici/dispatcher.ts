/**
 * `towerDispatcher`: an undici `Dispatcher` whose requests to one logical
 * origin go through a grpc-tower stack over the origin's discovered HTTP/2
 * servers, so that `fetch(url, { dispatcher })` and
 * `request(url, { dispatcher })` get per-request balancing, retries and
 * outlier detection across every server behind the name instead of one
 * connection to one of them.
 *
 * discovery (DNS of the origin's host, or yours) → one `http2Endpoint` per
 * address (one HTTP/2 session each; TLS with the origin's host as SNI and
 * `:authority`) → HTTP health checks (when asked for) → outlier detection
 * with HTTP's outcomes (5xx and failed connections count, 4xx never) →
 * P2C with PeakEWMA → `httpRetry` (idempotent requests on 502/503/504 and
 * lost connections, refused streams always, `Retry-After` honoured, within
 * a retry budget) → the request's deadline (`timeoutMs`), with
 * OpenTelemetry's HTTP client metrics and spans when given `telemetry`.
 * The stack is the one `towerChannel` builds, from the same recipe
 * (`recipe.ts`), with HTTP/2's pieces.
 *
 * @module
 */
import type { SecureClientSessionOptions } from 'node:http2';
import { isIP } from 'node:net';
import type { BalancerEvent, BalancerStats } from '@grpc-tower/balance';
import {
  type CloseOptions,
  ConfigError,
  GraceExpiredError,
  type Readiness,
  type Service,
} from '@grpc-tower/core';
import {
  DEFAULT_CLOSE_GRACE_MS,
  Grace,
  TIMER_RULE,
  graceOf,
  optionChecks,
  untrackedCall,
} from '@grpc-tower/core/internal';
import {
  type Http2EndpointOptions,
  type Http2Request,
  type Http2Response,
  http2Endpoint,
  httpProtocol,
} from '@grpc-tower/core/http2';
import { type DiscoveredAddress, type Discover, type DnsOptions, dns } from '@grpc-tower/discover';
import {
  type HealthEvent,
  type HttpHealthCheckOptions,
  type OutlierStats,
  httpHealthChecked,
} from '@grpc-tower/health';
import { type HttpRetryPolicy, type RetryEvent, type RetryStats, httpRetry } from '@grpc-tower/retry';
import type { Observable } from 'rxjs';
import { Dispatcher, errors } from 'undici';
import { type AnyDispatchHandler, Exchange, type ExchangeSettings } from './exchange.js';
import { toHttp2Request } from './request.js';
import { endpointOptionsFor } from '../endpoint-options.js';
import { type StackOptions, type StackParts, type TowerInstrumentation, buildStack } from '../recipe.js';

const WHERE = 'towerDispatcher';

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

/** The origin, split: `http://orders.internal:8080` → scheme, host, port, `:authority`. */
interface Origin {
  /** As `URL.origin` writes it (lower-case host, no default port). */
  readonly origin: string;
  readonly scheme: 'http' | 'https';
  /** Without IPv6 brackets. */
  readonly host: string;
  readonly port: number;
  /** `host[:port]`, as `URL.host` writes it. */
  readonly authority: string;
}

const ORIGIN_EXPECTED =
  'an http: or https: origin such as "http://orders.internal:8080" or "https://orders.internal" ' +
  '(scheme, host and port only)';

function parseOrigin(origin: unknown): Origin {
  if (typeof origin !== 'string' || !URL.canParse(origin)) {
    throw new ConfigError(WHERE, 'origin', origin, ORIGIN_EXPECTED);
  }
  const url = new URL(origin);
  const scheme = url.protocol === 'http:' ? 'http' : url.protocol === 'https:' ? 'https' : undefined;
  if (
    scheme === undefined ||
    url.username !== '' ||
    url.password !== '' ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search !== '' ||
    url.hash !== '' ||
    url.hostname === ''
  ) {
    throw new ConfigError(WHERE, 'origin', origin, ORIGIN_EXPECTED);
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port);
  return { origin: url.origin, scheme, host, port, authority: url.host };
}

/** The origin of a request's `opts.origin`, as `URL.origin` writes it, or `undefined` when it cannot be read. */
/** The last origin string parsed, and its origin: a client sends the same one request after request. */
let lastOrigin: { readonly text: string; readonly origin: string | undefined } | undefined;

function originOf(value: unknown): string | undefined {
  if (value instanceof URL) return value.origin;
  if (typeof value !== 'string') return undefined;
  if (lastOrigin?.text === value) return lastOrigin.origin;
  const origin = URL.canParse(value) ? new URL(value).origin : undefined;
  lastOrigin = { text: value, origin };
  return origin;
}

/** Whether `x` looks like an undici `Dispatcher` (from this or another copy of undici, Node's own included). */
const isDispatcher = (x: unknown): x is Dispatcher =>
  typeof x === 'object' && x !== null && typeof (x as { dispatch?: unknown }).dispatch === 'function';

/** The dispatcher's own settings, checked before anything is built. */
interface Settings {
  readonly fallback: Dispatcher | undefined;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  readonly replayBytes: number;
  readonly timeoutMs: number | undefined;
  readonly closeGraceMs: number;
}

type Parts = StackParts<Http2Request, Http2Response>;

/**
 * An undici `Dispatcher` over a grpc-tower stack, made by
 * {@link towerDispatcher}: pass it as `dispatcher` to undici's `fetch`,
 * `request`, `stream` or `pipeline` (or Node's own `fetch`, see the
 * guide), or compose undici interceptors over it.
 *
 * Honoured from undici's dispatch options: `origin` (the dispatcher's
 * own, else the `fallback`), `path`, `query`, `method`, `headers` (`host`
 * becomes `:authority`; `connection`, `proxy-connection` and
 * `http2-settings` are dropped, `transfer-encoding`, `keep-alive`,
 * `upgrade` and a `te` other than `trailers` refused, as undici's own
 * clients do), `body` (string, Buffer, Uint8Array, ArrayBuffer, Blob,
 * Readable, iterable or async iterable; a stream is sent with
 * backpressure and kept for a retry up to `replayBytes`), `idempotent`
 * (`true` lets a POST or PATCH be retried; `false` does not stop a GET or
 * PUT, whose method makes it idempotent), `headersTimeout`, `bodyTimeout`,
 * and the `signal` of `request()` and `fetch()` (through the controller's
 * `abort`: the HTTP/2 stream is reset with CANCEL). Accepted and without
 * effect over HTTP/2's shared sessions: `reset`, `blocking`,
 * `typeOfService`. Refused with undici's errors: `CONNECT` and `upgrade`
 * (`NotSupportedError`), `expectContinue: true` and an `expect` header
 * (`NotSupportedError`), `throwOnError` and `maxRedirections` (undici 7
 * refuses them too: use its interceptors; `fetch` follows redirects itself).
 *
 * The `context` a handler receives (and `request()` returns) carries
 * `endpoint`, the address of the server that answered.
 *
 * @example
 * ```ts
 * import { fetch, request } from 'undici';
 * import { towerDispatcher } from 'grpc-tower/undici';
 *
 * const orders = towerDispatcher('http://orders.internal:8080');
 * const res = await fetch('http://orders.internal:8080/orders/7', { dispatcher: orders });
 * const { statusCode, body, context } = await request('http://orders.internal:8080/orders', {
 *   dispatcher: orders,
 *   method: 'POST',
 *   body: JSON.stringify({ item: 'book' }),
 * });
 * await orders.close();
 * ```
 */
export class TowerDispatcher extends Dispatcher {
  /** The logical origin, as `URL.origin` writes it: `http://orders.internal:8080`. */
  readonly origin: string;
  readonly #authority: string;
  readonly #parts: Parts;
  readonly #settings: Settings;
  readonly #inFlight = new Set<Exchange>();
  /** The stack's outermost service: the dispatcher counts its requests itself. */
  readonly #service: Service<Http2Request, Http2Response>;
  /** While `close()` waits for the requests in flight. */
  #grace: Grace | undefined;
  #closed = false;
  #destroyed = false;
  #closing: Promise<void> | undefined;
  #shutdown: Promise<void> | undefined;

  /** @internal use {@link towerDispatcher}. */
  constructor(origin: Origin, settings: Settings, parts: Parts) {
    super();
    this.origin = origin.origin;
    this.#authority = origin.authority;
    this.#parts = parts;
    this.#settings = settings;
    this.#service = { call: untrackedCall(parts.stack) };
  }

  /** The stack's readiness: `ready` while a server is, `connecting`, `failed` when all failed, `closed`. */
  get readiness(): Readiness {
    return this.#parts.stack.readiness;
  }

  /** The readiness as it changes. */
  get readiness$(): Observable<Readiness> {
    return this.#parts.stack.readiness$;
  }

  /** Whether `close()` or `destroy()` was called: new requests are refused. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether `destroy()` was called. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** The event streams of the parts. */
  get events(): TowerDispatcherEvents {
    const { balancer, retries, health, detector } = this.#parts;
    return {
      balancer: balancer.events$,
      ...(retries === undefined ? {} : { retry: retries.events$ }),
      ...(health === undefined ? {} : { health: health.events$ }),
      ...(detector === undefined ? {} : { outlier: detector.events$ }),
    };
  }

  /** A snapshot of the parts: the balancer's endpoints, the retry counts, the outlier detector's view. */
  stats(): TowerDispatcherStats {
    const { balancer, retries, detector } = this.#parts;
    return {
      inFlight: this.#inFlight.size,
      balancer: balancer.stats(),
      ...(retries === undefined ? {} : { retry: retries.stats() }),
      ...(detector === undefined ? {} : { outlier: detector.stats() }),
    };
  }

  /**
   * Sends one request through the stack (undici's low-level API; `fetch`,
   * `request()` and the interceptors call it). Returns `true` when the
   * request was taken, `false` when it was refused at once (the handler
   * then got the error).
   */
  override dispatch(opts: Dispatcher.DispatchOptions, dispatchHandler: Dispatcher.DispatchHandler): boolean {
    const handler: AnyDispatchHandler = dispatchHandler;
    if (typeof handler !== 'object' || handler === null) {
      throw new errors.InvalidArgumentError('handler must be an object');
    }
    if (typeof handler.onResponseError !== 'function' && typeof handler.onError !== 'function') {
      throw new errors.InvalidArgumentError('handler must have an onResponseError (or onError) method');
    }
    if (typeof opts !== 'object' || opts === null) {
      return this.#refuse(opts, handler, new errors.InvalidArgumentError('opts must be an object.'));
    }
    if (opts.origin !== undefined && opts.origin !== null) {
      const origin = originOf(opts.origin);
      if (origin !== this.origin) {
        const fallback = this.#settings.fallback;
        if (fallback !== undefined) return fallback.dispatch(opts, handler);
        return this.#refuse(
          opts,
          handler,
          new errors.InvalidArgumentError(
            `towerDispatcher for ${this.origin} cannot send a request to ${origin ?? String(opts.origin)} ` +
              '(give it a fallback dispatcher for other origins)',
          ),
        );
      }
    }
    if (this.#destroyed) return this.#refuse(opts, handler, new errors.ClientDestroyedError());
    if (this.#closed) return this.#refuse(opts, handler, new errors.ClientClosedError());
    let exchange: Exchange;
    try {
      const req = toHttp2Request(opts, {
        authority: this.#authority,
        replayBytes: this.#settings.replayBytes,
      });
      exchange = new Exchange(req, handler, this.#exchangeSettings(opts), opts.body);
    } catch (err) {
      return this.#refuse(opts, handler, err as Error);
    }
    this.#inFlight.add(exchange);
    exchange.start();
    return true;
  }

  /**
   * Closes gracefully, as undici's dispatchers do: new requests are refused
   * at once (undici's `ClientClosedError`) and the promise resolves once
   * the requests in flight have ended (their bodies read or abandoned) and
   * the stack has closed (discovery stopped, every server's session closed,
   * the health checks and the outlier detector's timer stopped). The wait
   * is bounded by the grace time: `graceMs`, default the `closeGraceMs`
   * option (30 s); the requests still in flight then are aborted with
   * `GraceExpiredError` (their HTTP/2 streams reset). A second call may
   * shorten the grace, never lengthen it. No timer of the close outlives
   * the last request. With a callback, calls it instead of returning a
   * promise. Throws `ConfigError` for a bad `graceMs`.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => dispatcher.close({ graceMs: 20_000 }));
   * ```
   */
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(options: CloseOptions): Promise<void>;
  override close(arg?: (() => void) | CloseOptions): Promise<void> | undefined {
    const callback = typeof arg === 'function' ? arg : undefined;
    const options = typeof arg === 'object' && arg !== null ? arg : undefined;
    const graceMs = graceOf(`${WHERE}.close`, 'graceMs', options?.graceMs, this.#settings.closeGraceMs);
    this.#closed = true;
    if (this.#closing === undefined) this.#closing = this.#drainThenStop(graceMs);
    else if (this.#grace !== undefined) void this.#grace.wait(graceMs);
    if (callback === undefined) return this.#closing;
    this.#closing.then(() => callback());
    return undefined;
  }

  async #drainThenStop(graceMs: number): Promise<void> {
    let left = graceMs;
    if (this.#inFlight.size > 0) {
      const grace = new Grace();
      this.#grace = grace;
      if (!(await grace.wait(graceMs))) {
        const reason = new GraceExpiredError(`${WHERE} for ${this.origin}`, grace.graceMs);
        for (const exchange of [...this.#inFlight]) exchange.abort(reason);
      }
      left = grace.remainingMs();
      this.#grace = undefined;
    }
    await this.#stop(left);
  }

  /**
   * Closes at once: every request in flight fails with `err` (undici's
   * `ClientDestroyedError` when none is given), its HTTP/2 stream reset,
   * and the stack closes without a grace time.
   */
  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(
    errOrCallback?: Error | null | (() => void),
    maybeCallback?: () => void,
  ): Promise<void> | undefined {
    const callback = typeof errOrCallback === 'function' ? errOrCallback : maybeCallback;
    const err = typeof errOrCallback === 'function' ? undefined : (errOrCallback ?? undefined);
    this.#closed = true;
    this.#destroyed = true;
    const reason = err ?? new errors.ClientDestroyedError();
    for (const exchange of [...this.#inFlight]) exchange.abort(reason);
    const done = this.#stop(0);
    if (callback === undefined) return done;
    done.then(() => callback());
    return undefined;
  }

  #stop(graceMs?: number): Promise<void> {
    // the stack's close also stops the outlier detector and the telemetry
    this.#shutdown ??= this.#parts.stack.close(graceMs === undefined ? {} : { graceMs });
    return this.#shutdown;
  }

  /** The settings of a request that names no timeouts of its own (most do not): one object for all. */
  #defaultExchange: ExchangeSettings | undefined;

  #exchangeSettings(opts: Dispatcher.DispatchOptions): ExchangeSettings {
    if (opts.headersTimeout == null && opts.bodyTimeout == null) {
      this.#defaultExchange ??= {
        service: this.#service,
        headersTimeout: this.#settings.headersTimeout,
        bodyTimeout: this.#settings.bodyTimeout,
        timeoutMs: this.#settings.timeoutMs,
        done: this.#done,
      };
      return this.#defaultExchange;
    }
    return {
      service: this.#service,
      headersTimeout: timeoutOf('headersTimeout', opts.headersTimeout, this.#settings.headersTimeout),
      bodyTimeout: timeoutOf('bodyTimeout', opts.bodyTimeout, this.#settings.bodyTimeout),
      timeoutMs: this.#settings.timeoutMs,
      done: this.#done,
    };
  }

  readonly #done = (exchange: Exchange): void => {
    this.#inFlight.delete(exchange);
    if (this.#inFlight.size === 0) this.#grace?.ended();
  };

  /** Gives the handler `err` for a request that was never sent; returns `false`, as undici's dispatchers do. */
  #refuse(opts: unknown, handler: AnyDispatchHandler, err: Error): boolean {
    const body = typeof opts === 'object' && opts !== null ? (opts as { body?: unknown }).body : undefined;
    const settings: ExchangeSettings = { ...REFUSED, service: this.#parts.stack };
    new Exchange({ path: '/' }, handler, settings, body).refuse(err);
    return false;
  }
}

/** The settings of an exchange that is refused before it starts. */
const REFUSED = { headersTimeout: 0, bodyTimeout: 0, timeoutMs: undefined, done: (): void => undefined };

/** A request's own `headersTimeout` or `bodyTimeout`, checked as undici checks it, else the dispatcher's. */
function timeoutOf(name: string, value: number | null | undefined, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new errors.InvalidArgumentError(`invalid ${name}`);
  return value;
}

/** Checks the options that nothing else checks; returns the dispatcher's own settings. */
function checkOptions(options: TowerDispatcherOptions): Settings {
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

/**
 * Builds the grpc-tower stack for `origin` (`'http://orders.internal:8080'`
 * for cleartext HTTP/2, h2c; `'https://orders.internal'` for TLS) and
 * returns it as an undici `Dispatcher` (see {@link TowerDispatcher} for
 * the undici options it honours). Requests to other origins go to
 * `options.fallback`, or fail.
 *
 * The servers must speak HTTP/2 (h2c with prior knowledge for `http:`,
 * ALPN `h2` for `https:`): one session per server carries every request.
 *
 * Throws `ConfigError` naming the option for a bad origin or option.
 *
 * @example
 * ```ts
 * import { Agent, fetch, setGlobalDispatcher } from 'undici';
 * import { towerDispatcher } from 'grpc-tower/undici';
 *
 * const orders = towerDispatcher('https://orders.internal', {
 *   connectOptions: { ca: readFileSync('ca.pem') },
 *   health: { path: '/healthz' },
 *   fallback: new Agent(), // everything else goes out as usual
 * });
 * setGlobalDispatcher(orders);
 * const res = await fetch('https://orders.internal/orders/7'); // balanced over every address of orders.internal
 * ```
 */
export function towerDispatcher(origin: string, options: TowerDispatcherOptions = {}): TowerDispatcher {
  const parsed = parseOrigin(origin);
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(WHERE, 'options', options, 'an object');
  }
  const settings = checkOptions(options);
  const base: Http2EndpointOptions = {
    scheme: parsed.scheme,
    // the TLS server name (SNI) and the certificate's name: the origin's host, unless it is an IP
    ...(isIP(parsed.host) === 0 ? { authority: parsed.host } : {}),
    ...(options.connectOptions === undefined ? {} : { connectOptions: options.connectOptions }),
    ...(options.closeGraceMs === undefined ? {} : { closeGraceMs: options.closeGraceMs }),
  };
  return buildStack(
    {
      where: WHERE,
      target: parsed.origin,
      endpoint: (a: DiscoveredAddress) => http2Endpoint(a.address, endpointOptionsFor(base, a)),
      // HTTP has no standard health path: checked only when given one
      health: { make: httpHealthChecked, byDefault: undefined },
      // the request's deadline is the exchange's: it covers the response body too
      timeoutMs: undefined,
      protocol: httpProtocol(),
      retry: (policy, protocol) => httpRetry(policy, protocol),
      instrument: 'instrumentHttp',
    },
    () => options.discovery ?? dns(parsed.host, parsed.port, options.dns),
    options,
    (parts) => new TowerDispatcher(parsed, settings, parts),
  );
}
