/**
 * One request dispatched through the stack, from undici's handler's point
 * of view: it is the handler's `DispatchController` (abort, pause,
 * resume), calls the stack once with a context of its own, and feeds the
 * response to the handler as it streams in, with backpressure.
 *
 * Both of undici's handler forms are served: the v7 one
 * (`onRequestStart`, `onResponseStart`, `onResponseData`,
 * `onResponseEnd`, `onResponseError`, each given this controller) and the
 * older one that undici's own `fetch` and `request()` still pass
 * (`onConnect`, `onHeaders`, `onData`, `onComplete`, `onError`, where
 * `false` from `onHeaders` or `onData` pauses until `resume`).
 *
 * @module
 */
import type { IncomingHttpHeaders } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Service } from '@grpc-tower/core';
import { CallControl, ownedContext } from '@grpc-tower/core/internal';
import {
  type Http2BodySink,
  type Http2Request,
  Http2RequestError,
  type Http2Response,
} from '@grpc-tower/core/http2';
import { type Dispatcher, errors } from 'undici';
import { releaseBody } from './request.js';

/** The `context` handed to the handler (and returned by undici's `request()`). */
export interface ExchangeContext {
  /** The address of the server that answered, once the response headers came. */
  endpoint?: string;
}

/** What an exchange needs of its dispatcher. */
export interface ExchangeSettings {
  readonly service: Service<Http2Request, Http2Response>;
  /** Time until the response headers, in ms; 0 for none. */
  readonly headersTimeout: number;
  /** Longest gap between two body chunks while the handler reads, in ms; 0 for none. */
  readonly bodyTimeout: number;
  /** A deadline over the whole request, in ms, or undefined. */
  readonly timeoutMs: number | undefined;
  /** Called once when the exchange is over, after the handler heard of it. */
  readonly done: (exchange: Exchange) => void;
}

/** The headers without HTTP/2's pseudo-headers (`:status`). */
function plain(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) !== 58 /* ':' */) out[name] = headers[name];
  }
  return out;
}

/** Header names as Buffers, made once each (a response repeats the same few names). */
const NAMES = new Map<string, Buffer>();
const MAX_NAMES = 512;

function nameBuffer(name: string): Buffer {
  let b = NAMES.get(name);
  if (b === undefined) {
    b = Buffer.from(name, 'latin1');
    if (NAMES.size < MAX_NAMES) NAMES.set(name, b);
  }
  return b;
}

/** Headers as undici's raw form: a flat list of name and value Buffers, one pair per value. */
function raw(headers: IncomingHttpHeaders): Buffer[] {
  const out: Buffer[] = [];
  for (const name in headers) {
    const value = headers[name];
    // HTTP/2's pseudo-headers (`:status`) are not headers
    if (value === undefined || name.charCodeAt(0) === 58) continue;
    const key = nameBuffer(name);
    for (const v of Array.isArray(value) ? value : [value]) out.push(key, Buffer.from(String(v), 'latin1'));
  }
  return out;
}

/**
 * Timeouts of this length or more are not timers of their own: the
 * exchanges that have one are checked together every {@link SWEEP_MS} ms
 * (at most that late, as undici's own timers are coarse for long delays),
 * which saves a timer per request for the 300 s defaults.
 */
const COARSE_MS = 2_000;
const SWEEP_MS = 500;
/** The exchanges with a coarse timeout running; the sweep timer runs while there is one. */
const coarse = new Set<Exchange>();
let sweeper: ReturnType<typeof setInterval> | undefined;

function watchCoarse(exchange: Exchange): void {
  coarse.add(exchange);
  if (sweeper === undefined) {
    sweeper = setInterval(() => {
      const now = performance.now();
      for (const e of coarse) e.sweep(now);
    }, SWEEP_MS);
    sweeper.unref();
  }
}

function unwatchCoarse(exchange: Exchange): void {
  if (!coarse.delete(exchange) || coarse.size > 0 || sweeper === undefined) return;
  clearInterval(sweeper);
  sweeper = undefined;
}

/**
 * A handler of either form: undici 8's types declare only the newer
 * callbacks, undici 7's both; callers of undici 7 (and code written for it)
 * may still pass the older ones, so they are declared here.
 */
export type AnyDispatchHandler = Dispatcher.DispatchHandler & {
  onConnect?(abort: (err?: Error) => void, context?: unknown): void;
  onHeaders?(status: number, headers: Buffer[], resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: string[] | null): void;
  onError?(err: Error): void;
};

/**
 * One request in flight (see the module documentation). Made by the
 * dispatcher; the handler sees it as its controller.
 */
export class Exchange implements Dispatcher.DispatchController {
  readonly #handler: AnyDispatchHandler;
  /** Whether the handler is of undici's older form (no `onRequestStart`). */
  readonly #legacy: boolean;
  readonly #request: Http2Request;
  readonly #settings: ExchangeSettings;
  readonly #context: ExchangeContext = {};
  /** The call's deadline and cancellation (no AbortSignal unless a layer asks for one). */
  #control: CallControl | undefined;
  #phase: 'new' | 'waiting' | 'streaming' | 'done' = 'new';
  #aborted = false;
  #paused = false;
  #reason: Error | null = null;
  #response: Http2Response | undefined;
  #headers: IncomingHttpHeaders | undefined;
  #trailers: IncomingHttpHeaders | undefined;
  #stream: Readable | undefined;
  /** The response body comes through the endpoint's sink (`consume`), not a Readable. */
  #sink = false;
  /** The sink was handed over (the handler was ready for the body). */
  #consumed = false;
  #headersTimer: ReturnType<typeof setTimeout> | undefined;
  #bodyTimer: ReturnType<typeof setTimeout> | undefined;
  /** With a coarse headers timeout: when it passes (`performance.now()`), 0 when not running. */
  #headersDue = 0;
  /** With a coarse body timeout: when it passes, 0 when not running. */
  #bodyDue = 0;
  /** The body source, ended when the request is over before reading it all. */
  readonly #body: unknown;

  constructor(request: Http2Request, handler: AnyDispatchHandler, settings: ExchangeSettings, body: unknown) {
    this.#request = request;
    this.#handler = handler;
    this.#legacy = typeof handler.onRequestStart !== 'function';
    this.#settings = settings;
    this.#body = body;
  }

  /** Whether the handler or the dispatcher aborted the request. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** Whether the handler paused the response body. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Why the request was aborted, once it was. */
  get reason(): Error | null {
    return this.#reason;
  }

  /** The response headers in undici's raw form, once they came. */
  get rawHeaders(): Buffer[] | null {
    return this.#headers === undefined ? null : raw(this.#headers);
  }

  /** The trailers in undici's raw form, once the body ended. */
  get rawTrailers(): Buffer[] | null {
    return this.#trailers === undefined ? null : raw(this.#trailers);
  }

  /** Whether the exchange is over (answered to its end, failed or aborted). */
  get done(): boolean {
    return this.#phase === 'done';
  }

  /** Starts the request: tells the handler, then calls the stack. */
  start(): void {
    const timeoutMs = this.#settings.timeoutMs;
    // the exchange settles its request itself when the call stops (as a channel's call does)
    const control = new CallControl(
      timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs,
      (err) => this.#fail(err),
    );
    this.#control = control;
    const context = ownedContext(control);
    control.start();
    this.#phase = 'waiting';
    try {
      if (this.#legacy) this.#handler.onConnect?.((err?: Error) => this.abort(err), this.#context);
      else this.#handler.onRequestStart?.(this, this.#context);
    } catch (err) {
      this.abort(err instanceof Error ? err : new Error(String(err)));
    }
    if (this.done) return;
    const headersTimeout = this.#settings.headersTimeout;
    if (headersTimeout >= COARSE_MS) {
      this.#headersDue = performance.now() + headersTimeout;
      watchCoarse(this);
    } else if (headersTimeout > 0) {
      this.#headersTimer = setTimeout(
        () => this.#stop(new errors.HeadersTimeoutError(`no response headers within ${headersTimeout} ms`)),
        headersTimeout,
      );
    }
    let call: Promise<Http2Response>;
    try {
      call = this.#settings.service.call(this.#request, context);
    } catch (err) {
      call = Promise.reject(err);
    }
    call.then(
      (res) => this.#respond(res),
      (err: unknown) => this.#fail(err instanceof Error ? err : new Error(String(err))),
    );
  }

  /** Fails the request without telling the handler it started (a request refused before it was sent). */
  refuse(err: Error): void {
    this.#phase = 'done';
    releaseBody(this.#body);
    this.#deliverError(err);
  }

  /**
   * Stops the request with `reason` (undici's `RequestAbortedError` when
   * none is given): the stack's call is cancelled (an HTTP/2 stream in
   * flight is reset with CANCEL) and the handler gets `reason` as its error.
   */
  abort(reason?: Error): void {
    if (this.#phase === 'done') return;
    this.#aborted = true;
    this.#reason = reason ?? new errors.RequestAbortedError();
    this.#fail(this.#reason);
  }

  /** {@link Exchange.resume}, bound once for the older handlers' `onHeaders`. */
  readonly #resume = (): void => this.resume();

  /** Stops reading the response body until {@link Exchange.resume}: HTTP/2 flow control holds the server. */
  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#stream?.pause();
    if (this.#consumed) this.#response?.pause?.();
    this.#clearBodyTimer();
  }

  /** Reads the response body again after {@link Exchange.pause}. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#phase !== 'streaming') return;
    if (this.#sink) {
      if (this.#consumed) {
        this.#armBodyTimer();
        this.#response?.resume?.();
      } else this.#consume();
      return;
    }
    if (this.#stream === undefined) return;
    this.#armBodyTimer();
    this.#stream.resume();
  }

  /**
   * The endpoint's sink side (`Http2Response.consume`): the body's chunks,
   * its end and its failure, straight to the handler with no Readable in
   * between. Returns false to hold the body while the handler is paused.
   */
  data(chunk: Buffer): boolean {
    if (this.#phase !== 'streaming') return true;
    this.#armBodyTimer();
    this.#data(chunk);
    return !this.#paused;
  }

  /** The body ended whole (the sink side). */
  end(trailers: IncomingHttpHeaders): void {
    this.#clearBodyTimer();
    this.#end(trailers);
  }

  /** The body failed after the headers (the sink side). */
  error(err: Error): void {
    this.#fail(err);
  }

  /** Hands the body to this exchange, once the handler is ready for it. */
  #consume(): void {
    const res = this.#response as Http2Response;
    this.#consumed = true;
    this.#armBodyTimer();
    (res.consume as (sink: Http2BodySink) => void).call(res, this);
  }

  /** Checks the coarse timeouts at `now` (`performance.now()`); the sweep timer calls it. */
  sweep(now: number): void {
    if (this.#headersDue > 0 && now >= this.#headersDue) {
      this.#stop(
        new errors.HeadersTimeoutError(`no response headers within ${this.#settings.headersTimeout} ms`),
      );
    } else if (this.#bodyDue > 0 && now >= this.#bodyDue) {
      this.#stop(new errors.BodyTimeoutError(`no response body data for ${this.#settings.bodyTimeout} ms`));
    }
  }

  /** The dispatcher stops the request (a timeout of its own, or `destroy()`). */
  #stop(err: Error): void {
    if (this.#phase === 'done') return;
    this.#fail(err);
  }

  #respond(res: Http2Response): void {
    if (this.#phase === 'done') {
      if (res.cancel !== undefined) res.cancel();
      else res.stream?.destroy();
      return;
    }
    this.#clearHeadersTimer();
    this.#response = res;
    this.#context.endpoint = res.endpoint;
    // the endpoint's sink, when it has one, saves a Readable per response
    this.#sink = res.consume !== undefined;
    const stream = this.#sink ? undefined : res.stream;
    // nothing flows until the handler has seen the headers (and perhaps paused)
    stream?.pause();
    this.#stream = stream;
    this.#phase = 'streaming';
    this.#headers = res.headers;
    try {
      if (this.#legacy) {
        this.#handler.onResponseStarted?.();
        if (this.#handler.onHeaders?.(res.status, raw(res.headers), this.#resume, '') === false) this.pause();
      } else {
        this.#handler.onResponseStart?.(this, res.status, plain(res.headers), '');
      }
    } catch (err) {
      this.abort(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (this.#phase !== 'streaming') return;
    if (this.#sink) {
      if (!this.#paused) this.#consume();
      return;
    }
    if (stream === undefined) {
      // a layer answered with a whole body
      if (res.body.length > 0) this.#data(res.body);
      if (this.#phase === 'streaming') void res.trailers.then((t) => this.#end(t));
      return;
    }
    stream.on('data', (chunk: Buffer) => {
      if (this.#phase !== 'streaming') return;
      this.#armBodyTimer();
      this.#data(chunk);
    });
    stream.once('end', () => {
      this.#clearBodyTimer();
      void res.trailers.then((t) => this.#end(t));
    });
    stream.once('error', (err: Error) => this.#fail(err));
    stream.once('close', () => {
      if (this.#phase !== 'streaming' || stream.readableEnded) return;
      this.#fail(
        new Http2RequestError(`response body from ${res.endpoint} closed before its end`, {
          endpoint: res.endpoint,
          refused: false,
          afterHeaders: true,
        }),
      );
    });
    if (!this.#paused) {
      this.#armBodyTimer();
      stream.resume();
    }
  }

  #data(chunk: Buffer): void {
    try {
      if (this.#legacy) {
        if (this.#handler.onData?.(chunk) === false) this.pause();
      } else {
        this.#handler.onResponseData?.(this, chunk);
      }
    } catch (err) {
      this.abort(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #end(trailers: IncomingHttpHeaders): void {
    if (this.#phase !== 'streaming') return;
    this.#finish();
    this.#trailers = trailers;
    try {
      if (this.#legacy) this.#handler.onComplete?.(raw(trailers) as unknown as string[]);
      else this.#handler.onResponseEnd?.(this, plain(trailers));
    } catch (err) {
      this.#deliverError(err instanceof Error ? err : new Error(String(err)));
    }
    this.#settings.done(this);
  }

  #fail(err: Error): void {
    if (this.#phase === 'done') return;
    this.#finish();
    this.#control?.abort(err);
    if (this.#sink) {
      this.#response?.cancel?.();
    } else {
      const stream = this.#stream ?? this.#response?.stream;
      if (stream !== undefined && !stream.destroyed) stream.destroy();
    }
    this.#deliverError(err);
    this.#settings.done(this);
  }

  /** Marks the exchange over and releases its timers. */
  #finish(): void {
    this.#phase = 'done';
    this.#clearHeadersTimer();
    this.#clearBodyTimer();
    this.#control?.dispose();
    unwatchCoarse(this);
    releaseBody(this.#body);
  }

  #deliverError(err: Error): void {
    if (this.#legacy) {
      if (typeof this.#handler.onError !== 'function') throw err;
      this.#handler.onError(err);
    } else {
      this.#handler.onResponseError?.(this, err);
    }
  }

  #armBodyTimer(): void {
    const ms = this.#settings.bodyTimeout;
    if (ms <= 0 || this.#paused) return;
    if (ms >= COARSE_MS) {
      if (this.#bodyDue === 0) watchCoarse(this);
      this.#bodyDue = performance.now() + ms;
      return;
    }
    if (this.#bodyTimer !== undefined) {
      this.#bodyTimer.refresh();
      return;
    }
    this.#bodyTimer = setTimeout(
      () => this.#stop(new errors.BodyTimeoutError(`no response body data for ${ms} ms`)),
      ms,
    );
  }

  #clearBodyTimer(): void {
    this.#bodyDue = 0;
    if (this.#bodyTimer === undefined) return;
    clearTimeout(this.#bodyTimer);
    this.#bodyTimer = undefined;
  }

  #clearHeadersTimer(): void {
    this.#headersDue = 0;
    if (this.#headersTimer === undefined) return;
    clearTimeout(this.#headersTimer);
    this.#headersTimer = undefined;
  }
}
