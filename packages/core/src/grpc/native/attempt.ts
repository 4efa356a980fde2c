/**
 * One call on one native endpoint: the request headers and messages out,
 * the response read, checked and classified, and the `GrpcResponse` of the
 * contract `grpcEndpoint` keeps (see `endpoint.ts`).
 *
 * @internal
 * @module
 */
import * as http2 from 'node:http2';
import { type CallContext, noteCall } from '../../context/index.js';
import { ClosedError, type Delivery, GrpcTowerError } from '../../errors.js';
import { Status, type StatusCode } from '../../status.js';
import type { SessionInfo, StreamOpener } from '../../transport/connection.js';
import { Metadata, type StatusObject } from '../grpc-js.js';
import type { MessageReader } from '../messages.js';
import { ResponseHalf, type ResponseWire } from '../response.js';
import { type GrpcRequest, type GrpcResponse, GrpcStatusError } from '../types.js';
import { addCallMetadata, callCredentialsOf } from './call-credentials.js';
import { closedStream } from './closed.js';
import type { NativeGrpcEndpoint } from './endpoint.js';
import { requestHeaders } from './headers.js';
import {
  type DecodeFailure,
  MessageDecoder,
  type MessageSink,
  codeOfHttpStatus,
  compressMessage,
  frameMessage,
  metadataOf,
  statusOfHeaders,
  writeFramed,
} from './wire.js';

/** How many times one attempt re-opens a stream that never reached the server application. */
const MAX_RESTARTS = 3;

const ATTEMPT = Symbol('nativeAttempt');
type TaggedStream = http2.ClientHttp2Stream & { [ATTEMPT]: NativeAttempt };

// stream listeners shared by every attempt (no closures per call)
// (an attempt that restarted ignores its earlier stream)
function onResponse(this: TaggedStream, headers: http2.IncomingHttpHeaders, flags: number): void {
  this[ATTEMPT].onResponse(this, headers, flags);
}
function onData(this: TaggedStream, chunk: Buffer): void {
  this[ATTEMPT].onData(this, chunk);
}
function onTrailers(this: TaggedStream, headers: http2.IncomingHttpHeaders): void {
  this[ATTEMPT].onTrailers(this, headers);
}
function onEnd(this: TaggedStream): void {
  this[ATTEMPT].onEnd(this);
}
function onClose(this: TaggedStream): void {
  this[ATTEMPT].onClose(this);
}
function onError(): void {
  // reported by 'close' (the stream's rstCode and the session's fate)
}

const END_STREAM = 0x1;
/** grpc-js's `WriteFlags.NoCompress`: this message is sent uncompressed. */
const NO_COMPRESS = 0x2;

/** One call on one native endpoint. */
export class NativeAttempt implements ResponseWire, StreamOpener, MessageSink {
  readonly #endpoint: NativeGrpcEndpoint;
  readonly #req: GrpcRequest;
  readonly #ctx: CallContext;
  /** The response side: headers, messages, commit, the consumer. */
  readonly #res: ResponseHalf;
  #stream: http2.ClientHttp2Stream | undefined;
  #session: SessionInfo | undefined;
  #reader: MessageReader | undefined;
  #decoder: MessageDecoder | undefined;
  #offAbort: (() => void) | undefined;
  #httpStatus: number | undefined;
  #trailers: StatusObject | undefined;
  #writing = false;
  /** Whether the message being written is being compressed (not handed to the stream yet). */
  #compressing = false;
  /** The `grpc-encoding` of the request, when its messages are compressed. */
  #compression: 'gzip' | 'deflate' | undefined;
  #halfClosed = false;
  /** Whether the server ended the response (its trailers read). */
  #serverEnded = false;
  /** Whether the trailers wait for the last message to inflate. */
  #ending = false;
  /** Whether the response side asked to hold the wire (messages wait unread). */
  #held = false;
  #restarts = 0;

  constructor(
    endpoint: NativeGrpcEndpoint,
    req: GrpcRequest,
    ctx: CallContext,
    resolve: (res: GrpcResponse) => void,
    reject: (err: unknown) => void,
  ) {
    this.#endpoint = endpoint;
    this.#req = req;
    this.#ctx = ctx;
    this.#res = new ResponseHalf(endpoint.address, req, ctx, resolve, reject, this);
  }

  begin(): void {
    this.#offAbort = this.#ctx.onAbort(() => this.#onAbort());
    this.#open();
  }

  #open(): void {
    const endpoint = this.#endpoint;
    let reader: MessageReader;
    try {
      reader = this.#req.messages.reader();
    } catch (err) {
      this.#finish(
        {
          code: Status.UNAVAILABLE,
          details: 'request messages can no longer be replayed',
          metadata: new Metadata(),
        },
        undefined,
        new ClosedError('request messages can no longer be replayed', {
          endpoint: endpoint.address,
          cause: err,
        }),
      );
      return;
    }
    this.#reader = reader;
    const compression = endpoint.compression;
    this.#compression = compression;
    const headers = requestHeaders(endpoint, this.#req, this.#ctx.deadline, compression);
    const connection = endpoint.connection;
    noteCall(this.#ctx, connection.state === 'ready' ? 'in-flight' : 'connecting', endpoint.address);
    const creds = callCredentialsOf(endpoint.callCredentials, this.#req.credentials);
    if (creds === undefined) {
      connection.request(headers, this);
      return;
    }
    // the credentials' metadata first (a token fetched, say), then the stream
    const authority = headers[':authority'] as string;
    void addCallMetadata(creds, authority, this.#req.method, headers).then((failure) => {
      if (this.#res.status !== undefined) return;
      if (failure === undefined) connection.request(headers, this);
      // nothing was sent, but opening the stream again would meet the same credentials
      else this.#finish({ ...failure, metadata: new Metadata() }, 'not-sent', undefined, false);
    });
  }

  // StreamOpener

  opened(stream: http2.ClientHttp2Stream, session: SessionInfo): void {
    if (this.#res.status !== undefined) {
      // cancelled while it waited for the connection
      stream.close(http2.constants.NGHTTP2_CANCEL);
      return;
    }
    this.#stream = stream;
    this.#session = session;
    this.#decoder = new MessageDecoder(this.#endpoint.settings.maxReceiveBytes, this);
    (stream as TaggedStream)[ATTEMPT] = this;
    stream.on('response', onResponse);
    stream.on('data', onData);
    stream.on('trailers', onTrailers);
    stream.on('end', onEnd);
    stream.on('close', onClose);
    stream.on('error', onError);
    this.#reader?.onAvailable(() => this.#pump());
    this.#pump();
  }

  notSent(reason: string, unconnected: boolean): void {
    if (this.#res.status !== undefined) return;
    this.#finish(
      { code: Status.UNAVAILABLE, details: reason, metadata: new Metadata() },
      unconnected ? 'unconnected' : 'not-sent',
    );
  }

  tooLarge(size: number, limit: number): void {
    if (this.#res.status !== undefined) return;
    const status = {
      code: Status.RESOURCE_EXHAUSTED,
      details: `request metadata of ${size} bytes is larger than the server's limit of ${limit} (its SETTINGS_MAX_HEADER_LIST_SIZE)`,
      metadata: new Metadata(),
    };
    // nothing was sent, and any endpoint of this server would refuse it the same
    const error = new GrpcStatusError(status, {
      endpoint: this.#endpoint.address,
      serverResponded: false,
      delivery: 'not-sent',
      retryable: false,
    });
    this.#finish(status, 'not-sent', error, false);
  }

  // sending

  #pump(): void {
    const stream = this.#stream;
    const reader = this.#reader;
    if (stream === undefined || reader === undefined) return;
    while (!this.#halfClosed && this.#res.status === undefined) {
      if (this.#writing) {
        // the end goes out behind the message being written, not before one being compressed
        if (this.#compressing || !reader.endsAfterCurrent()) return;
        this.#halfClosed = true;
        stream.end();
        return;
      }
      const next = reader.next();
      if (next.kind === 'pending') return;
      if (next.kind === 'end') {
        this.#halfClosed = true;
        stream.end();
        return;
      }
      const data = next.message.data;
      const max = this.#endpoint.settings.maxSendBytes;
      if (data.length > max) {
        // the stream has started: a local failure, not one to send again
        this.#fatal(
          Status.RESOURCE_EXHAUSTED,
          `request message larger than the send limit (${data.length} vs. ${max} bytes)`,
        );
        return;
      }
      this.#writing = true;
      const callback = writtenCallback(this, stream, next.index);
      // the last message carries the end of the request (one DATA frame for a unary call)
      const last = reader.endsAfterCurrent();
      if (last) this.#halfClosed = true;
      const compression = this.#compression;
      // a message written with grpc-js's NoCompress flag goes as it is
      if (compression === undefined || ((next.message.flags ?? 0) & NO_COMPRESS) !== 0) {
        writeFramed(stream, frameMessage(data), last, callback);
        continue;
      }
      this.#compressing = true;
      compressMessage(compression, data, (err, packed) => {
        if (this.#stream !== stream || this.#res.status !== undefined) return;
        this.#compressing = false;
        if (err !== null) {
          this.#fatal(
            Status.INTERNAL,
            `could not compress a request message (${compression}): ${err.message}`,
          );
          return;
        }
        writeFramed(stream, frameMessage(packed, true), last, callback);
      });
    }
  }

  /** @internal The stream wrote message `index`. */
  written(stream: http2.ClientHttp2Stream, index: number): void {
    if (this.#stream !== stream) return; // a restarted attempt's late callback
    this.#writing = false;
    this.#reader?.written(index);
    this.#pump();
  }

  // receiving

  /** @internal */
  onResponse(stream: http2.ClientHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number): void {
    if (stream !== this.#stream) return;
    const status = Number(headers[':status']);
    this.#httpStatus = status;
    if ((flags & END_STREAM) !== 0) {
      // trailers-only: the status is in these headers
      this.#trailers = statusOfHeaders(headers);
      return;
    }
    // a response that is not gRPC's (a proxy's error page) is read to its end, then mapped
    if (status !== 200) return;
    const metadata = metadataOf(headers);
    if (metadata === undefined) {
      this.#fatal(Status.INTERNAL, 'response headers that are not valid gRPC metadata');
      return;
    }
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined) (this.#decoder as MessageDecoder).encoding = String(encoding);
    const accepts = headers['grpc-accept-encoding'];
    if (accepts !== undefined) this.#endpoint.serverAccepts(String(accepts));
    this.#res.onHeaders(metadata);
  }

  /** @internal */
  onData(stream: http2.ClientHttp2Stream, chunk: Buffer): void {
    if (stream !== this.#stream || this.#res.status !== undefined || this.#httpStatus !== 200) return;
    (this.#decoder as MessageDecoder).push(chunk);
  }

  // MessageSink: what the decoder hands over

  /** @internal Takes one message; false to stop decoding (the call ended). */
  onMessage(message: Buffer): boolean {
    if (this.#res.status !== undefined) return false;
    this.#res.onMessage(message);
    return this.#res.status === undefined;
  }

  /** @internal The decoder refused a message: the call ends. */
  onRefused(failure: DecodeFailure): void {
    this.#fatal(failure.code, failure.details);
  }

  /**
   * @internal A message began inflating: the wire is held while it does
   * (what comes behind it waits for it); once the decoder is idle again,
   * the trailers that waited end the call, or the wire opens again unless
   * the response side holds it.
   */
  onInflating(busy: boolean): void {
    const stream = this.#stream;
    if (stream === undefined || this.#res.status !== undefined) return;
    if (busy) {
      if (!stream.isPaused()) stream.pause();
    } else if (this.#ending) {
      this.#finishWithTrailers(this.#trailers as StatusObject);
    } else if (!this.#held && stream.isPaused()) {
      stream.resume();
    }
  }

  /** @internal */
  onTrailers(stream: http2.ClientHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    if (stream !== this.#stream) return;
    this.#trailers = statusOfHeaders(headers) ?? {
      code: this.#httpStatus === 200 ? Status.UNKNOWN : codeOfHttpStatus(this.#httpStatus ?? 0),
      details: 'response trailers without grpc-status',
      metadata: metadataOf(headers) ?? new Metadata(),
    };
  }

  /**
   * @internal The response ended (its DATA and trailers read): with a
   * status, the call is over even while this side still sends, as when a
   * server answers a stream before the request's end.
   */
  onEnd(stream: http2.ClientHttp2Stream): void {
    if (stream !== this.#stream || this.#res.status !== undefined || this.#trailers === undefined) return;
    // end this side too, gracefully (a reset here races the stream's close on the server)
    this.#serverEnded = true;
    if (!stream.writableEnded && !stream.destroyed) stream.end();
    this.#finishWithTrailers(this.#trailers);
  }

  #finishWithTrailers(trailers: StatusObject): void {
    const decoder = this.#decoder;
    if (decoder?.busy === true) {
      // the status goes out after the message still inflating, as it came
      this.#ending = true;
      return;
    }
    if (decoder?.partial === true) {
      this.#fatal(Status.INTERNAL, `the response ended inside a message (${decoder.describePartial()})`);
      return;
    }
    this.#finish(trailers);
  }

  /** @internal The stream closed: the status is known now. */
  onClose(stream: http2.ClientHttp2Stream): void {
    if (stream !== this.#stream || this.#res.status !== undefined) return;
    // the response was read whole: its status waits for the last message to inflate, whatever the reset
    if (this.#ending) return;
    const trailers = this.#trailers;
    const httpStatus = this.#httpStatus;
    if (trailers !== undefined && stream.rstCode === 0) {
      this.#finishWithTrailers(trailers);
      return;
    }
    if (httpStatus !== undefined && httpStatus !== 200 && stream.rstCode === 0) {
      this.#finish({
        code: codeOfHttpStatus(httpStatus),
        details: `Received HTTP status code ${httpStatus} without a gRPC status`,
        metadata: new Metadata(),
      });
      return;
    }
    const end = closedStream(
      stream,
      this.#session as SessionInfo,
      httpStatus !== undefined,
      this.#endpoint.lastError,
    );
    this.#finish(end.status, end.delivery);
  }

  /** Ends the call with a status of this side's making (the stream is reset). */
  #fatal(code: StatusCode, details: string): void {
    this.#finish({ code, details, metadata: new Metadata() });
  }

  #onAbort(): void {
    if (this.#res.status !== undefined) return;
    const reason = this.#ctx.reason();
    const code = reason instanceof GrpcTowerError ? reason.code : Status.CANCELLED;
    this.#finish({ code, details: reason.message, metadata: new Metadata() });
  }

  /** Whether `delivery` lets the attempt open its stream again here (see the module documentation). */
  #restart(delivery: Delivery | undefined): boolean {
    if (
      delivery === undefined ||
      delivery === 'lost' ||
      this.#res.committed ||
      this.#res.headers !== undefined ||
      this.#restarts >= MAX_RESTARTS ||
      this.#ctx.aborted ||
      this.#endpoint.connection.state === 'closed' ||
      this.#endpoint.connection.state === 'failed'
    ) {
      return false;
    }
    this.#restarts++;
    this.#reader?.close();
    this.#reader = undefined;
    this.#stream = undefined;
    this.#session = undefined;
    this.#httpStatus = undefined;
    this.#trailers = undefined;
    this.#writing = false;
    this.#compressing = false;
    this.#halfClosed = false;
    this.#serverEnded = false;
    this.#ending = false;
    this.#held = false;
    this.#decoder = undefined;
    this.#res.reset();
    this.#open();
    return true;
  }

  /**
   * Sets the final status (once), resets the stream when it is still open,
   * and settles; or opens the stream again when `delivery` allows it and
   * `restartable` is not false.
   */
  #finish(status: StatusObject, delivery?: Delivery, error?: unknown, restartable = true): void {
    if (this.#res.status !== undefined) return;
    // a message still inflating is dropped: nothing is handed over after the status
    this.#decoder?.close();
    const stream = this.#stream;
    if (stream === undefined) {
      // still waiting for the connection: no stream to open later
      this.#endpoint.connection.withdraw(this);
    } else if (!stream.closed && !stream.destroyed && !this.#serverEnded) {
      // this side ends a call the server has not: RST_STREAM CANCEL
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }
    if (restartable && this.#restart(delivery)) return;
    this.#offAbort?.();
    this.#offAbort = undefined;
    this.#reader?.close();
    this.#endpoint.finished(this);
    this.#res.onStatus(status, delivery, error);
  }

  // what the response side asks of the stream

  /** @internal The consumer wants more: let HTTP/2 flow control open again. */
  more(): void {
    this.#held = false;
    // a message inflating keeps the wire held; it opens once the decoder is idle
    if (this.#decoder?.busy === true) return;
    const stream = this.#stream;
    if (stream?.isPaused() === true) stream.resume();
  }

  /** @internal Messages wait unread: hold the server back (flow control). */
  hold(): void {
    this.#held = true;
    const stream = this.#stream;
    if (stream !== undefined && !stream.isPaused()) stream.pause();
  }

  /** @internal The call is cancelled (by its consumer, or a closing endpoint). */
  cancel(code: StatusCode, details: string): void {
    if (this.#res.status !== undefined) return;
    this.#finish({ code, details, metadata: new Metadata() });
  }
}

/** The callback of message `index`'s write on `stream` (called detached, so a closure). */
function writtenCallback(attempt: NativeAttempt, stream: http2.ClientHttp2Stream, index: number): () => void {
  return () => attempt.written(stream, index);
}
