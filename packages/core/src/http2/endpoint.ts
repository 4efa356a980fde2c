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
import { BehaviorSubject, type Observable, distinctUntilChanged } from 'rxjs';
import { Readable } from 'node:stream';
import type { CallContext } from '../context.js';
import { type Endpoint, type Readiness, checkForZones, checkWeight, checkZone } from '../endpoint.js';
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

const noop = (): void => undefined;

/** What a request body must be. */
const BODY_EXPECTED = 'a Buffer, a string, an Http2Body, a Readable or an AsyncIterable of chunks';

/** The request options of a request with a body. */
const WITH_BODY: http2.ClientSessionRequestOptions = Object.freeze({ endStream: false });

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
  /** What each request's {@link StreamCall} tells this endpoint. */
  readonly #hooks: StreamHooks = {
    finished: (stream) => {
      this.#streams.delete(stream);
      if (this.#streams.size === 0) this.#drained?.();
    },
  };
  /** Per session, how to fail its unsettled requests if it closes under them. */
  readonly #orphans = new Map<http2.ClientHttp2Session, Set<() => void>>();
  #session: http2.ClientHttp2Session | undefined;
  #backoff: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The attempt `reconnect()` started, until it ends. */
  #reconnecting: { readonly promise: Promise<void>; readonly end: () => void } | undefined;
  /** Whether `reconnect()` took the place of a scheduled attempt since the last one ran. */
  #reconnected = false;
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
    if (this.#reconnecting !== undefined) return this.#reconnecting.promise;
    const timer = this.#timer;
    if (this.#closing !== undefined || timer === undefined || this.#reconnected) return undefined;
    clearTimeout(timer);
    let end!: () => void;
    const promise = new Promise<void>((resolve) => {
      end = resolve;
    });
    this.#reconnecting = { promise, end };
    this.#reconnected = true;
    this.#connect();
    return promise;
  }

  /** The attempt `reconnect()` started has ended (connected, failed, or the endpoint closed). */
  #reconnectEnded(): void {
    const attempt = this.#reconnecting;
    this.#reconnecting = undefined;
    attempt?.end();
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
      this.#reconnected = false;
      this.#set('ready');
      this.#reconnectEnded();
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
    this.#timer = setTimeout(() => {
      this.#reconnected = false;
      this.#connect();
    }, delay);
    this.#timer.unref();
    this.#reconnectEnded();
  }

  call(req: Http2Request, ctx: CallContext): Promise<Http2Response> {
    const address = this.address;
    if (this.#closing !== undefined) {
      return Promise.reject(
        new ClosedError(`endpoint ${address} is closed or draining`, { endpoint: address }),
      );
    }
    if (ctx.aborted) return Promise.reject(ctx.reason());
    const session = this.#session;
    if (session === undefined || session.destroyed || session.closed) {
      return Promise.reject(
        new Http2RequestError(`endpoint ${address} has no open HTTP/2 session`, {
          endpoint: address,
          refused: true,
        }),
      );
    }
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
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(
        {
          ':method': methodOf(req),
          ':path': req.path,
          ':authority': this.#authority,
          ...req.headers,
        },
        // a GET, HEAD or DELETE with a body must not end its stream with the headers
        body === undefined ? undefined : WITH_BODY,
      );
    } catch (err) {
      reader?.release();
      return Promise.reject(
        new Http2RequestError(`request to ${address} failed to start`, {
          endpoint: address,
          refused: true,
          cause: err,
        }),
      );
    }
    this.#streams.add(stream);
    let orphans = this.#orphans.get(session);
    if (orphans === undefined) {
      orphans = new Set();
      this.#orphans.set(session, orphans);
    }
    const call = new StreamCall(
      this.#hooks,
      stream,
      address,
      req.response === 'stream',
      this.#maxBody,
      reader,
      orphans,
    );
    call.link(ctx);
    if (reader !== undefined) {
      send(stream, reader).then(noop, (err: unknown) => call.bodyFailed(err));
    } else if (body !== undefined) stream.end(body);
    else stream.end();
    return call.promise;
  }

  close(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    const grace = options.graceMs ?? this.#grace;
    this.#closing = (async () => {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#reconnectEnded();
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

/** What a {@link StreamCall} tells its endpoint. */
interface StreamHooks {
  /** The stream is over: it no longer counts as pending. */
  finished(stream: http2.ClientHttp2Stream): void;
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
 * One request on an HTTP/2 stream, from its start to the stream's close:
 * settles the call at the response headers (`response: 'stream'`) or when
 * the stream closes cleanly with the whole body (buffered), and fails it,
 * or the streamed body, otherwise.
 */
class StreamCall {
  readonly promise: Promise<Http2Response>;
  readonly stream: WithCall<http2.ClientHttp2Stream>;
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
  readonly #orphans: Set<() => void>;
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
  /** The session closed under a stream that never closed itself (it had not reached the server). */
  readonly #onOrphaned = (): void =>
    this.#fail(
      new Http2RequestError(`HTTP/2 session to ${this.#address} closed before the request completed`, {
        endpoint: this.#address,
        refused: this.#status === 0,
        afterHeaders: this.#status !== 0,
      }),
    );

  constructor(
    hooks: StreamHooks,
    stream: http2.ClientHttp2Stream,
    address: string,
    streaming: boolean,
    maxBody: number,
    reader: BodyReader | undefined,
    orphans: Set<() => void>,
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
    this.#orphans = orphans;
    orphans.add(this.#onOrphaned);
    const s = stream as WithCall<http2.ClientHttp2Stream>;
    s[CALL] = this;
    this.stream = s;
    s.on('response', onResponse);
    if (!streaming) s.on('data', onBufferedData);
    s.on('trailers', onTrailers);
    // The readable side ends when the server ends the stream, but also when it
    // resets it or the connection goes: only the stream's close says which.
    s.on('end', onEnd);
    s.on('close', onClose);
    s.on('error', onError);
  }

  /** Follows the call's context: its cancellation resets the stream. */
  link(ctx: CallContext): void {
    this.#unlink = ctx.onAbort(() => {
      this.stream.close(http2.constants.NGHTTP2_CANCEL);
      this.#fail(ctx.reason());
    });
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
    this.#orphans.delete(this.#onOrphaned);
    this.#unlink();
    this.#hooks.finished(this.stream);
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
