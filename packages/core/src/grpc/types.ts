/**
 * The request and response types that flow through a grpc-tower stack on
 * the gRPC path. Messages are serialized `Buffer`s both ways: the grpc-js
 * client serializes above the channel, so layers never see user types.
 *
 * @module
 */
import type { CallCredentials, Metadata, StatusObject } from './grpc-js.js';
import { GrpcTowerError, type ErrorOptions } from '../errors.js';
import type { StatusCode } from '../status.js';
import type { RequestMessages } from './messages.js';

/**
 * The shape of a method: whether requests and responses stream. Known when
 * the channel was given the service definitions; otherwise `undefined`.
 */
export type CallKind = 'unary' | 'clientStream' | 'serverStream' | 'bidi';

/**
 * One gRPC call as the layers see it.
 *
 * @example
 * ```ts
 * const req: GrpcRequest = {
 *   method: '/pkg.Echo/Unary', kind: 'unary', metadata: new Metadata(),
 *   messages: RequestMessages.of(Buffer.from([])), host: undefined, credentials: undefined,
 *   attempt: 0,
 * };
 * ```
 */
export interface GrpcRequest {
  /** The full method path, `/package.Service/Method`. */
  readonly method: string;
  /** The method's shape when known. */
  readonly kind: CallKind | undefined;
  /**
   * The request metadata, as the caller gave it. The endpoint sends a copy
   * (one per attempt, with that attempt's `grpc-timeout` and
   * `grpc-previous-rpc-attempts`); a layer that adds entries adds them to a
   * copy of its own.
   */
  readonly metadata: Metadata;
  /** The request messages, replayable until the call commits. */
  readonly messages: RequestMessages;
  /** An `:authority` override for this call. */
  readonly host: string | undefined;
  /** Per-call credentials, applied by the endpoint (only over secure channels). */
  readonly credentials: CallCredentials | undefined;
  /**
   * How many attempts came before this one (0 for the first); the endpoint
   * sends it as `grpc-previous-rpc-attempts` (gRPC A6) when it is not 0.
   */
  readonly attempt: number;
}

/** Receives a committed response stream. */
export interface ResponseListener {
  onMessage(message: Buffer): void;
  /** Called once, after the last message. */
  onStatus(status: StatusObject): void;
}

/**
 * A committed response: the response headers have been accepted and the
 * call can no longer move to another endpoint. Messages arrive one per
 * `read()`, then the status.
 */
export interface ResponseStream {
  /** Attaches the listener; call once. */
  start(listener: ResponseListener): void;
  /** Asks for one more message (flow control). */
  read(): void;
  /** Cancels the call on the server. */
  cancel(code: StatusCode, details: string): void;
}

/**
 * The whole response of a unary or client-streaming call, known when it
 * commits (at its status).
 *
 * @example
 * ```ts
 * const res = await stack.call(req, ctx);
 * if (res.unary !== undefined) console.log(res.unary.messages[0], res.unary.status.metadata);
 * ```
 */
export interface UnaryResult {
  /** The response messages: one from a well-behaved server (none or several from one that is not). */
  readonly messages: readonly Buffer[];
  /** The final status (OK: a failed call rejects instead). */
  readonly status: StatusObject;
}

/**
 * What a stack returns for a call that committed on an endpoint.
 *
 * Unary and client-streaming responses commit at their status: a resolved
 * response holds the message and the OK status in `unary`, and a failed one
 * rejects with {@link GrpcStatusError}, so a retry layer can still act.
 * Streaming responses commit at the response headers and arrive through
 * `stream`.
 *
 * @example
 * ```ts
 * const res = await stack.call(req, ctx);
 * const status = res.unary?.status ?? (await res.done);
 * ```
 */
export interface GrpcResponse {
  /** The address of the endpoint that answered. */
  readonly endpoint: string;
  /** The response headers. */
  readonly headers: Metadata;
  /**
   * The complete response of a call that committed at its status (unary and
   * client streaming); `undefined` for one that committed at its headers.
   * A consumer that finds it here need not touch `stream` or `done`.
   */
  readonly unary?: UnaryResult | undefined;
  /** The messages and final status (for a complete response, a replay of `unary`). */
  readonly stream: ResponseStream;
  /** Settles with the final status (never rejects), for layers that observe outcomes. */
  readonly done: Promise<StatusObject>;
  /**
   * Bytes of response messages the attempt received so far (all of them
   * once `done` settles): the serialized messages as grpc-js hands them
   * over, after any decompression. `grpcEndpoint`'s responses carry it; a
   * response made elsewhere may not.
   */
  readonly receivedBytes?: number;
}

/**
 * A call ended with a non-OK status before it committed: the server's code,
 * details and trailing metadata, and the endpoint that answered.
 *
 * @example
 * ```ts
 * if (err instanceof GrpcStatusError && err.code === Status.UNAVAILABLE) { ... }
 * ```
 */
export class GrpcStatusError extends GrpcTowerError {
  /** The status details string as the server sent it. */
  readonly details: string;
  /** The trailing metadata. */
  readonly metadata: Metadata;
  /**
   * Whether the server's gRPC layer answered this attempt (response headers,
   * or a trailers-only response with HTTP headers). `false` means the
   * failure happened below gRPC — connect failure, reset, refused stream —
   * and the server application never answered.
   */
  readonly serverResponded: boolean;

  constructor(status: StatusObject, options: ErrorOptions & { serverResponded?: boolean } = {}) {
    const where = options.endpoint === undefined ? '' : ` (endpoint ${options.endpoint})`;
    super(status.code as StatusCode, `${status.details || 'call failed'}${where}`, options);
    this.details = status.details;
    this.metadata = status.metadata;
    this.serverResponded = options.serverResponded ?? status.metadata.get('content-type').length > 0;
  }
}

/** The name of the trailing-metadata key that names the endpoint a failure came from. */
export const ENDPOINT_METADATA_KEY = 'grpc-tower-endpoint';
