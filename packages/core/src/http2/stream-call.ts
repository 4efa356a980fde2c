/**
 * One HTTP/2 request on its stream (`StreamCall`): it waits for the
 * connection, sends the body, reads the response into a buffer or hands it
 * on streamed (`StreamedResponse`: a Readable made on first use, or a
 * sink), and turns a reset, a lost session or a cancellation into the
 * call's error. The stream's listeners are shared functions, not closures
 * per request.
 *
 * @module
 */
import * as http2 from 'node:http2';
import { Readable } from 'node:stream';
import type { CallContext } from '../context/index.js';
import { CancelledError, type Delivery, GrpcTowerError } from '../errors.js';
import { Status } from '../status.js';
import type { Http2Connection, StreamOpener } from '../transport/connection.js';
import { type BodyReader, send } from './body.js';
import { type Http2BodySink, Http2RequestError, type Http2Response } from './types.js';

const noop = (): void => undefined;

/** The body of a streamed response, whose bytes are in `stream`. */
const EMPTY_BODY = Buffer.alloc(0);

/** The trailers of a response that had none: shared, so frozen. */
const EMPTY_TRAILERS: http2.IncomingHttpHeaders = Object.freeze({});
const NO_TRAILERS = Promise.resolve(EMPTY_TRAILERS);

/** What a {@link StreamCall} needs of its endpoint. */
export interface StreamHooks {
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
export class StreamCall implements StreamOpener {
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
  notSent(reason: string, unconnected: boolean): void {
    this.#waiting = false;
    this.#fail(
      new Http2RequestError(reason, {
        endpoint: this.#address,
        delivery: unconnected ? 'unconnected' : 'not-sent',
      }),
    );
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
          delivery: 'not-sent',
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
    const delivery: Delivery =
      status !== 0
        ? 'lost'
        : code === http2.constants.NGHTTP2_REFUSED_STREAM
          ? 'refused'
          : stream.id === undefined
            ? 'not-sent'
            : 'lost';
    this.#fail(
      new Http2RequestError(
        status === 0
          ? `HTTP/2 stream to ${this.#address} closed before its response (code ${code})`
          : `HTTP/2 stream to ${this.#address} closed before its response ended (code ${code})`,
        { endpoint: this.#address, delivery, afterHeaders: status !== 0 },
      ),
    );
  }

  errored(err: Error): void {
    const status = this.#status;
    this.#fail(
      new Http2RequestError(`HTTP/2 request to ${this.#address} failed: ${err.message}`, {
        endpoint: this.#address,
        delivery:
          status === 0 && this.stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ? 'refused' : 'lost',
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
