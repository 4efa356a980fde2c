/**
 * The request messages of one call, kept so that a call can be re-sent to
 * another endpoint before it commits (gRPC A6 "replay buffer"). The channel
 * writes into it as the client sends; each attempt reads it from the start.
 *
 * Messages are retained while the call may still be retried. Once the
 * retained bytes pass the per-call limit, or the channel-wide budget is
 * spent, the buffer stops being replayable: it keeps only what the current
 * attempt has not sent yet, and retry layers see `replayable === false`.
 *
 * @module
 */
import { ConfigError } from '../errors.js';

/** A callback that grpc-js gives with each written message (backpressure). */
export type WriteCallback = (error?: Error | null) => void;

/** One request message with its write flags. */
export interface RequestMessage {
  readonly data: Buffer;
  readonly flags: number | undefined;
}

/**
 * The channel-wide byte budget shared by the replay buffers of all calls.
 *
 * @example
 * ```ts
 * const budget = new ReplayBudget(16 * 1024 * 1024);
 * ```
 */
export class ReplayBudget {
  readonly limit: number;
  #used = 0;

  constructor(limit: number) {
    if (!Number.isFinite(limit) || limit < 0) {
      throw new ConfigError('createChannel', 'replay.perChannelBytes', limit, 'a finite number >= 0');
    }
    this.limit = limit;
  }

  /** Bytes currently retained by all calls. */
  get used(): number {
    return this.#used;
  }

  /** @internal */
  tryReserve(bytes: number): boolean {
    if (this.#used + bytes > this.limit) return false;
    this.#used += bytes;
    return true;
  }

  /** @internal */
  release(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes);
  }
}

/**
 * What a reader gets from {@link MessageReader.next}: a message, the end of
 * the request stream, or nothing yet.
 */
export type ReadResult =
  | { readonly kind: 'message'; readonly index: number; readonly message: RequestMessage }
  | { readonly kind: 'end' }
  | { readonly kind: 'pending' };

/**
 * One attempt's cursor over the request messages.
 *
 * @example
 * ```ts
 * const reader = req.messages.reader();
 * reader.onAvailable(() => pump());
 * ```
 */
export interface MessageReader {
  /** The next message, the end, or `pending` when the writer has not sent more yet. */
  next(): ReadResult;
  /** Whether every message was read and the writer half-closed: only the end is left. */
  endsAfterCurrent(): boolean;
  /** Registers the callback run when a message or the end arrives; one at a time. */
  onAvailable(callback: (() => void) | undefined): void;
  /** Tells the buffer that the attempt wrote message `index` to the network. */
  written(index: number): void;
  /** Detaches the reader. */
  close(): void;
}

interface Slot {
  message: RequestMessage | undefined; // undefined once released
  bytes: number;
  callback: WriteCallback | undefined;
}

/**
 * The replayable request stream of one call.
 *
 * @example
 * ```ts
 * const messages = new RequestMessages({ perCallBytes: 1 << 20, budget });
 * messages.push(Buffer.from('hi'));
 * messages.end();
 * ```
 */
export class RequestMessages {
  readonly #perCallBytes: number;
  readonly #budget: ReplayBudget | undefined;
  readonly #slots: Slot[] = [];
  #ended = false;
  #replayable = true;
  #retained = 0;
  #bytes = 0;
  #readers = new Set<Reader>();
  #disposed = false;

  constructor(options: { perCallBytes?: number; budget?: ReplayBudget } = {}) {
    this.#perCallBytes = options.perCallBytes ?? 1024 * 1024;
    this.#budget = options.budget;
  }

  /** Builds a finished stream from a list of messages (for tests and non-channel callers). */
  static of(...messages: Buffer[]): RequestMessages {
    const m = new RequestMessages({ perCallBytes: Number.POSITIVE_INFINITY });
    for (const data of messages) m.push(data);
    m.end();
    return m;
  }

  /** Whether every message is still held, so a new attempt can replay the call. */
  get replayable(): boolean {
    return this.#replayable;
  }

  /** Whether the writer half-closed the request stream. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Messages written so far. */
  get count(): number {
    return this.#slots.length;
  }

  /** Bytes of every message written so far (serialized, before compression). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes currently retained for replay. */
  get retainedBytes(): number {
    return this.#retained;
  }

  /** Appends a message; `callback` runs once an attempt has written it. */
  push(data: Buffer, flags?: number, callback?: WriteCallback): void {
    if (this.#ended || this.#disposed) {
      callback?.(new Error('write after the request stream ended'));
      return;
    }
    const bytes = data.length;
    this.#bytes += bytes;
    this.#slots.push({ message: { data, flags }, bytes, callback });
    if (this.#replayable) {
      if (this.#retained + bytes <= this.#perCallBytes && (this.#budget?.tryReserve(bytes) ?? true)) {
        this.#retained += bytes;
      } else {
        this.#stopReplay();
        this.#slots[this.#slots.length - 1]!.bytes = 0;
      }
    } else {
      this.#slots[this.#slots.length - 1]!.bytes = 0;
    }
    this.#notify();
  }

  /** Half-closes the request stream. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#notify();
  }

  /**
   * The call committed: no attempt will start again, so retained messages
   * that the live readers have passed can go.
   */
  commit(): void {
    this.#stopReplay();
  }

  /** A new cursor from the first message. Throws when the buffer is no longer replayable and messages were dropped. */
  reader(): MessageReader {
    if (!this.#replayable && this.#slots.some((s) => s.message === undefined)) {
      throw new Error('request messages are no longer replayable');
    }
    const reader = new Reader(this);
    this.#readers.add(reader);
    return reader;
  }

  /** Releases every retained message and runs any write callback still waiting. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#stopReplay();
    for (const slot of this.#slots) {
      slot.message = undefined;
      const cb = slot.callback;
      slot.callback = undefined;
      cb?.();
    }
    this.#readers.clear();
  }

  /** @internal */
  slotAt(index: number): Slot | undefined {
    return this.#slots[index];
  }

  /** @internal */
  markWritten(index: number): void {
    const slot = this.#slots[index];
    if (slot === undefined) return;
    const cb = slot.callback;
    slot.callback = undefined;
    cb?.();
    if (!this.#replayable) this.#releaseBehindReaders();
  }

  /** @internal */
  detach(reader: Reader): void {
    this.#readers.delete(reader);
  }

  #stopReplay(): void {
    if (this.#replayable) {
      this.#replayable = false;
      this.#budget?.release(this.#retained);
      this.#retained = 0;
      for (const slot of this.#slots) slot.bytes = 0;
    }
    this.#releaseBehindReaders();
  }

  #releaseBehindReaders(): void {
    // With no reader attached (between attempts, or before the first), keep
    // everything: the next reader starts from what is still held.
    if (this.#readers.size === 0) return;
    let min = this.#slots.length;
    for (const r of this.#readers) min = Math.min(min, r.position);
    for (let i = 0; i < min; i++) {
      const slot = this.#slots[i]!;
      if (slot.callback === undefined) slot.message = undefined;
    }
  }

  #notify(): void {
    // a copy only when a wake-up could change the set under the loop
    if (this.#readers.size === 1) {
      for (const r of this.#readers) r.wake();
      return;
    }
    for (const r of [...this.#readers]) r.wake();
  }

  /** @internal */
  get isEnded(): boolean {
    return this.#ended;
  }
}

class Reader implements MessageReader {
  position = 0;
  #callback: (() => void) | undefined;
  #closed = false;
  readonly #owner: RequestMessages;

  constructor(owner: RequestMessages) {
    this.#owner = owner;
  }

  next(): ReadResult {
    if (this.#closed) return { kind: 'end' };
    const slot = this.#owner.slotAt(this.position);
    if (slot !== undefined) {
      const message = slot.message;
      if (message === undefined) {
        throw new Error(`request message ${this.position} was released before it was sent`);
      }
      const index = this.position++;
      return { kind: 'message', index, message };
    }
    return this.#owner.isEnded ? { kind: 'end' } : { kind: 'pending' };
  }

  endsAfterCurrent(): boolean {
    return !this.#closed && this.#owner.isEnded && this.#owner.slotAt(this.position) === undefined;
  }

  onAvailable(callback: (() => void) | undefined): void {
    this.#callback = callback;
  }

  written(index: number): void {
    this.#owner.markWritten(index);
  }

  wake(): void {
    this.#callback?.();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#callback = undefined;
    this.#owner.detach(this);
  }
}
