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
import { Readable } from 'node:stream';
import type { CallContext } from '../context.js';
import {
  type Endpoint,
  type Readiness,
  checkForZones,
  checkGroup,
  checkPriority,
  checkWeight,
  checkZone,
} from '../endpoint.js';
import {
  CancelledError,
  ClosedError,
  ConfigError,
  GrpcTowerError,
  ResourceExhaustedError,
  UnavailableError,
} from '../errors.js';
import { formatAddress, parseAddress } from '../address.js';
import { Status } from '../status.js';
import {
  type ConnectionEvent,
  Http2Connection,
  type SecureUpgrade,
  type StreamOpener,
} from '../transport/connection.js';
import { tlsUpgrade } from '../transport/tls.js';
import { type BodyReader, Http2Body, isChunkSource, openStream, send } from './body.js';
import { methodOf } from './request.js';

/**
 * One HTTP/2 request.
 *
 * @example
 * ```ts
 * const get: Http2Request = { method: 'GET', path: '/healthz' };
 * const upload: Http2Request = { method: 'PUT', path: '/files/a.bin', body: http2Body(fs.createReadStream('a.bin')) };
 * const download: Http2Request = { path: '/files/a.bin', response: 'stream' };
 * ```
 */
export interface Http2Request {
  /** Default GET, or POST with a body. */
  readonly method?: string;
  readonly path: string;
  readonly headers?: http2.OutgoingHttpHeaders;
  /**
   * Buffer/string: sent at once. {@link Http2Body}: a replayable stream
   * body (see {@link http2Body}). A `Readable` or an
   * `AsyncIterable<Uint8Array | string>`: streamed once, with backpressure
   * (pulled only as fast as the HTTP/2 stream takes it), never replayable;
   * it is ended (a Readable destroyed) when the request fails before the
   * body's end.
   */
  readonly body?: Buffer | string | Http2Body | Readable | AsyncIterable<Uint8Array | string>;
  /**
   * `'buffer'` (default): the call resolves when the response has ended,
   * with the whole body in `body` (bounded by `maxResponseBytes`).
   * `'stream'`: the call resolves at the response headers, with the body in
   * `stream`.
   */
  readonly response?: 'buffer' | 'stream';
  /**
   * Marks a request as safe to send twice (retry layers read it, see
   * {@link isIdempotent}); GET, HEAD, OPTIONS, PUT and DELETE are
   * idempotent without it.
   */
  readonly idempotent?: boolean;
}

/**
 * An HTTP/2 response: buffered whole (the default), or with its body as a
 * stream (`response: 'stream'`).
 *
 * @example
 * ```ts
 * const res = await stack.call({ path: '/items' }, ctx);
 * if (res.status === 200) JSON.parse(res.body.toString('utf8'));
 *
 * const dl = await stack.call({ path: '/files/a.bin', response: 'stream' }, ctx);
 * await pipeline(dl.stream!, fs.createWriteStream('a.bin'));
 * const { 'x-checksum': sum } = await dl.trailers;
 * ```
 */
export interface Http2Response {
  readonly endpoint: string;
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  /** The whole body with response `'buffer'`; an empty Buffer with `'stream'`. */
  readonly body: Buffer;
  /**
   * With response `'stream'`: the body as a node Readable. Reading it
   * drives HTTP/2 flow control (a reader that stops reading stops the
   * server: backpressure); destroying it before its end cancels the
   * request with RST_STREAM(CANCEL) and frees the stream (`pending`
   * drops). A failure after the headers (a reset, a lost session, the
   * call's signal aborting) destroys it with that error
   * ({@link Http2RequestError} with `afterHeaders`, or the abort reason);
   * such an error does not crash a process that does not listen for it.
   * Undefined with `'buffer'`.
   */
  readonly stream?: Readable;
  /**
   * The trailers (an empty object when the server sent none; that empty
   * object is shared and frozen). With `'buffer'`, already settled when the
   * call resolves; with `'stream'`, settled when the body ends. Never
   * rejects (a failure is reported on the stream, or by the call).
   */
  readonly trailers: Promise<http2.IncomingHttpHeaders>;
  /**
   * With response `'stream'`: hands the body to `sink` instead of a
   * Readable, which costs less per response (an adapter such as an undici
   * `Dispatcher` feeds it straight to its own handler). Use `consume` or
   * `stream`, not both; chunks that arrived before are given first. The
   * body then flows until `sink.data` returns false, and again after
   * {@link Http2Response.resume}.
   */
  consume?(sink: Http2BodySink): void;
  /** With a sink: holds the body (HTTP/2 flow control stops the server) until `resume()`. */
  pause?(): void;
  /** With a sink: lets the body flow again. */
  resume?(): void;
  /** With response `'stream'`: the rest of the body is not wanted (RST_STREAM(CANCEL)). */
  cancel?(): void;
  /** With response `'stream'`: `fn(ok)` once the response is over, `ok` when its body ended whole with a status below 500. */
  whenOver?(fn: (ok: boolean) => void): void;
}

/**
 * What {@link Http2Response.consume} feeds a streamed body to.
 *
 * @example
 * ```ts
 * res.consume?.({ data: (c) => out.write(c), end: () => out.end(), error: (e) => out.destroy(e) });
 * ```
 */
export interface Http2BodySink {
  /** A chunk of the body; `false` holds the rest until {@link Http2Response.resume}. */
  data(chunk: Buffer): boolean;
  /** The body ended whole; its trailers (empty when none). */
  end(trailers: http2.IncomingHttpHeaders): void;
  /** The body failed after the headers (an {@link Http2RequestError} with `afterHeaders`, or the call's abort reason). */
  error(err: Error): void;
}

/**
 * A request failed at the HTTP/2 layer. `refused` is true when the server
 * never processed it (REFUSED_STREAM, or GOAWAY before it was accepted), so
 * it is safe to send again. `afterHeaders` is true when the response
 * headers had arrived before the failure: past that point a retry layer
 * must not send the request again (its commit point).
 *
 * @example
 * ```ts
 * if (err instanceof Http2RequestError && err.refused) retryElsewhere();
 * if (err instanceof Http2RequestError && !err.afterHeaders && isIdempotent(req)) retry();
 * ```
 */
export class Http2RequestError extends UnavailableError {
  readonly refused: boolean;
  readonly afterHeaders: boolean;
  constructor(
    message: string,
    options: {
      endpoint: string;
      refused: boolean;
      afterHeaders?: boolean;
      cause?: unknown;
      retryable?: false | undefined;
    },
  ) {
    super(message, { endpoint: options.endpoint, cause: options.cause, retryable: options.retryable });
    this.refused = options.refused;
    this.afterHeaders = options.afterHeaders === true;
  }
}

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
  /** Its share among equally loaded endpoints (a finite number ≥ 0); default 1. See `Endpoint.weight`. */
  readonly weight?: number | undefined;
  /** The zone it runs in (a non-empty string). See `Endpoint.zone`. */
  readonly zone?: string | undefined;
  /** Topology hints: the zones whose clients it is meant for (non-empty strings). See `Endpoint.forZones`. */
  readonly forZones?: readonly string[] | undefined;
  /** Its priority level (an integer ≥ 0, 0 the highest). See `Endpoint.priority`. */
  readonly priority?: number | undefined;
  /** The group it belongs to. See `Endpoint.group`. */
  readonly group?: string | undefined;
  /** Its group's weight among the groups (a finite number > 0). See `Endpoint.groupWeight`. */
  readonly groupWeight?: number | undefined;
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

const noop = (): void => undefined;

/** What a request body must be. */
const BODY_EXPECTED = 'a Buffer, a string, an Http2Body, a Readable or an AsyncIterable of chunks';

/** The request options of a request with a body. */
const WITH_BODY: http2.ClientSessionRequestOptions = Object.freeze({ endStream: false });
/** The request options of a request without one: its stream ends with the headers. */
const END_STREAM: http2.ClientSessionRequestOptions = Object.freeze({ endStream: true });

/** The body of a streamed response, whose bytes are in `stream`. */
const EMPTY_BODY = Buffer.alloc(0);

/** The trailers of a response that had none: shared, so frozen. */
const EMPTY_TRAILERS: http2.IncomingHttpHeaders = Object.freeze({});
const NO_TRAILERS = Promise.resolve(EMPTY_TRAILERS);

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
  /** The weight it was given, or `undefined`. */
  readonly weight: number | undefined;
  /** The zone it was given, or `undefined`. */
  readonly zone: string | undefined;
  /** The topology hints it was given, or `undefined`. */
  readonly forZones: readonly string[] | undefined;
  /** The priority it was given, or `undefined`. */
  readonly priority: number | undefined;
  /** The group it was given, or `undefined`. */
  readonly group: string | undefined;
  /** The group weight it was given, or `undefined`. */
  readonly groupWeight: number | undefined;
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
    this.weight = checkWeight('http2Endpoint', options.weight);
    this.zone = checkZone('http2Endpoint', options.zone);
    this.forZones = checkForZones('http2Endpoint', options.forZones);
    this.priority = checkPriority('http2Endpoint', options.priority);
    ({ group: this.group, groupWeight: this.groupWeight } = checkGroup(
      'http2Endpoint',
      options.group,
      options.groupWeight,
    ));
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

/** What a {@link StreamCall} needs of its endpoint. */
interface StreamHooks {
  /** The connection its stream is asked of. */
  readonly connection: Http2Connection;
  /** The request is over: it no longer counts as pending. */
  finished(call: StreamCall): void;
}

/** Where a stream (and a streamed response's Readable) keeps its call, for the shared listeners below. */
const CALL = Symbol('grpc-tower.http2-call');

type WithCall<T> = T & { [CALL]: StreamCall };

/*
 * The stream's listeners are these module-level functions, not closures per
 * request: Node calls a listener with the emitter as `this`, and the stream
 * carries its call.
 */
function onResponse(this: WithCall<http2.ClientHttp2Stream>, h: http2.IncomingHttpHeaders): void {
  this[CALL].response(h);
}
function onBufferedData(this: WithCall<http2.ClientHttp2Stream>, chunk: Buffer): void {
  this[CALL].bufferedData(chunk);
}
function onStreamedData(this: WithCall<http2.ClientHttp2Stream>, chunk: Buffer): void {
  this[CALL].streamedData(chunk);
}
function onTrailers(this: WithCall<http2.ClientHttp2Stream>, t: http2.IncomingHttpHeaders): void {
  this[CALL].trailers = t;
}
function onEnd(this: WithCall<http2.ClientHttp2Stream>): void {
  this[CALL].ended = true;
}
function onClose(this: WithCall<http2.ClientHttp2Stream>): void {
  this[CALL].closed();
}
function onError(this: WithCall<http2.ClientHttp2Stream>, err: Error): void {
  this[CALL].errored(err);
}
function readBody(this: Readable): void {
  (this as WithCall<Readable>)[CALL].stream.resume();
}
function destroyBody(this: Readable, err: Error | null, callback: (err?: Error | null) => void): void {
  const call = (this as WithCall<Readable>)[CALL];
  // destroyed before its end: the rest of the response is not wanted
  if (!call.ended) call.stream.close(http2.constants.NGHTTP2_CANCEL);
  callback(err);
}

/**
 * One request, from its start to its stream's close: waits for the
 * connection (it is the stream's {@link StreamOpener}), settles the call at
 * the response headers (`response: 'stream'`) or when the stream closes
 * cleanly with the whole body (buffered), and fails it, or the streamed
 * body, otherwise.
 */
class StreamCall implements StreamOpener {
  readonly promise: Promise<Http2Response>;
  /** Its stream, once opened (see `#waiting`). */
  stream!: WithCall<http2.ClientHttp2Stream>;
  /** Asked of the connection, and not opened yet. */
  #waiting = true;
  /** The response's end arrived. */
  ended = false;
  trailers: http2.IncomingHttpHeaders | undefined;
  #resolve!: (res: Http2Response) => void;
  #reject!: (err: unknown) => void;
  readonly #hooks: StreamHooks;
  readonly #address: string;
  readonly #streaming: boolean;
  readonly #maxBody: number;
  readonly #reader: BodyReader | undefined;
  /** A body sent whole, once the stream is open. */
  readonly #body: Buffer | string | undefined;
  readonly #chunks: Buffer[] = [];
  #bytes = 0;
  #status = 0;
  #headers: http2.IncomingHttpHeaders = EMPTY_TRAILERS;
  /** The call resolved or rejected. */
  #settled = false;
  /** The request is over: it no longer counts as pending nor follows the call's signal. */
  #over = false;
  /** With response 'stream', once the headers arrived: the body given to the caller. */
  #out: Readable | undefined;
  #settleTrailers: ((t: http2.IncomingHttpHeaders) => void) | undefined;
  /** With a sink: what the streamed body is fed to. */
  #sink: Http2BodySink | undefined;
  /** Streamed chunks that arrived before the body was read. */
  #held: Buffer[] | undefined;
  #heldBytes = 0;
  /** The streamed body ended whole. */
  #whole = false;
  /** Why the streamed body failed, when nobody read it yet. */
  #failure: Error | undefined;
  #overHooks: ((ok: boolean) => void)[] | undefined;
  #unlink = noop;

  constructor(
    hooks: StreamHooks,
    address: string,
    streaming: boolean,
    maxBody: number,
    reader: BodyReader | undefined,
    body: Buffer | string | undefined,
  ) {
    this.promise = new Promise<Http2Response>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#hooks = hooks;
    this.#address = address;
    this.#streaming = streaming;
    this.#maxBody = maxBody;
    this.#reader = reader;
    this.#body = body;
  }

  /** The connection opened its stream: listen, and send the body. */
  opened(stream: http2.ClientHttp2Stream): void {
    this.#waiting = false;
    if (this.#settled) {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      return;
    }
    const s = stream as WithCall<http2.ClientHttp2Stream>;
    s[CALL] = this;
    this.stream = s;
    s.on('response', onResponse);
    if (!this.#streaming) s.on('data', onBufferedData);
    s.on('trailers', onTrailers);
    // The readable side ends when the server ends the stream, but also when it
    // resets it or the connection goes: only the stream's close says which.
    s.on('end', onEnd);
    s.on('close', onClose);
    s.on('error', onError);
    const reader = this.#reader;
    if (reader !== undefined) send(s, reader).then(noop, (err: unknown) => this.bodyFailed(err));
    else if (this.#body !== undefined) s.end(this.#body);
  }

  /** No stream could be opened (no connection, or the endpoint's own refusal): nothing was sent. */
  notSent(reason: string): void {
    this.#waiting = false;
    this.#fail(new Http2RequestError(reason, { endpoint: this.#address, refused: true }));
  }

  /** Follows the call's context: its cancellation resets the stream, or takes back the request. */
  link(ctx: CallContext): void {
    this.#unlink = ctx.onAbort(() => {
      this.#stop();
      this.#fail(ctx.reason());
    });
  }

  /** The endpoint closed and its grace time ran out: the request ends now. */
  abandon(): void {
    const waiting = this.#waiting;
    this.#stop();
    if (waiting) {
      this.#fail(
        new Http2RequestError(`endpoint ${this.#address} closed before the request was sent`, {
          endpoint: this.#address,
          refused: true,
        }),
      );
    }
  }

  /** Resets the stream with CANCEL, or takes back the request still waiting for one. */
  #stop(): void {
    if (this.#waiting) {
      this.#waiting = false;
      this.#hooks.connection.withdraw(this);
    } else this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  response(h: http2.IncomingHttpHeaders): void {
    this.#headers = h;
    this.#status = Number(h[':status'] ?? 0);
    if (!this.#streaming || this.#settled) return;
    this.stream.on('data', onStreamedData);
    this.#settled = true;
    this.#resolve(new StreamedResponse(this, this.#address, this.#status, h));
  }

  /** The trailers promise of a streamed response, settled when it is over. */
  trailersPromise(): Promise<http2.IncomingHttpHeaders> {
    return new Promise((settle) => {
      if (this.#over) settle(this.trailers ?? EMPTY_TRAILERS);
      else this.#settleTrailers = settle;
    });
  }

  streamedData(chunk: Buffer): void {
    const out = this.#out;
    if (out !== undefined) {
      if (!out.push(chunk)) this.stream.pause();
      return;
    }
    const sink = this.#sink;
    if (sink !== undefined) {
      if (sink.data(chunk) === false) this.stream.pause();
      return;
    }
    // nobody reads yet: hold the chunks, and the server once they pass HOLD_BYTES
    this.#held ??= [];
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes >= HOLD_BYTES) this.stream.pause();
  }

  /** The body as a Readable (made on first use; what arrived so far comes first). */
  readable(): Readable {
    if (this.#out !== undefined) return this.#out;
    if (this.#sink !== undefined) throw new Error('the response body was handed to a sink: it has no stream');
    const res = new Readable({ read: readBody, destroy: destroyBody }) as WithCall<Readable>;
    res[CALL] = this;
    // a failure nobody listens for must not crash the process; it stays in `errored`
    res.on('error', noop);
    this.#out = res;
    for (const chunk of this.#take()) res.push(chunk);
    if (this.#whole) res.push(null);
    else if (this.#failure !== undefined) res.destroy(this.#failure);
    return res;
  }

  /** Hands the body to `sink` (see `Http2Response.consume`). */
  consume(sink: Http2BodySink): void {
    if (this.#out !== undefined || this.#sink !== undefined) {
      throw new Error('the response body is already being read');
    }
    this.#sink = sink;
    let more = true;
    for (const chunk of this.#take()) more = sink.data(chunk) !== false && more;
    if (this.#whole) sink.end(this.trailers ?? EMPTY_TRAILERS);
    else if (this.#failure !== undefined) sink.error(this.#failure);
    else if (more) this.stream.resume();
  }

  /** The held chunks, once; the server may send again. */
  #take(): Buffer[] {
    const held = this.#held ?? [];
    this.#held = undefined;
    this.#heldBytes = 0;
    return held;
  }

  whenOver(fn: (ok: boolean) => void): void {
    if (this.#over) {
      fn(this.#whole && this.#status < 500);
      return;
    }
    this.#overHooks ??= [];
    this.#overHooks.push(fn);
  }

  bufferedData(chunk: Buffer): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.#maxBody) {
      this.stream.close(http2.constants.NGHTTP2_CANCEL);
      this.#fail(
        new GrpcTowerError(
          Status.RESOURCE_EXHAUSTED,
          `response from ${this.#address} exceeds ${this.#maxBody} bytes`,
          { endpoint: this.#address },
        ),
      );
      return;
    }
    this.#chunks.push(chunk);
  }

  closed(): void {
    this.#reader?.release();
    if (this.#over) return;
    const stream = this.stream;
    const code = stream.rstCode;
    const status = this.#status;
    if (this.ended && status !== 0 && code === http2.constants.NGHTTP2_NO_ERROR && !stream.aborted) {
      if (this.#streaming && this.#settled) {
        this.#whole = true;
        this.#done();
        if (this.#out !== undefined) this.#out.push(null);
        else this.#sink?.end(this.trailers ?? EMPTY_TRAILERS);
        return;
      }
      if (this.#settled) return;
      this.#settled = true;
      this.#done();
      const trailers = this.trailers;
      this.#resolve({
        endpoint: this.#address,
        status,
        headers: this.#headers,
        body: this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks),
        trailers: trailers === undefined ? NO_TRAILERS : Promise.resolve(trailers),
      });
      return;
    }
    // refused only when the server said so, or the request never left: a request
    // sent on a connection that then broke may have been processed
    const refused =
      status === 0 && (code === http2.constants.NGHTTP2_REFUSED_STREAM || stream.id === undefined);
    this.#fail(
      new Http2RequestError(
        status === 0
          ? `HTTP/2 stream to ${this.#address} closed before its response (code ${code})`
          : `HTTP/2 stream to ${this.#address} closed before its response ended (code ${code})`,
        { endpoint: this.#address, refused, afterHeaders: status !== 0 },
      ),
    );
  }

  errored(err: Error): void {
    const status = this.#status;
    this.#fail(
      new Http2RequestError(`HTTP/2 request to ${this.#address} failed: ${err.message}`, {
        endpoint: this.#address,
        refused: status === 0 && this.stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM,
        afterHeaders: status !== 0,
        cause: err,
      }),
    );
  }

  /** The request body's source failed while it was being sent. */
  bodyFailed(err: unknown): void {
    this.stream.close(http2.constants.NGHTTP2_CANCEL);
    const reason = err instanceof Error ? err.message : String(err);
    this.#fail(
      new CancelledError(`request body for ${this.#address} failed while it was read: ${reason}`, {
        endpoint: this.#address,
        cause: err,
      }),
    );
  }

  #done(): void {
    if (this.#over) return;
    this.#over = true;
    this.#unlink();
    this.#hooks.finished(this);
    this.#settleTrailers?.(this.trailers ?? EMPTY_TRAILERS);
    const hooks = this.#overHooks;
    if (hooks !== undefined) {
      this.#overHooks = undefined;
      const ok = this.#whole && this.#status < 500;
      for (const fn of hooks) fn(ok);
    }
  }

  /** Before the call settles, the call fails; after (a streamed response), its body does. */
  #fail(err: unknown): void {
    this.#reader?.release();
    if (!this.#settled) {
      this.#settled = true;
      this.#done();
      this.#reject(err);
      return;
    }
    if (this.#over) return;
    // a response that has all arrived (its stream closed cleanly) stays readable to its end
    if (!this.#whole) {
      const error = err as Error;
      if (this.#out !== undefined) this.#out.destroy(error);
      else if (this.#sink !== undefined) this.#sink.error(error);
      else this.#failure = error;
    }
    this.#done();
  }
}

/** How much of a streamed body is held for a reader that has not started (a Readable's default high-water mark). */
const HOLD_BYTES = 16 * 1024;

/** A response with `response: 'stream'`: its body as a Readable (made on first use) or fed to a sink. */
class StreamedResponse implements Http2Response {
  readonly body = EMPTY_BODY;
  readonly trailers: Promise<http2.IncomingHttpHeaders>;
  readonly #call: StreamCall;

  constructor(
    call: StreamCall,
    readonly endpoint: string,
    readonly status: number,
    readonly headers: http2.IncomingHttpHeaders,
  ) {
    this.#call = call;
    this.trailers = call.trailersPromise();
  }

  get stream(): Readable {
    return this.#call.readable();
  }

  consume(sink: Http2BodySink): void {
    this.#call.consume(sink);
  }

  pause(): void {
    this.#call.stream.pause();
  }

  resume(): void {
    this.#call.stream.resume();
  }

  cancel(): void {
    const stream = this.#call.stream;
    if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  whenOver(fn: (ok: boolean) => void): void {
    this.#call.whenOver(fn);
  }
}
