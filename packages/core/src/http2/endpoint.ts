/**
 * An {@link Endpoint} for plain HTTP/2 requests to one origin, built on
 * `node:http2` through the HTTP/2 connection layer the native gRPC endpoint
 * uses too (`transport/connection.ts`), which owns its sessions. One
 * session at a time is reused by every request. The endpoint is `ready`
 * once the server's first SETTINGS frame has arrived (so a server's
 * `max_concurrent_streams` is known before any stream is opened: requests
 * started while connecting wait for it, and requests beyond the server's
 * limit wait for a free stream instead of being refused). It moves to a
 * fresh session at once when the server sends GOAWAY (requests already
 * accepted finish on the old one) or the session is lost, and reconnects
 * with exponential backoff after a failed attempt, staying `failed` until
 * an attempt connects. A connection attempt, and the wait for SETTINGS
 * after it, may take 20 s each. With `keepaliveTimeMs`, unanswered PINGs
 * end a session whose server stopped answering. The connection's state
 * changes, the server's GOAWAYs and keepalive timeouts are on
 * {@link Http2Endpoint.events$}. Its sockets and
 * timers do not keep the process alive on their own.
 *
 * This lets the same layers — discovery, p2c, retry, timeout — serve HTTP/2
 * clients that are not gRPC.
 *
 * Bodies stream both ways with HTTP/2 flow control as the backpressure: a
 * stream request body is pulled only as fast as the stream's window opens
 * (`write()` returning false waits for 'drain'), and a streamed response
 * (`response: 'stream'`) is read from the session only as fast as its
 * reader takes it, so neither side is held in memory whole. The buffered
 * form (the default) collects the response and resolves at its end. A
 * request's commit point, for a retry layer, is the response headers
 * (`Http2RequestError.afterHeaders`), as in gRPC's A6.
 *
 * The scheme is required, never defaulted: `'https'` for TLS, or `'http'`
 * to choose cleartext (h2c).
 *
 * @module
 */
import * as http2 from 'node:http2';
import { isIP } from 'node:net';
import { BehaviorSubject, type Observable, distinctUntilChanged } from 'rxjs';
import type { CallContext } from '../context/index.js';
import { type Endpoint, type Readiness, refuseMovedMetadata } from '../endpoint.js';
import { ClosedError, ConfigError, ResourceExhaustedError } from '../errors.js';
import { formatAddress, parseAddress } from '../address.js';
import { type ConnectionEvent, Http2Connection, type SecureUpgrade } from '../transport/connection.js';
import { tlsUpgrade } from '../transport/tls.js';
import { type BodyReader, Http2Body, isChunkSource, openStream } from './body.js';
import { methodOf } from './request.js';
import { StreamCall, type StreamHooks } from './stream-call.js';
import type { Http2Request, Http2Response } from './types.js';

export {
  Http2RequestError,
  type Http2BodySink,
  type Http2Request,
  type Http2Response,
} from './types.js';

/** Options of {@link http2Endpoint}. */
export interface Http2EndpointOptions {
  /** Required: `'https'` for TLS, or `'http'` to choose cleartext (h2c). */
  readonly scheme: 'http' | 'https';
  /** The logical host name: `:authority` and, with TLS, the certificate name (SNI). */
  readonly authority?: string;
  /**
   * With `https`, TLS options for `tls.connect` (`ca`, client certificates,
   * `servername`, `checkServerIdentity`, `rejectUnauthorized`…; ALPN is
   * always `h2` alone); and session options for `http2.connect`
   * (`settings`, `maxSessionMemory`, `peerMaxConcurrentStreams`…). The
   * endpoint makes its sockets itself: `createConnection` is refused, and
   * TCP options (`localAddress`, `lookup`…) are not used. Invalid settings
   * or TLS material are a ConfigError at once.
   */
  readonly connectOptions?: http2.SecureClientSessionOptions;
  /** First reconnect delay; doubles up to `maxBackoffMs`, with ±20 % jitter. Default 100 ms. */
  readonly initialBackoffMs?: number;
  /** Default 10 s. */
  readonly maxBackoffMs?: number;
  /**
   * Keepalive (as gRPC's A8): while requests are open, a PING after this
   * long without one; a PING unanswered within `keepaliveTimeoutMs` ends
   * the session (its open requests fail, not refused) and a new one is
   * opened, so a server that stopped answering is found. Off by default.
   */
  readonly keepaliveTimeMs?: number;
  /** How long a keepalive PING may go unanswered; default 20 s. */
  readonly keepaliveTimeoutMs?: number;
  /** Largest response body accepted; default 64 MiB. */
  readonly maxResponseBytes?: number;
  /** How long `close()` waits for requests in flight; default 30 s. */
  readonly closeGraceMs?: number;
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

/** What a request body must be. */
const BODY_EXPECTED = 'a Buffer, a string, an Http2Body, a Readable or an AsyncIterable of chunks';

/** The request options of a request with a body. */
const WITH_BODY: http2.ClientSessionRequestOptions = Object.freeze({ endStream: false });
/** The request options of a request without one: its stream ends with the headers. */
const END_STREAM: http2.ClientSessionRequestOptions = Object.freeze({ endStream: true });

/** The body of a streamed response, whose bytes are in `stream`. */

/**
 * The endpoint class behind {@link http2Endpoint}.
 *
 * @example
 * ```ts
 * const ep = new Http2Endpoint('127.0.0.2:8080', { scheme: 'http' });
 * ep.events$.subscribe((e) => { if (e.kind === 'goaway') console.log('GOAWAY', e.code, e.debug); });
 * ```
 */
export class Http2Endpoint implements Endpoint<Http2Request, Http2Response> {
  readonly address: string;
  readonly readiness$: Observable<Readiness>;
  /**
   * Its connection's state changes (with the reason of a failure), the
   * GOAWAYs its server sends and keepalive timeouts; completes on close.
   */
  readonly events$: Observable<ConnectionEvent>;
  readonly #authority: string;
  readonly #maxBody: number;
  readonly #grace: number;
  readonly #connection: Http2Connection;
  readonly #state = new BehaviorSubject<Readiness>('connecting');
  /** Requests started and not over: waiting for the connection, or on a stream. */
  readonly #calls = new Set<StreamCall>();
  /** What each request's {@link StreamCall} needs of this endpoint. */
  readonly #hooks: StreamHooks;
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
    if (!URL.canParse(`${scheme}://${this.address}`)) {
      throw new ConfigError('http2Endpoint', 'address', address, 'a host:port that forms a valid URL');
    }
    const authority = options.authority;
    if (authority !== undefined && (typeof authority !== 'string' || authority === '')) {
      throw new ConfigError('http2Endpoint', 'authority', authority, 'a non-empty host name');
    }
    this.#authority = authority ?? this.address;
    const initialMs = positive('http2Endpoint', 'initialBackoffMs', options.initialBackoffMs, 100);
    const maxMs = positive('http2Endpoint', 'maxBackoffMs', options.maxBackoffMs, 10_000);
    this.#maxBody = positive('http2Endpoint', 'maxResponseBytes', options.maxResponseBytes, 64 * 1024 * 1024);
    this.#grace = positive('http2Endpoint', 'closeGraceMs', options.closeGraceMs, 30_000);
    refuseMovedMetadata('http2Endpoint', options);
    const keepaliveMs = options.keepaliveTimeMs;
    if (keepaliveMs !== undefined && !(Number.isFinite(keepaliveMs) && keepaliveMs > 0)) {
      throw new ConfigError('http2Endpoint', 'keepaliveTimeMs', keepaliveMs, 'a finite number > 0');
    }
    const keepaliveTimeoutMs = positive(
      'http2Endpoint',
      'keepaliveTimeoutMs',
      options.keepaliveTimeoutMs,
      20_000,
    );
    const connectOptions = options.connectOptions;
    const session = sessionOptionsOf(connectOptions);
    this.#connection = new Http2Connection({
      host: hp.host,
      port: hp.port,
      address: this.address,
      secure: scheme === 'https' ? secureOf(connectOptions, hp.host, authority) : undefined,
      backoff: { initialMs, maxMs, multiplier: 2 },
      keepaliveTimeMs: keepaliveMs,
      keepaliveTimeoutMs,
      session,
      // the endpoint must not keep the process alive on its own
      unref: true,
    });
    const connection = this.#connection;
    this.#hooks = {
      connection,
      finished: (call) => {
        this.#calls.delete(call);
        if (this.#calls.size === 0) this.#drained?.();
      },
    };
    this.readiness$ = this.#state.pipe(distinctUntilChanged());
    this.events$ = connection.events$;
    connection.onState = (state) => {
      // a failed endpoint stays failed through its next attempts, until one connects;
      // `closed` is said by close() once its sessions have closed
      if (state === 'closed' || (state === 'connecting' && this.#state.value === 'failed')) return;
      this.#set(state === 'idle' ? 'ready' : state);
    };
  }

  get readiness(): Readiness {
    return this.#state.value;
  }

  get pending(): number {
    return this.#calls.size;
  }

  /**
   * Why the last connection attempt failed or the last session ended, such
   * as `connect ECONNREFUSED 127.0.0.9:8080`; kept after a reconnect.
   */
  get lastError(): string | undefined {
    return this.#connection.lastError;
  }

  #set(r: Readiness): void {
    if (!this.#state.closed && this.#state.value !== r) this.#state.next(r);
  }

  /**
   * Starts a connection attempt now when the last one failed and the
   * endpoint waits out its backoff (see `Endpoint.reconnect`); resolves
   * when it ends. The attempt takes the place of the scheduled one, so the
   * schedule goes on from there; after it fails, `undefined` until the
   * next scheduled attempt has run.
   *
   * @example
   * ```ts
   * if (ep.readiness === 'failed') await ep.reconnect();
   * ```
   */
  reconnect(): Promise<void> | undefined {
    if (this.#closing !== undefined) return undefined;
    return this.#connection.connectNow();
  }

  call(req: Http2Request, ctx: CallContext): Promise<Http2Response> {
    const address = this.address;
    if (this.#closing !== undefined) {
      return Promise.reject(
        new ClosedError(`endpoint ${address} is closed or draining`, { endpoint: address }),
      );
    }
    if (ctx.aborted) return Promise.reject(ctx.reason());
    const body = req.body;
    let reader: BodyReader | undefined;
    if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
      const opened =
        body instanceof Http2Body ? body.open() : isChunkSource(body) ? openStream(body) : undefined;
      if (opened === undefined) {
        return Promise.reject(new ConfigError('http2Endpoint.call', 'body', body, BODY_EXPECTED));
      }
      if (typeof opened === 'string') {
        // a limit of this process, not the server's doing; sending it again cannot help
        return Promise.reject(new ResourceExhaustedError(opened, { endpoint: address, retryable: false }));
      }
      reader = opened;
    }
    const call = new StreamCall(
      this.#hooks,
      address,
      req.response === 'stream',
      this.#maxBody,
      reader,
      reader === undefined ? (body as Buffer | string | undefined) : undefined,
    );
    this.#calls.add(call);
    call.link(ctx);
    this.#connection.request(
      {
        ':method': methodOf(req),
        ':path': req.path,
        ':authority': this.#authority,
        ...req.headers,
      },
      call,
      // a GET, HEAD or DELETE with a body must not end its stream with the headers
      body === undefined ? END_STREAM : WITH_BODY,
    );
    return call.promise;
  }

  close(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    const grace = options.graceMs ?? this.#grace;
    this.#closing = (async () => {
      if (this.#calls.size > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            for (const call of [...this.#calls]) call.abandon();
            resolve();
          }, grace);
          this.#drained = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
      this.#drained = undefined;
      // every request is over: the sessions end now (one the server sent GOAWAY on and
      // never closed would otherwise keep its socket)
      await this.#connection.close(true);
      this.#set('closed');
      this.#state.complete();
    })();
    return this.#closing;
  }
}

/** The TLS upgrade of `connectOptions`, or a ConfigError naming what `tls` refused in them. */
function secureOf(
  connectOptions: http2.SecureClientSessionOptions | undefined,
  host: string,
  authority: string | undefined,
): SecureUpgrade {
  // as http2.connect names the server: its own option, else the authority, else the host unless an IP
  const serverName = connectOptions?.servername || authority || (isIP(host) === 0 ? host : undefined);
  try {
    return tlsUpgrade(connectOptions ?? {}, host, serverName);
  } catch (err) {
    throw new ConfigError(
      'http2Endpoint',
      'connectOptions',
      connectOptions,
      `TLS options tls.connect accepts (${err instanceof Error ? err.message : String(err)})`,
    );
  }
}

/** `connectOptions` checked as `http2.connect` checks them, for every session the connection opens. */
function sessionOptionsOf(
  connectOptions: http2.SecureClientSessionOptions | undefined,
): http2.ClientSessionOptions | undefined {
  if (connectOptions === undefined) return undefined;
  if (typeof connectOptions !== 'object' || connectOptions === null) {
    throw new ConfigError('http2Endpoint', 'connectOptions', connectOptions, 'an object');
  }
  if (connectOptions.createConnection !== undefined) {
    throw new ConfigError(
      'http2Endpoint',
      'connectOptions',
      connectOptions,
      'options without createConnection (the endpoint makes its own connections)',
    );
  }
  const settings = connectOptions.settings;
  if (typeof settings === 'object' && settings !== null) {
    try {
      http2.getPackedSettings(settings);
    } catch (err) {
      throw new ConfigError(
        'http2Endpoint',
        'connectOptions',
        connectOptions,
        `options http2.connect accepts (${err instanceof Error ? err.message : String(err)})`,
      );
    }
  }
  return connectOptions;
}
