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
import { isIP } from 'node:net';
import {
  type CloseOptions,
  ConfigError,
  GraceExpiredError,
  type Readiness,
  type Service,
} from '@grpc-tower/core';
import { Grace, graceOf, untrackedCall } from '@grpc-tower/core/internal';
import {
  type Http2EndpointOptions,
  type Http2Request,
  type Http2Response,
  http2Endpoint,
  httpProtocol,
} from '@grpc-tower/core/http2';
import { type DiscoveredAddress, dns } from '@grpc-tower/discover';
import { httpHealthChecked } from '@grpc-tower/health';
import { httpRetry } from '@grpc-tower/retry';
import type { Observable } from 'rxjs';
import { Dispatcher, errors } from 'undici';
import { type AnyDispatchHandler, Exchange, type ExchangeSettings } from './exchange.js';
import { toHttp2Request } from './request.js';
import { type StackParts, buildStack } from '../recipe.js';

import {
  type Settings,
  type TowerDispatcherEvents,
  type TowerDispatcherOptions,
  type TowerDispatcherStats,
  WHERE,
  checkOptions,
  timeoutOf,
} from './options.js';
import { type Origin, originOf, parseOrigin } from './origin.js';

export type {
  TowerDispatcherEvents,
  TowerDispatcherOptions,
  TowerDispatcherStats,
  TowerHttpTelemetry,
} from './options.js';

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
      // the address's weight, zone and hints travel on the insert `connect` hands on
      endpoint: (a: DiscoveredAddress) => http2Endpoint(a.address, base),
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
