/**
 * The shapes of a plain HTTP/2 request and its response (buffered, or with
 * its body streamed to a Readable or a sink), and the error of a request
 * that failed at the HTTP/2 layer. The endpoint that sends them is in
 * `endpoint.ts`.
 *
 * @module
 */
import type * as http2 from 'node:http2';
import type { Readable } from 'node:stream';
import { type Delivery, UnavailableError } from '../errors.js';
import type { Http2Body } from './body.js';

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
 * A request failed at the HTTP/2 layer. `delivery` is how far it got, as
 * the endpoint saw it: `not-sent` or `unconnected` (no stream was opened),
 * `refused` (REFUSED_STREAM, which is also how a stream beyond a GOAWAY's
 * last stream ends), or `lost` (the stream or its connection ended after
 * the request was sent). `refused` is true when the server never processed
 * it (any delivery but `lost`), so it is safe to send again. `afterHeaders`
 * is true when the response headers had arrived before the failure: past
 * that point a retry layer must not send the request again (its commit
 * point).
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
      /** How far the request got; `refused` follows from it (default `lost`). */
      delivery?: Delivery;
      /** Shorthand when `delivery` is not given: `true` for `refused`, `false` for `lost`. */
      refused?: boolean;
      afterHeaders?: boolean;
      cause?: unknown;
      retryable?: false | undefined;
    },
  ) {
    const delivery = options.delivery ?? (options.refused === true ? 'refused' : 'lost');
    super(message, {
      endpoint: options.endpoint,
      cause: options.cause,
      retryable: options.retryable,
      delivery,
    });
    this.refused = delivery !== 'lost';
    this.afterHeaders = options.afterHeaders === true;
  }
}
