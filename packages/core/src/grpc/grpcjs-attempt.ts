/**
 * One call on one `GrpcEndpoint`: a grpc-js call on the endpoint's
 * channel, with the attempt itself as its listener, the request messages
 * written from the replay buffer, the response handed to the shared
 * {@link ResponseHalf}, and the stream opened again when grpc-js failed to
 * start it on a connection that was going away. The request headers it adds
 * (`grpc-timeout`, `grpc-previous-rpc-attempts`) are the native endpoint's
 * too.
 *
 * @module
 */
import { type Call, type Channel, ConnectivityState, Metadata, type StatusObject } from './grpc-js.js';
import { type CallContext, noteCall } from '../context/index.js';
import { ClosedError, GrpcTowerError } from '../errors.js';
import { Status, type StatusCode } from '../status.js';
import { grpcJsDelivery } from './grpcjs-wording.js';
import type { MessageReader } from './messages.js';
import { ResponseHalf, type ResponseWire } from './response.js';
import type { GrpcRequest, GrpcResponse } from './types.js';

/** gRPC A6's request header: how many attempts of this call came before. */
export const PREVIOUS_ATTEMPTS_HEADER = 'grpc-previous-rpc-attempts';

/** How many times one attempt re-opens a stream that grpc-js failed to start. */
const MAX_RESTARTS = 3;

/** The `grpc-timeout` header value for `ms` milliseconds (gRPC over HTTP/2: at most 8 digits). */
export function timeoutHeader(ms: number): string {
  const t = Math.max(0, Math.ceil(ms));
  if (t < 1e8) return `${t}m`;
  if (t < 1e11) return `${Math.ceil(t / 1_000)}S`;
  if (t < 6e12) return `${Math.ceil(t / 60_000)}M`;
  return `${Math.min(99_999_999, Math.ceil(t / 3_600_000))}H`;
}

/**
 * One call on one grpc-js endpoint: its grpc-js call, and that call's
 * listener.
 *
 * @internal
 */
export class Attempt implements ResponseWire {
  readonly #address: string;
  readonly #req: GrpcRequest;
  readonly #ctx: CallContext;
  readonly #onFinished: (a: Attempt) => void;
  /** The response side: headers, messages, commit, the consumer. */
  readonly #res: ResponseHalf;
  #channel: Channel | undefined;
  #inner: Call | undefined;
  #reader: MessageReader | undefined;
  #offAbort: (() => void) | undefined;
  #innerReadOutstanding = false;
  #writing = false;
  #halfClosed = false;
  #restarts = 0;

  constructor(
    address: string,
    req: GrpcRequest,
    ctx: CallContext,
    resolve: (res: GrpcResponse) => void,
    reject: (err: unknown) => void,
    onFinished: (a: Attempt) => void,
  ) {
    this.#address = address;
    this.#req = req;
    this.#ctx = ctx;
    this.#onFinished = onFinished;
    this.#res = new ResponseHalf(address, req, ctx, resolve, reject, this);
  }

  /** The grpc-js channel the attempt runs on, once begun. */
  get channel(): Channel | undefined {
    return this.#channel;
  }

  begin(channel: Channel): void {
    this.#channel = channel;
    if (!this.#open()) return;
    this.#offAbort = this.#ctx.onAbort(() => this.#onAbort());
  }

  /** Opens the grpc-js call and starts sending; false when the request can no longer be replayed. */
  #open(): boolean {
    const channel = this.#channel as Channel;
    let reader: MessageReader;
    try {
      reader = this.#req.messages.reader();
    } catch (err) {
      this.#fail(
        new ClosedError('request messages can no longer be replayed', {
          endpoint: this.#address,
          cause: err,
        }),
      );
      return false;
    }
    this.#reader = reader;
    // the one copy of the metadata this attempt sends
    const metadata = this.#req.metadata.clone();
    const deadline = this.#ctx.deadline;
    if (deadline !== Number.POSITIVE_INFINITY)
      metadata.set('grpc-timeout', timeoutHeader(deadline - Date.now()));
    if (this.#req.attempt > 0) metadata.set(PREVIOUS_ATTEMPTS_HEADER, String(this.#req.attempt));
    const inner = channel.createCall(this.#req.method, Number.POSITIVE_INFINITY, this.#req.host, null, 0);
    this.#inner = inner;
    if (this.#req.credentials !== undefined) inner.setCredentials(this.#req.credentials);
    noteCall(
      this.#ctx,
      channel.getConnectivityState(false) === ConnectivityState.READY ? 'in-flight' : 'connecting',
      this.#address,
    );
    // the attempt is the grpc-js listener (no closures per call)
    inner.start(metadata, this);
    this.#innerReadOutstanding = true;
    inner.startRead();
    reader.onAvailable(() => this.#pump());
    this.#pump();
    return true;
  }

  #fail(err: unknown): void {
    const status = { code: Status.UNAVAILABLE, details: String(err), metadata: new Metadata() };
    this.#onFinished(this);
    this.#res.onStatus(status, undefined, err);
  }

  #pump(): void {
    const inner = this.#inner;
    const reader = this.#reader;
    if (inner === undefined || reader === undefined) return;
    // One message at a time (its write callback is the caller's
    // backpressure), but the half-close goes out right behind the last
    // message: waiting for that write to finish would cost a unary call an
    // extra HTTP/2 frame and event-loop turn.
    while (!this.#halfClosed && this.#res.status === undefined) {
      if (this.#writing) {
        if (!reader.endsAfterCurrent()) return;
        this.#halfClosed = true;
        inner.halfClose();
        return;
      }
      const next = reader.next();
      if (next.kind === 'pending') return;
      if (next.kind === 'end') {
        this.#halfClosed = true;
        inner.halfClose();
        return;
      }
      this.#writing = true;
      const callback = writtenCallback(this, inner, next.index);
      const flags = next.message.flags;
      inner.sendMessageWithContext(
        flags === undefined ? { callback } : { callback, flags },
        next.message.data,
      );
    }
  }

  /** @internal grpc-js wrote message `index` of `inner`'s stream. */
  written(inner: Call, index: number): void {
    if (this.#inner !== inner) return; // a restarted stream's late callback
    this.#writing = false;
    this.#reader?.written(index);
    this.#pump();
  }

  #onAbort(): void {
    if (this.#res.status !== undefined) return;
    const reason = this.#ctx.reason();
    const code = reason instanceof GrpcTowerError ? reason.code : Status.CANCELLED;
    this.#inner?.cancelWithStatus(code, reason.message);
  }

  // grpc-js's listener of the inner call. A restarted attempt's earlier
  // call has ended (its status is what restarted it) and says no more.

  /** @internal */
  onReceiveMetadata(md: Metadata): void {
    this.#res.onHeaders(md);
  }

  /** @internal */
  onReceiveMessage(msg: Buffer): void {
    this.#innerReadOutstanding = false;
    // a response held until its status keeps draining
    if (this.#res.onMessage(msg)) this.more();
  }

  /**
   * Whether the attempt opens its stream again, after grpc-js failed to
   * open it on a connection that was going away (`restart`, see
   * {@link grpcJsDelivery}): the call never left the client, so it is
   * opened again at once (grpc-js did this itself with its retries on).
   */
  #restart(restart: boolean): boolean {
    if (
      !restart ||
      this.#res.committed ||
      this.#res.headers !== undefined ||
      this.#restarts >= MAX_RESTARTS ||
      this.#ctx.aborted
    ) {
      return false;
    }
    this.#restarts++;
    this.#reader?.close();
    this.#reader = undefined;
    this.#inner = undefined;
    this.#writing = false;
    this.#halfClosed = false;
    this.#res.reset();
    if (!this.#open()) {
      this.#offAbort?.();
      return true;
    }
    return true;
  }

  /** @internal */
  onReceiveStatus(status: StatusObject): void {
    if (this.#res.status !== undefined) return;
    // a status without a response is grpc-js's own: its words say how far the attempt got
    const made =
      status.code === Status.OK || this.#res.responded(status) ? undefined : grpcJsDelivery(status.details);
    if (this.#restart(made?.restart === true)) return;
    this.#offAbort?.();
    this.#offAbort = undefined;
    this.#reader?.close();
    this.#onFinished(this);
    this.#res.onStatus(status, made?.delivery);
  }

  // what the response side asks of the grpc-js call

  /** @internal */
  more(): void {
    if (this.#innerReadOutstanding) return;
    this.#innerReadOutstanding = true;
    this.#inner?.startRead();
  }

  /** @internal grpc-js hands over one message per read: nothing to hold. */
  hold(): void {}

  /** @internal */
  cancel(code: StatusCode, details: string): void {
    if (this.#res.status !== undefined) return;
    if (this.#inner === undefined) {
      this.#fail(new GrpcTowerError(code, details, { endpoint: this.#address }));
      return;
    }
    this.#inner.cancelWithStatus(code, details);
  }

  get settled(): boolean {
    return this.#res.settled;
  }
}

/**
 * The callback grpc-js runs once message `index` of `inner` is written
 * (grpc-js may call it detached from its context object, so it is a closure).
 */
function writtenCallback(attempt: Attempt, inner: Call, index: number): () => void {
  return () => attempt.written(inner, index);
}
