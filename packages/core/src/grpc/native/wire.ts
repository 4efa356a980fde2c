/**
 * gRPC over HTTP/2 as the wire has it (gRPC's PROTOCOL-HTTP2.md): the
 * 5-byte message prefix, the response statuses of a header block, the
 * codes an HTTP status or an RST_STREAM stands for, and the request
 * headers a caller's metadata must not set.
 *
 * @internal
 * @module
 */
import * as buffer from 'node:buffer';
import * as http2 from 'node:http2';
import * as zlib from 'node:zlib';
import { Metadata, type StatusObject } from '../grpc-js.js';
import { Status, type StatusCode } from '../../status.js';

const {
  NGHTTP2_CANCEL,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_INADEQUATE_SECURITY,
  NGHTTP2_NO_ERROR,
  NGHTTP2_REFUSED_STREAM,
} = http2.constants;

/** Messages up to this size are copied behind their prefix; larger ones are written as two chunks. */
const COPY_LIMIT = 16 * 1024;

/**
 * A message with its 5-byte prefix (the compressed flag set when
 * `compressed`), as one buffer or, for a large one, as the prefix and the
 * message itself (no copy).
 */
export function frameMessage(message: Buffer, compressed = false): Buffer | [Buffer, Buffer] {
  const length = message.length;
  const flag = compressed ? 1 : 0;
  if (length > COPY_LIMIT) {
    const prefix = Buffer.allocUnsafe(5);
    prefix[0] = flag;
    prefix.writeUInt32BE(length, 1);
    return [prefix, message];
  }
  const out = Buffer.allocUnsafe(5 + length);
  out[0] = flag;
  out.writeUInt32BE(length, 1);
  message.copy(out, 5);
  return out;
}

/** Writes one framed message, ending the request with it when it is the `last`. */
export function writeFramed(
  stream: http2.ClientHttp2Stream,
  framed: Buffer | [Buffer, Buffer],
  last: boolean,
  callback: () => void,
): void {
  if (Array.isArray(framed)) {
    stream.write(framed[0]);
    if (last) stream.end(framed[1], callback);
    else stream.write(framed[1], callback);
  } else if (last) {
    stream.end(framed, callback);
  } else {
    stream.write(framed, callback);
  }
}

/**
 * Compresses one request message with `encoding` (gzip or deflate), off
 * the event loop's thread as grpc-js does.
 */
export function compressMessage(
  encoding: 'gzip' | 'deflate',
  message: Buffer,
  done: (err: Error | null, compressed: Buffer) => void,
): void {
  if (encoding === 'gzip') zlib.gzip(message, done);
  else zlib.deflate(message, done);
}

/** What a {@link MessageDecoder} refuses, with the status that ends the call. */
export interface DecodeFailure {
  readonly code: StatusCode;
  readonly details: string;
}

/** The `grpc-accept-encoding` the transport sends: what {@link MessageDecoder} can decompress. */
export const ACCEPT_ENCODING = 'identity,deflate,gzip';

/** Where a {@link MessageDecoder} hands what it read (the attempt, so no closure per chunk). */
export interface MessageSink {
  /** Takes the next whole message, in the order sent; false stops decoding (the call ended). */
  onMessage(message: Buffer): boolean;
  /** The call ends with `failure`: a prefix refused, or a message that would not decompress. */
  onRefused(failure: DecodeFailure): void;
  /**
   * `true`: a compressed message began inflating, and what comes behind it
   * waits (hold the wire); `false`: that message and every whole one
   * behind it were handed over, the decoder is idle again.
   */
  onInflating(busy: boolean): void;
}

/**
 * Splits the DATA of a response into messages, across and within frames,
 * checks each prefix (the compressed flag against the response's
 * `grpc-encoding`, the receive limit) and hands them to its
 * {@link MessageSink} in order. An uncompressed message is handed over at
 * once; a gzip or deflate one is inflated off the event loop's thread (its
 * decompressed size held to the same limit, cut as soon as it passes it),
 * and the DATA behind it waits, undecoded, until it is handed over.
 */
export class MessageDecoder {
  readonly #maxBytes: number;
  readonly #sink: MessageSink;
  readonly #chunks: Buffer[] = [];
  #available = 0;
  /** The length of the message being read, or -1 between messages. */
  #need = -1;
  /** Whether the message being read is compressed. */
  #compressed = false;
  /** Stops the message inflating, while one is. */
  #abort: (() => void) | undefined;
  /** From the first message inflating to the sink's `onInflating(false)`. */
  #busy = false;
  #closed = false;
  /** The response's `grpc-encoding`, once its headers came. */
  encoding: string | undefined;

  constructor(maxBytes: number, sink: MessageSink) {
    this.#maxBytes = maxBytes;
    this.#sink = sink;
  }

  /** Whether a compressed message is inflating, or messages behind one wait. */
  get busy(): boolean {
    return this.#busy;
  }

  /** Whether a message was begun and not finished. */
  get partial(): boolean {
    return this.#need >= 0 || this.#available > 0;
  }

  /** Describes the unfinished message, for the error that reports it. */
  describePartial(): string {
    return this.#need >= 0
      ? `${this.#available} of ${this.#need} message bytes`
      : `${this.#available} bytes of a 5-byte message prefix`;
  }

  /**
   * Feeds a chunk. Its whole messages go to the sink now, or after the
   * compressed message before them is inflated; a refused prefix goes to
   * `onRefused`, and nothing is read after it.
   */
  push(chunk: Buffer): void {
    // the common case: exactly one whole message in the chunk, nothing waiting
    if (!this.#busy && this.#available === 0 && this.#need < 0 && chunk.length >= 5) {
      const length = chunk.readUInt32BE(1);
      if (chunk.length === length + 5) {
        const failure = this.#check(chunk[0] as number, length);
        if (failure !== undefined) this.#sink.onRefused(failure);
        else if (!this.#compressed) this.#sink.onMessage(chunk.subarray(5));
        else this.#inflate(chunk.subarray(5));
        return;
      }
    }
    this.#chunks.push(chunk);
    this.#available += chunk.length;
    if (!this.#busy) this.#drain();
  }

  /**
   * Drops what is buffered and the message inflating (its zlib stream
   * closed): nothing reaches the sink after this.
   */
  close(): void {
    this.#closed = true;
    this.#abort?.();
    this.#abort = undefined;
    this.#chunks.length = 0;
    this.#available = 0;
    this.#need = -1;
  }

  /** Hands over the whole messages buffered, up to a compressed one (inflated before any behind it). */
  #drain(): void {
    for (;;) {
      if (this.#need < 0) {
        if (this.#available < 5) return;
        const prefix = this.#take(5);
        const length = prefix.readUInt32BE(1);
        const failure = this.#check(prefix[0] as number, length);
        if (failure !== undefined) {
          this.#sink.onRefused(failure);
          return;
        }
        this.#need = length;
      }
      if (this.#available < this.#need) return;
      const message = this.#take(this.#need);
      this.#need = -1;
      if (this.#compressed) {
        this.#inflate(message);
        return;
      }
      if (!this.#sink.onMessage(message)) return;
    }
  }

  #check(flag: number, length: number): DecodeFailure | undefined {
    this.#compressed = flag === 1;
    if (flag === 1) {
      const encoding = this.encoding;
      if (encoding === undefined || encoding === 'identity') {
        return {
          code: Status.INTERNAL,
          details: `received a compressed message without a grpc-encoding to decompress it with (${encoding ?? 'none'})`,
        };
      }
      if (encoding !== 'gzip' && encoding !== 'deflate') {
        return {
          code: Status.INTERNAL,
          details: `received a message compressed with ${JSON.stringify(encoding.slice(0, 40))}, which was not offered (${ACCEPT_ENCODING})`,
        };
      }
    } else if (flag !== 0) {
      return { code: Status.INTERNAL, details: `received a message with an invalid flags byte ${flag}` };
    }
    if (length > this.#maxBytes) {
      return {
        code: Status.RESOURCE_EXHAUSTED,
        details: `received a message larger than the limit (${length} vs. ${this.#maxBytes} bytes)`,
      };
    }
    return undefined;
  }

  /** Starts inflating `message` (the encoding was checked by {@link MessageDecoder.#check}). */
  #inflate(message: Buffer): void {
    if (!this.#busy) {
      this.#busy = true;
      this.#sink.onInflating(true);
      // the sink may have ended the call
      if (this.#closed) return;
    }
    const encoding = this.encoding === 'gzip' ? 'gzip' : 'deflate';
    this.#abort = inflate(encoding, message, this.#maxBytes, (out) => this.#inflated(out));
  }

  /** The message inflated (or refused): handed over, then the messages that waited behind it. */
  #inflated(out: Buffer | DecodeFailure): void {
    this.#abort = undefined;
    if (this.#closed) return;
    if (!Buffer.isBuffer(out)) {
      this.#sink.onRefused(out);
      return;
    }
    if (!this.#sink.onMessage(out)) return;
    this.#drain();
    // idle unless the call ended or another compressed message began
    if (this.#closed || this.#abort !== undefined) return;
    this.#busy = false;
    this.#sink.onInflating(false);
  }

  #take(n: number): Buffer {
    // an empty message may come after the last buffered byte
    if (n === 0) return Buffer.alloc(0);
    this.#available -= n;
    const first = this.#chunks[0] as Buffer;
    if (first.length === n) {
      this.#chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let offset = 0;
    while (offset < n) {
      const chunk = this.#chunks[0] as Buffer;
      const k = Math.min(chunk.length, n - offset);
      chunk.copy(out, offset, 0, k);
      offset += k;
      if (k === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(k);
    }
    return out;
  }
}

/**
 * Inflates one gzip or deflate `message` on zlib's thread pool, as
 * `zlib.gunzip` would, but cut (its zlib stream closed) as soon as the
 * output passes `max` bytes (or the largest buffer Node makes, for a
 * larger or no limit), so a zip bomb is never inflated whole. `done` gets
 * the message or the failure, once, unless the returned abort ran first.
 */
function inflate(
  encoding: 'gzip' | 'deflate',
  message: Buffer,
  max: number,
  done: (out: Buffer | DecodeFailure) => void,
): () => void {
  const cap = Math.min(max, buffer.constants.MAX_LENGTH);
  const engine = encoding === 'gzip' ? zlib.createGunzip() : zlib.createInflate();
  const parts: Buffer[] = [];
  let size = 0;
  let settled = false;
  const settle = (out: Buffer | DecodeFailure): void => {
    if (settled) return;
    settled = true;
    done(out);
  };
  const failed = (err: Error): void =>
    settle({ code: Status.INTERNAL, details: `could not decompress a ${encoding} message: ${err.message}` });
  engine.on('data', (part: Buffer) => {
    size += part.length;
    if (size > cap) {
      engine.close();
      settle({
        code: Status.RESOURCE_EXHAUSTED,
        details: `received a message larger than the limit once decompressed (more than ${cap} bytes)`,
      });
      return;
    }
    parts.push(part);
  });
  engine.on('error', failed);
  engine.on('end', () => {
    let out: Buffer;
    try {
      out = Buffer.concat(parts, size);
    } catch (err) {
      // memory refused: this call fails, the process goes on
      failed(err as Error);
      return;
    }
    settle(out);
  });
  engine.end(message);
  return () => {
    settled = true;
    engine.close();
  };
}

/**
 * The gRPC code an HTTP status stands for when a response has no
 * `grpc-status` (gRPC's http-grpc-status-mapping.md): a proxy's 503 is
 * UNAVAILABLE, so it can be retried.
 */
export function codeOfHttpStatus(httpStatus: number): StatusCode {
  switch (httpStatus) {
    case 400:
    case 431:
      return Status.INTERNAL;
    case 401:
      return Status.UNAUTHENTICATED;
    case 403:
      return Status.PERMISSION_DENIED;
    case 404:
      return Status.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return Status.UNAVAILABLE;
    default:
      return Status.UNKNOWN;
  }
}

/**
 * Percent-decodes a `grpc-message`; a malformed one is kept as it came
 * (the spec: never fail on it).
 */
export function decodeGrpcMessage(raw: string): string {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    // decode what is well formed, keep the rest
    return raw.replace(/(%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run;
      }
    });
  }
}

/** The metadata of a header block, or `undefined` when grpc-js refuses it. */
export function metadataOf(headers: http2.IncomingHttpHeaders): Metadata | undefined {
  try {
    return Metadata.fromHttp2Headers(headers);
  } catch {
    return undefined;
  }
}

/**
 * The status a header block carries (trailers, or a trailers-only
 * response), or `undefined` without `grpc-status`. An invalid
 * `grpc-status` is UNKNOWN, saying what came.
 */
export function statusOfHeaders(headers: http2.IncomingHttpHeaders): StatusObject | undefined {
  const raw = headers['grpc-status'];
  if (raw === undefined) return undefined;
  const metadata = metadataOf(headers) ?? new Metadata();
  metadata.remove('grpc-status');
  metadata.remove('grpc-message');
  const text = String(raw);
  const message = headers['grpc-message'];
  const details = message === undefined ? '' : decodeGrpcMessage(String(message));
  if (!/^\d{1,2}$/.test(text) || Number(text) > 16) {
    return {
      code: Status.UNKNOWN,
      details: `invalid grpc-status ${JSON.stringify(text.slice(0, 40))}${details === '' ? '' : `: ${details}`}`,
      metadata,
    };
  }
  return { code: Number(text) as StatusCode, details, metadata };
}

/** The status of a stream the peer reset (an RST_STREAM code), for a stream that had no status. */
export function statusOfReset(rstCode: number): { code: StatusCode; details: string } {
  switch (rstCode) {
    case NGHTTP2_REFUSED_STREAM:
      return { code: Status.UNAVAILABLE, details: 'Stream refused by server' };
    case NGHTTP2_CANCEL:
      return { code: Status.CANCELLED, details: 'Call cancelled by the server (RST_STREAM CANCEL)' };
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return {
        code: Status.RESOURCE_EXHAUSTED,
        details: 'Bandwidth exhausted or memory limit exceeded (RST_STREAM ENHANCE_YOUR_CALM)',
      };
    case NGHTTP2_INADEQUATE_SECURITY:
      return {
        code: Status.PERMISSION_DENIED,
        details: 'Protocol not secure enough (RST_STREAM INADEQUATE_SECURITY)',
      };
    case NGHTTP2_NO_ERROR:
      return {
        code: Status.INTERNAL,
        details: 'Received RST_STREAM with code 0 (call ended without a gRPC status)',
      };
    default:
      return { code: Status.INTERNAL, details: `Received RST_STREAM with code ${rstCode}` };
  }
}

/**
 * Request headers the transport sets itself or HTTP/2 forbids: metadata
 * naming one is refused (the pseudo-headers cannot be metadata keys).
 */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'content-type',
  'te',
  'grpc-encoding',
  'grpc-accept-encoding',
  'grpc-status',
  'grpc-message',
  'grpc-status-details-bin',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'host',
]);
