/**
 * An {@link Endpoint} for plain HTTP/2 requests to one origin, built on
 * `node:http2`. One session per endpoint is reused by every request; the
 * endpoint is `ready` while that session is connected, reconnects with
 * exponential backoff after a failure, and moves to a fresh session when the
 * server sends GOAWAY (requests already accepted finish on the old one).
 *
 * This lets the same layers — discovery, p2c, retry, timeout — serve HTTP/2
 * clients that are not gRPC.
 *
 * The scheme is required, never defaulted: `'https'` for TLS, or `'http'`
 * to choose cleartext (h2c).
 *
 * @module
 */
import * as http2 from 'node:http2';
import { BehaviorSubject, type Observable, distinctUntilChanged } from 'rxjs';
import { type CallContext, abortReason } from '../context.js';
import { type Endpoint, type Readiness, checkForZones, checkWeight, checkZone } from '../endpoint.js';
import { ClosedError, ConfigError, GrpcTowerError, UnavailableError } from '../errors.js';
import { formatAddress, parseAddress } from '../address.js';
import { Status } from '../status.js';

/**
 * One HTTP/2 request.
 *
 * @example
 * ```ts
 * const req: Http2Request = { method: 'GET', path: '/healthz' };
 * ```
 */
export interface Http2Request {
  readonly method?: string;
  readonly path: string;
  readonly headers?: http2.OutgoingHttpHeaders;
  readonly body?: Buffer | string;
}

/**
 * A buffered HTTP/2 response.
 *
 * @example
 * ```ts
 * if (res.status === 200) JSON.parse(res.body.toString('utf8'));
 * ```
 */
export interface Http2Response {
  readonly endpoint: string;
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * A request failed at the HTTP/2 layer. `refused` is true when the server
 * never processed it (REFUSED_STREAM, or GOAWAY before it was accepted), so
 * it is safe to send again.
 *
 * @example
 * ```ts
 * if (err instanceof Http2RequestError && err.refused) retryElsewhere();
 * ```
 */
export class Http2RequestError extends UnavailableError {
  readonly refused: boolean;
  constructor(message: string, options: { endpoint: string; refused: boolean; cause?: unknown }) {
    super(message, { endpoint: options.endpoint, cause: options.cause });
    this.refused = options.refused;
  }
}

/** Options of {@link http2Endpoint}. */
export interface Http2EndpointOptions {
  /** Required: `'https'` for TLS, or `'http'` to choose cleartext (h2c). */
  readonly scheme: 'http' | 'https';
  /** The logical host name: `:authority` and, with TLS, the certificate name (SNI). */
  readonly authority?: string;
  /** TLS and session options passed to `http2.connect`. */
  readonly connectOptions?: http2.SecureClientSessionOptions;
  /** First reconnect delay; doubles up to `maxBackoffMs`, with jitter. Default 100 ms. */
  readonly initialBackoffMs?: number;
  /** Default 10 s. */
  readonly maxBackoffMs?: number;
  /** Largest response body accepted; default 64 MiB. */
  readonly maxResponseBytes?: number;
  /** How long `close()` waits for requests in flight; default 30 s. */
  readonly closeGraceMs?: number;
  /** Its share among equally loaded endpoints (a finite number ≥ 0); default 1. See `Endpoint.weight`. */
  readonly weight?: number | undefined;
  /** The zone it runs in (a non-empty string). See `Endpoint.zone`. */
  readonly zone?: string | undefined;
  /** Topology hints: the zones whose clients it is meant for (non-empty strings). See `Endpoint.forZones`. */
  readonly forZones?: readonly string[] | undefined;
}

/**
 * Creates an HTTP/2 endpoint for `address` (`host:port`).
 *
 * @example
 * ```ts
 * const ep = http2Endpoint('127.0.0.2:8080', { scheme: 'http' });
 * const res = await ep.call({ path: '/hello' }, background);
 * const tls = http2Endpoint('10.0.0.7:8443', { scheme: 'https', authority: 'items.internal' });
 * ```
 */
export function http2Endpoint(address: string, options: Http2EndpointOptions): Http2Endpoint {
  return new Http2Endpoint(address, options);
}

/** What a missing or wrong `scheme` option is told to be. */
const SCHEME_EXPECTED = '"https" for TLS, or "http" to choose cleartext (h2c)';

const positive = (where: string, name: string, v: number | undefined, dflt: number): number => {
  const value = v ?? dflt;
  if (!Number.isFinite(value) || value < 0) throw new ConfigError(where, name, value, 'a finite number >= 0');
  return value;
};

/**
 * The endpoint class behind {@link http2Endpoint}.
 *
 * @example
 * ```ts
 * const ep = new Http2Endpoint('127.0.0.2:8080', { scheme: 'http' });
 * ```
 */
export class Http2Endpoint implements Endpoint<Http2Request, Http2Response> {
  readonly address: string;
  /** The weight it was given, or `undefined`. */
  readonly weight: number | undefined;
  /** The zone it was given, or `undefined`. */
  readonly zone: string | undefined;
  /** The topology hints it was given, or `undefined`. */
  readonly forZones: readonly string[] | undefined;
  readonly readiness$: Observable<Readiness>;
  readonly #origin: string;
  readonly #authority: string;
  readonly #options: Http2EndpointOptions;
  readonly #initialBackoff: number;
  readonly #maxBackoff: number;
  readonly #maxBody: number;
  readonly #grace: number;
  readonly #state = new BehaviorSubject<Readiness>('connecting');
  readonly #streams = new Set<http2.ClientHttp2Stream>();
  /** Per session, how to fail its unsettled requests if it closes under them. */
  readonly #orphans = new Map<http2.ClientHttp2Session, Set<() => void>>();
  #session: http2.ClientHttp2Session | undefined;
  #backoff: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastError: string | undefined;
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  constructor(address: string, options: Http2EndpointOptions) {
    if (options === undefined) {
      // no options at all: what is missing is the scheme
      throw new ConfigError('http2Endpoint', 'scheme', undefined, SCHEME_EXPECTED);
    }
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('http2Endpoint', 'options', options, 'an object');
    }
    const hp = parseAddress(address, 'http2Endpoint');
    this.address = formatAddress(hp.host, hp.port);
    const scheme = options.scheme;
    if (scheme !== 'http' && scheme !== 'https') {
      throw new ConfigError('http2Endpoint', 'scheme', scheme, SCHEME_EXPECTED);
    }
    this.#origin = `${scheme}://${this.address}`;
    if (!URL.canParse(this.#origin)) {
      throw new ConfigError('http2Endpoint', 'address', address, 'a host:port that forms a valid URL');
    }
    if (
      options.authority !== undefined &&
      (typeof options.authority !== 'string' || options.authority === '')
    ) {
      throw new ConfigError('http2Endpoint', 'authority', options.authority, 'a non-empty host name');
    }
    this.#authority = options.authority ?? this.address;
    this.#options = options;
    this.#initialBackoff = positive('http2Endpoint', 'initialBackoffMs', options.initialBackoffMs, 100);
    this.#maxBackoff = positive('http2Endpoint', 'maxBackoffMs', options.maxBackoffMs, 10_000);
    this.#maxBody = positive('http2Endpoint', 'maxResponseBytes', options.maxResponseBytes, 64 * 1024 * 1024);
    this.#grace = positive('http2Endpoint', 'closeGraceMs', options.closeGraceMs, 30_000);
    this.weight = checkWeight('http2Endpoint', options.weight);
    this.zone = checkZone('http2Endpoint', options.zone);
    this.forZones = checkForZones('http2Endpoint', options.forZones);
    this.#backoff = this.#initialBackoff;
    this.readiness$ = this.#state.pipe(distinctUntilChanged());
    try {
      this.#connect();
    } catch (err) {
      // http2.connect checks its options itself; the same options are used for every reconnect
      const reason = err instanceof Error ? err.message : String(err);
      throw new ConfigError(
        'http2Endpoint',
        'connectOptions',
        options.connectOptions,
        `options http2.connect accepts (${reason})`,
      );
    }
  }

  get readiness(): Readiness {
    return this.#state.value;
  }

  get pending(): number {
    return this.#streams.size;
  }

  /** The last session error, such as `connect ECONNREFUSED 127.0.0.9:8080`; kept after a reconnect. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  #set(r: Readiness): void {
    if (!this.#state.closed && this.#state.value !== r) this.#state.next(r);
  }

  #connect(): void {
    this.#timer = undefined;
    if (this.#closing !== undefined) return;
    this.#set(this.#state.value === 'failed' ? 'failed' : 'connecting');
    const servername = this.#options.authority;
    const session = http2.connect(this.#origin, {
      ...(servername === undefined ? {} : { servername }),
      ...this.#options.connectOptions,
    });
    this.#session = session;
    session.on('connect', () => {
      if (this.#session !== session) return;
      this.#backoff = this.#initialBackoff;
      this.#set('ready');
    });
    session.on('goaway', () => this.#retire(session, false));
    session.on('error', (err: Error) => {
      if (this.#session === session) this.#lastError = err.message;
      this.#retire(session, true);
    });
    session.on('close', () => {
      // a stream that had not reached the server when the session went away
      // may never emit its own 'close': fail it as refused
      const orphans = this.#orphans.get(session);
      this.#orphans.delete(session);
      for (const fail of orphans ?? []) fail();
      this.#retire(session, !session.connecting && session.destroyed);
    });
    // the session must not keep the process alive on its own
    session.unref();
  }

  /** Stops using `session` for new requests and opens a new one (after backoff on failure). */
  #retire(session: http2.ClientHttp2Session, failed: boolean): void {
    if (this.#session !== session) return;
    this.#session = undefined;
    if (!session.closed && !session.destroyed) session.close(); // lets accepted streams finish
    if (this.#closing !== undefined) return;
    if (!failed) {
      this.#connect();
      return;
    }
    this.#set('failed');
    const delay = this.#backoff * (0.8 + Math.random() * 0.4);
    this.#backoff = Math.min(this.#maxBackoff, this.#backoff * 2);
    this.#timer = setTimeout(() => this.#connect(), delay);
    this.#timer.unref();
  }

  call(req: Http2Request, ctx: CallContext): Promise<Http2Response> {
    const address = this.address;
    if (this.#closing !== undefined) {
      return Promise.reject(
        new ClosedError(`endpoint ${address} is closed or draining`, { endpoint: address }),
      );
    }
    if (ctx.signal.aborted) return Promise.reject(abortReason(ctx.signal));
    const session = this.#session;
    if (session === undefined || session.destroyed || session.closed) {
      return Promise.reject(
        new Http2RequestError(`endpoint ${address} has no open HTTP/2 session`, {
          endpoint: address,
          refused: true,
        }),
      );
    }
    return new Promise<Http2Response>((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request({
          ':method': req.method ?? (req.body === undefined ? 'GET' : 'POST'),
          ':path': req.path,
          ':authority': this.#authority,
          ...req.headers,
        });
      } catch (err) {
        reject(
          new Http2RequestError(`request to ${address} failed to start`, {
            endpoint: address,
            refused: true,
            cause: err,
          }),
        );
        return;
      }
      this.#streams.add(stream);
      const chunks: Buffer[] = [];
      let bytes = 0;
      let status = 0;
      let headers: http2.IncomingHttpHeaders = {};
      let settled = false;
      let orphans = this.#orphans.get(session);
      if (orphans === undefined) {
        orphans = new Set();
        this.#orphans.set(session, orphans);
      }
      const onOrphaned = (): void =>
        finish(
          new Http2RequestError(`HTTP/2 session to ${address} closed before the request completed`, {
            endpoint: address,
            refused: status === 0,
          }),
        );
      orphans.add(onOrphaned);
      const finish = (err: unknown, res?: Http2Response): void => {
        if (settled) return;
        settled = true;
        orphans.delete(onOrphaned);
        ctx.signal.removeEventListener('abort', onAbort);
        this.#streams.delete(stream);
        if (this.#streams.size === 0) this.#drained?.();
        if (err !== undefined) reject(err);
        else resolve(res as Http2Response);
      };
      const onAbort = (): void => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        finish(abortReason(ctx.signal));
      };
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      stream.on('response', (h) => {
        headers = h;
        status = Number(h[':status'] ?? 0);
      });
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > this.#maxBody) {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          finish(
            new GrpcTowerError(
              Status.RESOURCE_EXHAUSTED,
              `response from ${address} exceeds ${this.#maxBody} bytes`,
              {
                endpoint: address,
              },
            ),
          );
          return;
        }
        chunks.push(chunk);
      });
      stream.on('end', () =>
        finish(undefined, { endpoint: address, status, headers, body: Buffer.concat(chunks) }),
      );
      stream.on('close', () => {
        if (settled) return;
        const refused = stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM || status === 0;
        finish(
          new Http2RequestError(
            `HTTP/2 stream to ${address} closed before its response ended (code ${stream.rstCode})`,
            { endpoint: address, refused: refused && status === 0 },
          ),
        );
      });
      stream.on('error', (err) => {
        finish(
          new Http2RequestError(`HTTP/2 request to ${address} failed: ${err.message}`, {
            endpoint: address,
            refused: status === 0 && stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM,
            cause: err,
          }),
        );
      });
      if (req.body !== undefined) stream.end(req.body);
      else stream.end();
    });
  }

  close(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    const grace = options.graceMs ?? this.#grace;
    this.#closing = (async () => {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      if (this.#streams.size > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            for (const s of this.#streams) s.close(http2.constants.NGHTTP2_CANCEL);
            resolve();
          }, grace);
          this.#drained = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
      const session = this.#session;
      this.#session = undefined;
      if (session !== undefined && !session.destroyed) {
        await new Promise<void>((resolve) => session.close(() => resolve()));
      }
      this.#set('closed');
      this.#state.complete();
    })();
    return this.#closing;
  }
}
