/**
 * One client call of a {@link TowerChannel} (`TowerCall`): grpc-js's
 * low-level `Call`, driven through the stack. It refuses
 * connection-specific metadata, owns the call's deadline through its
 * {@link CallControl}, builds the {@link GrpcRequest}, hands the response
 * to grpc-js's listener (a complete one at once, a stream as it is read)
 * and turns a failure into the status grpc-js delivers.
 *
 * @internal
 * @module
 */
import type { TowerChannel } from './channel.js';
import { type CallContext, CallControl, ownedContext } from '../context/index.js';
import { CancelledError, DeadlineExceededError, GrpcTowerError, toGrpcTowerError } from '../errors.js';
import { Status, type StatusCode } from '../status.js';
import {
  type Call,
  type CallCredentials,
  type InterceptingListener,
  type MessageContext,
  Metadata,
  type ServerSurfaceCall,
  type StatusObject,
} from './grpc-js.js';
import type { RequestMessages } from './messages.js';
import {
  type CallKind,
  ENDPOINT_METADATA_KEY,
  GrpcStatusError,
  type GrpcRequest,
  type GrpcResponse,
  type UnaryResult,
} from './types.js';

/** The number of the last call made in this process (`getCallNumber`). */
let callNumber = 0;

/**
 * Connection-specific HTTP/2 header fields (RFC 9113, 8.2.2). A request
 * carrying one is malformed; grpc-js re-sends such a call in a loop until
 * its deadline, so the channel refuses it at once.
 */
const CONNECTION_HEADERS = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];

/** What the channel makes a {@link TowerCall} with. */
export interface TowerCallInit {
  channel: TowerChannel;
  call: (req: GrpcRequest, ctx: CallContext) => Promise<GrpcResponse>;
  method: string;
  kind: CallKind | undefined;
  deadline: number;
  host: string | undefined;
  target: string;
  messages: RequestMessages;
  /** Set when the channel is closing or closed: the call fails at start with this. */
  refusal: string | undefined;
}

/** One client call: grpc-js's low-level `Call`, driven through the stack. */
export class TowerCall implements Call {
  readonly #init: TowerCallInit;
  readonly #number = ++callNumber;
  readonly #control: CallControl;
  #credentials: CallCredentials | undefined;
  #listener: InterceptingListener | undefined;
  #response: GrpcResponse | undefined;
  /** A complete response being handed over, and how many of its messages went. */
  #unary: UnaryResult | undefined;
  #unaryNext = 0;
  #pendingReads = 0;
  #finished = false;
  #parentCleanup: (() => void) | undefined;
  #peer: string;

  constructor(init: TowerCallInit) {
    this.#init = init;
    this.#peer = init.target;
    this.#control = new CallControl(init.deadline, (err) => this.#fail(err));
  }

  followParent(parent: NonNullable<ServerSurfaceCall>): void {
    const onCancel = (): void => this.cancelWithStatus(Status.CANCELLED, 'Cancelled by parent call');
    parent.on('cancelled', onCancel);
    this.#parentCleanup = () => parent.removeListener('cancelled', onCancel);
  }

  getCallNumber(): number {
    return this.#number;
  }

  getPeer(): string {
    return this.#peer;
  }

  getAuthContext(): null {
    return null;
  }

  setCredentials(credentials: CallCredentials): void {
    this.#credentials = credentials;
  }

  start(metadata: Metadata, listener: InterceptingListener): void {
    this.#listener = listener;
    const init = this.#init;
    if (init.refusal !== undefined) {
      this.#finish({ code: Status.UNAVAILABLE, details: init.refusal, metadata: new Metadata() });
      return;
    }
    // one pass over what is set (metadata.get() would normalise and check each key)
    const present = metadata.toJSON();
    const header = CONNECTION_HEADERS.find((key) => (present[key]?.length ?? 0) > 0);
    if (header !== undefined) {
      this.#finish({
        code: Status.INTERNAL,
        details: `metadata "${header}" is a connection-specific HTTP/2 header and cannot be sent on a gRPC call`,
        metadata: new Metadata(),
      });
      return;
    }
    init.channel.track(this, true);
    const started = Date.now();
    const ctx = ownedContext(this.#control);
    const req: GrpcRequest = {
      method: init.method,
      kind: init.kind,
      metadata,
      messages: init.messages,
      host: init.host,
      credentials: this.#credentials,
      attempt: 0,
    };
    let promise: Promise<GrpcResponse>;
    try {
      promise = Promise.resolve(init.call(req, ctx));
    } catch (err) {
      promise = Promise.reject(err);
    }
    // armed once the layers that lower the deadline synchronously (the timeout layer) have
    if (!this.#finished) this.#control.start(started);
    promise.then(
      (res) => this.#committed(res),
      (err: unknown) => this.#fail(err),
    );
  }

  #committed(res: GrpcResponse): void {
    const unary = res?.unary;
    if (unary === undefined && typeof res?.stream?.start !== 'function') {
      this.#fail(
        new GrpcTowerError(Status.INTERNAL, `the stack for ${this.#init.target} returned no response`),
      );
      return;
    }
    if (this.#finished) {
      if (unary === undefined) res.stream.cancel(Status.CANCELLED, 'call already ended');
      return;
    }
    this.#response = res;
    this.#peer = res.endpoint;
    this.#listener?.onReceiveMetadata(res.headers);
    if (unary !== undefined) {
      this.#unary = unary;
      this.#handOver();
      return;
    }
    res.stream.start({
      onMessage: (msg) => {
        if (!this.#finished) this.#listener?.onReceiveMessage(msg);
      },
      onStatus: (status) => {
        if (status.code !== Status.OK && !status.metadata.get(ENDPOINT_METADATA_KEY).length) {
          status = { ...status, metadata: status.metadata.clone() };
          status.metadata.set(ENDPOINT_METADATA_KEY, res.endpoint);
        }
        this.#finish(status);
      },
    });
    while (this.#pendingReads > 0) {
      this.#pendingReads--;
      res.stream.read();
    }
  }

  /** Gives a complete response to the client: a message per read, then the status. */
  #handOver(): void {
    const unary = this.#unary as UnaryResult;
    const messages = unary.messages;
    while (this.#pendingReads > 0 && this.#unaryNext < messages.length && !this.#finished) {
      this.#pendingReads--;
      this.#listener?.onReceiveMessage(messages[this.#unaryNext++] as Buffer);
    }
    if (this.#unaryNext >= messages.length) this.#finish(unary.status);
  }

  #fail(err: unknown): void {
    if (this.#finished) return;
    let e: GrpcTowerError = toGrpcTowerError(err);
    const reason = this.#control.reason;
    if (e instanceof CancelledError && reason !== undefined) e = toGrpcTowerError(reason);
    const metadata = e instanceof GrpcStatusError ? e.metadata.clone() : new Metadata();
    if (e.endpoint !== undefined && metadata.get(ENDPOINT_METADATA_KEY).length === 0) {
      metadata.set(ENDPOINT_METADATA_KEY, e.endpoint);
    }
    const details = e instanceof GrpcStatusError ? e.details : e.message;
    this.#finish({ code: e.code, details, metadata });
  }

  #finish(status: StatusObject): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#control.dispose();
    this.#parentCleanup?.();
    this.#parentCleanup = undefined;
    this.#init.messages.dispose();
    this.#init.channel.track(this, false);
    this.#listener?.onReceiveStatus(status);
  }

  sendMessageWithContext(context: MessageContext, message: Buffer): void {
    if (this.#finished) {
      context.callback?.();
      return;
    }
    this.#init.messages.push(message, context.flags, context.callback);
  }

  halfClose(): void {
    this.#init.messages.end();
  }

  startRead(): void {
    if (this.#finished) return;
    const res = this.#response;
    if (res === undefined) this.#pendingReads++;
    else if (this.#unary !== undefined) {
      this.#pendingReads++;
      this.#handOver();
    } else res.stream.read();
  }

  cancelWithStatus(status: number, details: string): void {
    if (this.#finished) return;
    const code = status as StatusCode;
    this.endWith(
      code === Status.DEADLINE_EXCEEDED
        ? new DeadlineExceededError(details)
        : code === Status.CANCELLED
          ? new CancelledError(details)
          : new GrpcTowerError(code, details),
    );
  }

  /** Ends the call with `reason`: its context aborts (stopping the stack's work), its stream is reset. */
  endWith(reason: GrpcTowerError): void {
    if (this.#finished) return;
    this.#control.abort(reason);
    if (this.#response !== undefined && this.#unary === undefined)
      this.#response.stream.cancel(reason.code, reason.message);
    this.#finish({ code: reason.code, details: reason.message, metadata: new Metadata() });
  }
}
