/**
 * Request bodies of the HTTP/2 endpoint that are read from a stream.
 *
 * A plain stream body (a `Readable` or an `AsyncIterable`) is pulled one
 * chunk at a time, as fast as the HTTP/2 stream takes it (its flow-control
 * window and `write()` returning false), and can be sent once. An
 * {@link Http2Body} wraps such a source with a replay buffer, as gRPC's
 * retry design (A6) keeps a call's request messages: the first
 * `replayBytes` are held, so a retry layer can send the request again, to
 * another endpoint, while the body has not passed that size. Each attempt
 * reads from the start: the held chunks first, then the source, which one
 * attempt at a time pulls from.
 *
 * @module
 */
import type { Readable, Writable } from 'node:stream';
import { ConfigError } from '../errors.js';

/** A stream request body. */
type Chunks = AsyncIterable<Uint8Array | string>;

/** The default of `replayBytes`: 1 MiB, as gRPC's per-call retry buffer. */
const DEFAULT_REPLAY_BYTES = 1024 * 1024;

const noop = (): void => undefined;

/**
 * One attempt's read of a request body.
 *
 * @internal
 */
export interface BodyReader {
  /**
   * The next chunk; `null` at the body's end; `undefined` once this read
   * was released (the attempt is over: the body must not be ended). Rejects
   * when the source fails.
   */
  next(): Promise<Buffer | null | undefined>;
  /** Ends this attempt's read; a new attempt may then read the body again. Idempotent. */
  release(): void;
}

/** A chunk of a stream body as a Buffer (no copy for a Uint8Array). */
export function toBuffer(chunk: unknown): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(
    `a request body stream must yield Uint8Array or string chunks, got ${chunk === null ? 'null' : typeof chunk}`,
  );
}

/** Whether `value` is something a stream body can be read from. */
export function isChunkSource(value: unknown): value is Chunks {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Partial<Chunks>)[Symbol.asyncIterator] === 'function'
  );
}

/** Ends an iterator that will not be read to its end (destroys a Readable, runs a generator's `finally`). */
function stop(iterator: AsyncIterator<unknown> | undefined): void {
  if (iterator?.return === undefined) return;
  try {
    Promise.resolve(iterator.return()).then(noop, noop);
  } catch {
    // an iterator whose return() throws has nothing more to release
  }
}

/** Resolves when `stream` can take more data, or has closed. */
export function writable(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const go = (): void => {
      stream.off('drain', go);
      stream.off('close', go);
      resolve();
    };
    stream.on('drain', go);
    stream.on('close', go);
  });
}

/**
 * Writes a stream body to `stream` and ends it, one chunk at a time: the
 * next chunk is read only once `stream` took the last one (`write()`
 * returning false waits for 'drain'). Stops, without ending the stream,
 * when it closes; rejects when the body's source fails.
 */
export async function send(stream: Writable, reader: BodyReader): Promise<void> {
  try {
    while (!stream.closed && !stream.destroyed) {
      const chunk = await reader.next();
      if (chunk === undefined || stream.closed || stream.destroyed) return;
      if (chunk === null) {
        stream.end();
        return;
      }
      if (chunk.length > 0 && !stream.write(chunk)) await writable(stream);
    }
  } finally {
    reader.release();
  }
}

/**
 * A request body read from a stream with a replay buffer: the first
 * `replayBytes` (default 1 MiB) are kept, so the request can be sent again
 * (by a retry layer, to another endpoint) while it has not passed that
 * size. Past it, the held bytes are dropped and the body can be sent only
 * by the attempt that is sending it. Make one with {@link http2Body}.
 *
 * Chunks the source yields are held as they are, not copied: a source must
 * not reuse a chunk's memory after yielding it. A body that is never sent
 * to its end keeps its source open; one that passed its buffer and whose
 * attempt failed ends its source (destroys a Readable, returns a
 * generator).
 *
 * @example
 * ```ts
 * const body = http2Body(fs.createReadStream('upload.bin'));
 * const res = await stack.call({ method: 'PUT', path: '/files/upload.bin', body }, ctx);
 * // a retry layer sends it again only while isReplayable(req): body.replayable
 * ```
 */
export class Http2Body {
  readonly #replayBytes: number;
  #source: Chunks | undefined;
  #iterator: AsyncIterator<Uint8Array | string> | undefined;
  /** The chunks held for replay; `undefined` once dropped (past the buffer). */
  #chunks: Buffer[] | undefined = [];
  #held = 0;
  #bytes = 0;
  /** A chunk read past the buffer, for the attempt that reads the source. */
  #spill: Buffer | undefined;
  #overflow = false;
  #done = false;
  #failure: { readonly error: unknown } | undefined;
  #pulling: Promise<void> | undefined;
  /** The attempt that reads the source, while the body has not ended. */
  #owner: object | undefined;

  /** Use {@link http2Body}. */
  constructor(
    source: Readable | AsyncIterable<Uint8Array | string> | Buffer | string,
    options: { replayBytes?: number } = {},
  ) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('http2Body', 'options', options, 'an object');
    }
    const replay: unknown = options.replayBytes ?? DEFAULT_REPLAY_BYTES;
    if (typeof replay !== 'number' || !Number.isFinite(replay) || replay < 0) {
      throw new ConfigError('http2Body', 'replayBytes', replay, 'a finite number >= 0');
    }
    this.#replayBytes = replay;
    if (typeof source === 'string' || source instanceof Uint8Array) {
      // already in memory: held whole, whatever its size
      const chunk = toBuffer(source);
      this.#chunks = [chunk];
      this.#held = this.#bytes = chunk.length;
      this.#done = true;
    } else if (isChunkSource(source)) {
      this.#source = source;
    } else {
      throw new ConfigError(
        'http2Body',
        'source',
        source,
        'a Readable, an AsyncIterable of Uint8Array or string chunks, a Buffer or a string',
      );
    }
  }

  /**
   * Whether every byte read so far is still held, so a new attempt can
   * send the body from its start. Stays true for a body that ended within
   * the buffer; false once it passed the buffer, or its source failed.
   *
   * @example
   * ```ts
   * if (!body.replayable) throw err; // committed: cannot be sent again
   * ```
   */
  get replayable(): boolean {
    return !this.#overflow && this.#failure === undefined;
  }

  /**
   * Bytes read from the source so far.
   *
   * @example
   * ```ts
   * console.log(`sent ${body.bytes} bytes`);
   * ```
   */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Starts an attempt's read from the body's start, or returns why a new
   * attempt cannot send it (a message).
   *
   * @internal
   */
  open(): BodyReader | string {
    if (this.#overflow) {
      return `request body of ${this.#bytes} bytes passed its replay buffer (${this.#replayBytes} bytes) and cannot be sent again`;
    }
    if (this.#failure !== undefined) {
      const error = this.#failure.error;
      return `request body failed while it was read (${error instanceof Error ? error.message : String(error)}) and cannot be sent again`;
    }
    if (!this.#done && this.#owner !== undefined) {
      return `request body is being sent by another attempt (${this.#bytes} bytes read so far) and cannot be sent twice at once`;
    }
    const state = { at: 0, released: false };
    if (!this.#done) this.#owner = state;
    return {
      next: () => this.#next(state),
      release: () => {
        if (state.released) return;
        state.released = true;
        if (this.#owner !== state) return;
        this.#owner = undefined;
        if (this.#overflow && !this.#done) this.#drop();
      },
    };
  }

  async #next(state: { at: number; released: boolean }): Promise<Buffer | null | undefined> {
    for (;;) {
      if (state.released) return undefined;
      const chunks = this.#chunks;
      if (chunks !== undefined && state.at < chunks.length) return chunks[state.at++] as Buffer;
      if (this.#overflow) {
        // the reader of the source has passed the held chunks: no attempt will read them again
        this.#chunks = undefined;
        this.#held = 0;
        const spill = this.#spill;
        if (spill !== undefined) {
          this.#spill = undefined;
          return spill;
        }
      }
      if (this.#failure !== undefined) throw this.#failure.error;
      if (this.#done) return null;
      await this.#pull();
    }
  }

  /** Reads one chunk from the source; an attempt that starts while one is read shares it. */
  #pull(): Promise<void> {
    this.#pulling ??= this.#read().then(() => {
      this.#pulling = undefined;
    });
    return this.#pulling;
  }

  async #read(): Promise<void> {
    try {
      this.#iterator ??= (this.#source as Chunks)[Symbol.asyncIterator]();
      const r = await this.#iterator.next();
      if (r.done === true) {
        this.#done = true;
        return;
      }
      const chunk = toBuffer(r.value);
      this.#bytes += chunk.length;
      if (!this.#overflow && this.#held + chunk.length <= this.#replayBytes) {
        this.#chunks?.push(chunk);
        this.#held += chunk.length;
        return;
      }
      this.#overflow = true;
      this.#spill = chunk;
      // read for an attempt that has already given up: nobody can send it now
      if (this.#owner === undefined) this.#drop();
    } catch (err) {
      this.#failure = { error: err };
      this.#chunks = undefined;
      this.#spill = undefined;
      this.#held = 0;
    }
  }

  /** Past the buffer and no attempt sending it: frees what is held and ends the source. */
  #drop(): void {
    this.#chunks = undefined;
    this.#spill = undefined;
    this.#held = 0;
    stop(this.#iterator);
  }
}

/**
 * Wraps a stream in a replayable request body (see {@link Http2Body}): the
 * first `replayBytes` (default 1 MiB) are kept so the request can be sent
 * again while the body has not passed that size. A Buffer or string source
 * is held whole and is always replayable.
 *
 * @example
 * ```ts
 * import { http2Body } from '@grpc-tower/core/http2';
 * const body = http2Body(Readable.from(rows()), { replayBytes: 4 * 1024 * 1024 });
 * await stack.call({ method: 'POST', path: '/import', body }, ctx);
 * ```
 */
export function http2Body(
  source: Readable | AsyncIterable<Uint8Array | string> | Buffer | string,
  options?: { replayBytes?: number },
): Http2Body {
  return new Http2Body(source, options);
}

/** The plain stream bodies a call has started to send (they cannot be sent again). */
const sent = new WeakSet<object>();

/** Whether a plain stream body was sent, so a new attempt cannot send it. */
export function wasSent(source: object): boolean {
  return sent.has(source);
}

/**
 * Starts the one read of a plain stream body, or says why it cannot be
 * sent (a message). Released before its first chunk, it leaves the source untouched;
 * released before its end, it ends the source (as `pipeline` would).
 */
export function openStream(source: Chunks): BodyReader | string {
  if (sent.has(source)) {
    return 'request body stream was already sent once and cannot be sent again (http2Body() makes a replayable body)';
  }
  sent.add(source);
  let iterator: AsyncIterator<Uint8Array | string> | undefined;
  let released = false;
  let done = false;
  return {
    async next() {
      if (released) return undefined;
      iterator ??= source[Symbol.asyncIterator]();
      const r = await iterator.next();
      if (r.done === true) {
        done = true;
        return null;
      }
      return released ? undefined : toBuffer(r.value);
    },
    release() {
      if (released) return;
      released = true;
      if (iterator === undefined) sent.delete(source);
      else if (!done) stop(iterator);
    },
  };
}
