/**
 * The response side of one attempt, shared by both gRPC endpoints (the
 * grpc-js one and the native one): it holds the response headers and
 * messages, commits the attempt at its commit point (gRPC A6) with the
 * `GrpcResponse` the layers get, rejects a failure with the named error,
 * and hands a committed stream's messages to its consumer one per read.
 * What differs between the transports (asking the wire for more, holding
 * it back, cancelling) comes in as {@link ResponseWire}.
 *
 * @internal
 * @module
 */
import { type CallContext, noteCall } from '../context/index.js';
import type { Delivery } from '../errors.js';
import { Status, type StatusCode } from '../status.js';
import { Metadata, type StatusObject } from './grpc-js.js';
import {
  type CallKind,
  type GrpcRequest,
  type GrpcResponse,
  GrpcStatusError,
  type ResponseListener,
  type ResponseStream,
  type UnaryResult,
} from './types.js';

/** Where an attempt commits: at its status, at its headers, or decided by the request stream. */
export type CommitAt = 'status' | 'headers' | 'auto';

/** The commit point of a method of `kind` (see the module documentation). */
export const commitPoint = (kind: CallKind | undefined): CommitAt => {
  if (kind === 'unary' || kind === 'clientStream') return 'status';
  if (kind === 'serverStream' || kind === 'bidi') return 'headers';
  return 'auto';
};

/** What a transport does for its {@link ResponseHalf}. */
export interface ResponseWire {
  /** The consumer wants a message and none is queued: read one more from the wire. */
  more(): void;
  /** Messages are queued that nobody asked for yet: stop reading from the wire. */
  hold(): void;
  /** The consumer of a committed stream cancels the call. */
  cancel(code: StatusCode, details: string): void;
}

/** The response side of one attempt (see the module documentation). */
export class ResponseHalf implements ResponseStream {
  readonly #address: string;
  readonly #req: GrpcRequest;
  readonly #ctx: CallContext;
  readonly #resolve: (res: GrpcResponse) => void;
  readonly #reject: (err: unknown) => void;
  readonly #wire: ResponseWire;
  readonly commitAt: CommitAt;
  /** The response headers, once they came. */
  headers: Metadata | undefined;
  /** Messages received and not yet handed over. */
  readonly queue: Buffer[] = [];
  /** The final status, once known. */
  status: StatusObject | undefined;
  /** Whether the attempt committed. */
  committed = false;
  /** Whether the attempt's promise settled (committed or rejected). */
  settled = false;
  /** Bytes of response messages received. */
  receivedBytes = 0;
  #statusDelivered = false;
  #consumer: ResponseListener | undefined;
  #consumerReads = 0;
  #resolveDone: ((s: StatusObject) => void) | undefined;
  #done: Promise<StatusObject> | undefined;

  constructor(
    address: string,
    req: GrpcRequest,
    ctx: CallContext,
    resolve: (res: GrpcResponse) => void,
    reject: (err: unknown) => void,
    wire: ResponseWire,
  ) {
    this.#address = address;
    this.#req = req;
    this.#ctx = ctx;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#wire = wire;
    this.commitAt = commitPoint(req.kind);
  }

  /** Takes the response headers; commits there when the commit point says so. */
  onHeaders(headers: Metadata): void {
    this.headers = headers;
    if (this.committed) return;
    if (this.commitAt === 'headers' || (this.commitAt === 'auto' && !this.#req.messages.ended)) this.commit();
  }

  /**
   * Takes one message: held while the attempt waits for its status,
   * committing the attempt at its first message otherwise, handed to the
   * consumer once committed. Returns whether the response waits for its
   * status (the wire should keep reading).
   */
  onMessage(message: Buffer): boolean {
    this.receivedBytes += message.length;
    this.queue.push(message);
    if (!this.committed) {
      if (this.commitAt === 'status') return true;
      this.commit();
      return false;
    }
    this.deliver();
    return false;
  }

  /**
   * Takes the final status: commits an OK response not committed yet,
   * rejects a failed one with `error` when given (a local failure), else
   * the call's abort reason or a {@link GrpcStatusError}, or ends a
   * committed stream after its messages.
   */
  onStatus(status: StatusObject, delivery?: Delivery, error?: unknown): void {
    this.status = status;
    this.#resolveDone?.(status);
    if (this.committed) {
      this.deliver();
      return;
    }
    if (status.code === Status.OK && error === undefined) {
      this.commit();
      return;
    }
    this.settled = true;
    if (error !== undefined) {
      this.#reject(error);
      return;
    }
    if (this.#ctx.aborted) {
      this.#reject(this.#ctx.reason());
      return;
    }
    noteCall(this.#ctx, 'endpoint');
    const serverResponded = this.responded(status);
    this.#reject(
      new GrpcStatusError(status, {
        endpoint: this.#address,
        serverResponded,
        ...(delivery === undefined ? {} : { delivery }),
      }),
    );
  }

  /**
   * Whether the server answered the attempt that ended with `status`: its
   * response headers came, or `status` is a trailers-only response.
   */
  responded(status: StatusObject): boolean {
    return this.headers !== undefined || status.metadata.get('content-type').length > 0;
  }

  /** Forgets what a failed stream received, before the attempt opens another. */
  reset(): void {
    this.headers = undefined;
    this.queue.length = 0;
    this.receivedBytes = 0;
  }

  /** Commits the attempt: a complete response as a value, a stream as itself. */
  commit(): void {
    this.committed = true;
    this.settled = true;
    this.#req.messages.commit();
    const headers = this.headers ?? new Metadata();
    const status = this.status;
    if (status !== undefined) {
      // the whole response is here: hand it over as a value
      this.#resolve(new CompleteResponse(this.#address, headers, { messages: this.queue, status }));
      return;
    }
    noteCall(this.#ctx, 'response', this.#address);
    const half = this;
    this.#resolve({
      endpoint: this.#address,
      headers,
      stream: this,
      done: this.done,
      get receivedBytes() {
        return half.receivedBytes;
      },
    });
  }

  /** Settles with the final status. */
  get done(): Promise<StatusObject> {
    if (this.#done === undefined) {
      const status = this.status;
      this.#done =
        status === undefined
          ? new Promise((r) => {
              this.#resolveDone = r;
            })
          : Promise.resolve(status);
    }
    return this.#done;
  }

  /** Hands queued messages to the consumer, one per read, then the status. */
  deliver(): void {
    const consumer = this.#consumer;
    if (consumer !== undefined) {
      while (this.#consumerReads > 0 && this.queue.length > 0) {
        this.#consumerReads--;
        consumer.onMessage(this.queue.shift() as Buffer);
      }
    }
    if (this.queue.length > 0) {
      this.#wire.hold();
      return;
    }
    if (this.status !== undefined) {
      if (consumer !== undefined && !this.#statusDelivered) {
        this.#statusDelivered = true;
        consumer.onStatus(this.status);
      }
    } else if (this.#consumerReads > 0) {
      this.#wire.more();
    }
  }

  // ResponseStream, used once committed

  start(listener: ResponseListener): void {
    this.#consumer = listener;
    this.deliver();
  }

  read(): void {
    this.#consumerReads++;
    this.deliver();
  }

  cancel(code: StatusCode, details: string): void {
    if (this.status !== undefined) return;
    this.#wire.cancel(code, details);
  }
}

/**
 * A response that committed at its status: the messages and the status as
 * a value. Its `stream` and `done`, for consumers that read every response
 * the same way, are built only when asked for.
 */
export class CompleteResponse implements GrpcResponse {
  readonly endpoint: string;
  readonly headers: Metadata;
  readonly unary: UnaryResult;
  #stream: ResponseStream | undefined;
  #done: Promise<StatusObject> | undefined;

  constructor(endpoint: string, headers: Metadata, unary: UnaryResult) {
    this.endpoint = endpoint;
    this.headers = headers;
    this.unary = unary;
  }

  get stream(): ResponseStream {
    this.#stream ??= replayStream(this.unary);
    return this.#stream;
  }

  get done(): Promise<StatusObject> {
    this.#done ??= Promise.resolve(this.unary.status);
    return this.#done;
  }

  get receivedBytes(): number {
    let bytes = 0;
    for (const m of this.unary.messages) bytes += m.length;
    return bytes;
  }
}

/** A {@link ResponseStream} over a complete response (flow control kept: one message per read). */
function replayStream(unary: UnaryResult): ResponseStream {
  let listener: ResponseListener | undefined;
  let reads = 0;
  let next = 0;
  let ended = false;
  const deliver = (): void => {
    if (listener === undefined || ended) return;
    while (reads > 0 && next < unary.messages.length) {
      reads--;
      listener.onMessage(unary.messages[next++] as Buffer);
    }
    if (next >= unary.messages.length && !ended) {
      ended = true;
      listener.onStatus(unary.status);
    }
  };
  return {
    start(l) {
      listener = l;
      deliver();
    },
    read() {
      reads++;
      deliver();
    },
    cancel() {
      // complete already: nothing runs on the server
    },
  };
}
