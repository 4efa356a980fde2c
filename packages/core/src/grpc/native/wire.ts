/**
 * gRPC over HTTP/2 as the wire has it (gRPC's PROTOCOL-HTTP2.md): the
 * 5-byte message prefix, the response statuses of a header block, the
 * codes an HTTP status or an RST_STREAM stands for, and the request
 * headers a caller's metadata must not set.
 *
 * @internal
 * @module
 */
import * as http2 from 'node:http2';
import * as buffer from 'node:buffer';
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

/**
 * Splits the DATA of a response into messages, across and within frames,
 * checks each prefix (the compressed flag against the response's
 * `grpc-encoding`, the receive limit) and decompresses gzip and deflate
 * messages, the decompressed size held to the same limit.
 */
export class MessageDecoder {
  readonly #maxBytes: number;
  readonly #chunks: Buffer[] = [];
  #available = 0;
  /** The length of the message being read, or -1 between messages. */
  #need = -1;
  /** Whether the message being read is compressed. */
  #compressed = false;
  /** The response's `grpc-encoding`, once its headers came. */
  encoding: string | undefined;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
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
   * Feeds a chunk; `onMessage` gets each whole message. Returns a failure
   * (and reads no further) when a prefix is refused.
   */
  push(chunk: Buffer, onMessage: (message: Buffer) => boolean): DecodeFailure | undefined {
    // the common case: exactly one whole message in the chunk
    if (this.#available === 0 && this.#need < 0 && chunk.length >= 5) {
      const length = chunk.readUInt32BE(1);
      if (chunk.length === length + 5) {
        const failure = this.#check(chunk[0] as number, length);
        if (failure !== undefined) return failure;
        if (!this.#compressed) {
          onMessage(chunk.subarray(5));
          return undefined;
        }
        const inflated = this.#decompress(chunk.subarray(5));
        if (!Buffer.isBuffer(inflated)) return inflated;
        onMessage(inflated);
        return undefined;
      }
    }
    this.#chunks.push(chunk);
    this.#available += chunk.length;
    for (;;) {
      if (this.#need < 0) {
        if (this.#available < 5) return undefined;
        const prefix = this.#take(5);
        const length = prefix.readUInt32BE(1);
        const failure = this.#check(prefix[0] as number, length);
        if (failure !== undefined) return failure;
        this.#need = length;
      }
      if (this.#available < this.#need) return undefined;
      let message = this.#take(this.#need);
      this.#need = -1;
      if (this.#compressed) {
        const inflated = this.#decompress(message);
        if (!Buffer.isBuffer(inflated)) return inflated;
        message = inflated;
      }
      if (!onMessage(message)) return undefined;
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

  /** The message decompressed, at most the receive limit long. */
  #decompress(message: Buffer): Buffer | DecodeFailure {
    const max = this.#maxBytes;
    try {
      // one byte past the limit tells "too large" from "exactly the limit"
      const options = { maxOutputLength: Math.min(max + 1, buffer.constants.MAX_LENGTH) };
      const out =
        this.encoding === 'gzip' ? zlib.gunzipSync(message, options) : zlib.inflateSync(message, options);
      if (out.length > max) throw new RangeError('too large');
      return out;
    } catch (err) {
      if (err instanceof RangeError || (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        return {
          code: Status.RESOURCE_EXHAUSTED,
          details: `received a message larger than the limit once decompressed (more than ${max} bytes)`,
        };
      }
      return {
        code: Status.INTERNAL,
        details: `could not decompress a ${this.encoding} message: ${(err as Error).message}`,
      };
    }
  }

  #take(n: number): Buffer {
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
