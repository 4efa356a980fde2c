/**
 * Connect-ES's `Transport` for the gRPC protocol, over a grpc-tower gRPC
 * stack: Connect-ES runs the call (`runUnaryCall`, `runStreamingCall`: its
 * interceptors, its deadline and cancel signal, its normalised messages),
 * and the call's `next` hands the serialized messages to the stack as a
 * `GrpcRequest` (so retries, the balancer and the native endpoints see a
 * gRPC call of the method's known shape) and turns the `GrpcResponse`
 * back into Connect-ES's response: headers and trailer as `Headers`, the
 * messages parsed, a failed status as the `ConnectError` its own gRPC
 * transport raises.
 *
 * @module
 */
import type { StatusObject } from '@grpc/grpc-js';
import type {
  BinaryReadOptions,
  BinaryWriteOptions,
  DescMessage,
  DescMethodStreaming,
  DescMethodUnary,
  JsonReadOptions,
  JsonWriteOptions,
  MessageShape,
} from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  createContextValues,
} from '@connectrpc/connect';
import {
  createClientMethodSerializers,
  createMethodUrl,
  runStreamingCall,
  runUnaryCall,
} from '@connectrpc/connect/protocol';
import { requestHeader } from '@connectrpc/connect/protocol-grpc';
import { type CallContext, type Scope, Status, newContext } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, RequestMessages } from '@grpc-tower/core/grpc';
import type { ReplayBudget } from '@grpc-tower/core/internal';

/** A call's shape, as the request carries it. */
type CallKind = NonNullable<GrpcRequest['kind']>;
/** A complete response: its messages and status as values. */
type UnaryResult = NonNullable<GrpcResponse['unary']>;
import { addMetadata, connectErrorOf, metadataOf, statusTrailer, statusError } from './headers.js';

/** The headers a caller gives a call (the DOM's `HeadersInit`). */
export type HeaderInit = ConstructorParameters<typeof Headers>[0];

/** Options of the binary serialization, as Connect-ES takes them. */
export type BinaryOptions = Partial<BinaryReadOptions & BinaryWriteOptions>;

/** Options of the JSON serialization, as Connect-ES takes them. */
export type JsonOptions = Partial<JsonReadOptions & JsonWriteOptions>;

/** What the gRPC protocol's calls need of the transport. */
export interface GrpcCallSettings {
  /** The stack's call. */
  readonly call: (req: GrpcRequest, ctx: CallContext) => Promise<GrpcResponse>;
  /** The replay buffer of each call (gRPC A6). */
  readonly replay: { readonly perCallBytes: number; readonly budget: ReplayBudget };
  readonly interceptors: Interceptor[];
  /** `http://` or `https://` and the target's authority: the `url` interceptors see. */
  readonly baseUrl: string;
  readonly defaultTimeoutMs: number | undefined;
  readonly binaryOptions: BinaryOptions | undefined;
  readonly jsonOptions: JsonOptions | undefined;
}

const KINDS: Record<string, CallKind> = {
  unary: 'unary',
  server_streaming: 'serverStream',
  client_streaming: 'clientStream',
  bidi_streaming: 'bidi',
};

/** A serialized message as a Buffer over the same bytes. */
const bufferOf = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** Connect-ES's rule: `undefined` takes the default, 0 or less means none. */
const timeoutOf = (timeoutMs: number | undefined, byDefault: number | undefined): number | undefined =>
  timeoutMs === undefined ? byDefault : timeoutMs <= 0 ? undefined : timeoutMs;

/** The stack's context of one call: Connect-ES's signal (cancel, deadline, end) and the deadline, for `grpc-timeout`. */
function scopeOf(signal: AbortSignal, timeoutMs: number | undefined): Scope {
  return newContext(timeoutMs === undefined ? { signal } : { signal, timeoutMs });
}

function grpcRequest(req: UnaryRequest | StreamRequest, messages: RequestMessages): GrpcRequest {
  return {
    method: `/${req.service.typeName}/${req.method.name}`,
    kind: KINDS[req.method.methodKind],
    metadata: metadataOf(req.header),
    messages,
    host: undefined,
    credentials: undefined,
    attempt: 0,
  };
}

/** The one message of a unary response, with Connect-ES's errors for none or several. */
function onlyMessage(unary: UnaryResult): Buffer {
  if (unary.messages.length > 1) {
    throw new ConnectError(
      'protocol error: received extra output message for unary method',
      Code.Unimplemented,
    );
  }
  const message = unary.messages[0];
  if (message === undefined) {
    throw new ConnectError('protocol error: missing output message for unary method', Code.Unimplemented);
  }
  return message;
}

/** The whole response of a call that committed at its headers (a stack whose layers did so). */
function collect(res: GrpcResponse): Promise<UnaryResult> {
  return new Promise((resolve) => {
    const messages: Buffer[] = [];
    res.stream.start({
      onMessage: (m) => {
        messages.push(m);
        res.stream.read();
      },
      onStatus: (status) => resolve({ messages, status }),
    });
    res.stream.read();
  });
}

/**
 * What both kinds of call start from, as Connect-ES's transports do: the
 * method's serializers, the timeout (`defaultTimeoutMs` when the call
 * gives none), the options of `runUnaryCall`/`runStreamingCall` and the
 * request fields its interceptors see.
 */
function setUp<I extends DescMessage, O extends DescMessage>(
  settings: GrpcCallSettings,
  method: DescMethodUnary<I, O> | DescMethodStreaming<I, O>,
  signal: AbortSignal | undefined,
  timeoutMs: number | undefined,
  header: HeaderInit | undefined,
  contextValues: ContextValues | undefined,
) {
  const { serialize, parse } = createClientMethodSerializers(
    method,
    true,
    settings.jsonOptions,
    settings.binaryOptions,
  );
  const ms = timeoutOf(timeoutMs, settings.defaultTimeoutMs);
  return {
    ms,
    serialize,
    parse,
    run: {
      interceptors: settings.interceptors,
      ...(signal === undefined ? {} : { signal }),
      ...(ms === undefined ? {} : { timeoutMs: ms }),
    },
    common: {
      service: method.parent,
      requestMethod: 'POST',
      url: createMethodUrl(settings.baseUrl, method),
      header: requestHeader(true, ms, header),
      contextValues: contextValues ?? createContextValues(),
    },
  };
}

/**
 * Connect-ES's `Transport` for the gRPC protocol over `settings.call`.
 *
 * @example
 * ```ts
 * const transport = grpcOverStack({ call: (r, c) => stack.call(r, c), replay, interceptors: [], baseUrl, ... });
 * ```
 */
export function grpcOverStack(settings: GrpcCallSettings): Transport {
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      const call = setUp(settings, method, signal, timeoutMs, header, contextValues);
      return await runUnaryCall({
        ...call.run,
        req: { ...call.common, stream: false, method, message: input },
        next: async (req) => {
          const messages = new RequestMessages(settings.replay);
          messages.push(bufferOf(call.serialize(req.message)));
          messages.end();
          const scope = scopeOf(req.signal, call.ms);
          try {
            const res = await settings.call(grpcRequest(req, messages), scope.context);
            const unary = res.unary ?? (await collect(res));
            const headers = addMetadata(new Headers(), res.headers);
            if (unary.status.code !== Status.OK) throw statusError(unary.status, headers, res.endpoint);
            return {
              stream: false,
              service: method.parent,
              method,
              header: headers,
              message: call.parse(onlyMessage(unary)),
              trailer: statusTrailer(new Headers(), unary.status),
            };
          } catch (err) {
            throw connectErrorOf(err);
          } finally {
            scope.release();
            messages.dispose();
          }
        },
      });
    },

    async stream(method, signal, timeoutMs, header, input, contextValues) {
      const call = setUp(settings, method, signal, timeoutMs, header, contextValues);
      return await runStreamingCall({
        ...call.run,
        req: { ...call.common, stream: true, method, message: input },
        next: (req) => new StreamingCall(settings, req, call.ms, call.serialize, call.parse).start(),
      });
    },
  };
}

/** One streaming call: the request messages pumped into the replay buffer, the response read one message at a time. */
class StreamingCall<I extends DescMessage, O extends DescMessage> {
  readonly #settings: GrpcCallSettings;
  readonly #req: StreamRequest<I, O>;
  readonly #serialize: (m: MessageShape<I>) => Uint8Array;
  readonly #parse: (data: Uint8Array) => MessageShape<O>;
  readonly #messages: RequestMessages;
  /** Ends the stack's call when sending the requests fails. */
  readonly #abort = new AbortController();
  readonly #scope: Scope;
  readonly #trailer = new Headers();
  #header: Headers | undefined;
  #res: GrpcResponse | undefined;
  #queue: Buffer[] = [];
  #status: StatusObject | undefined;
  #reading = false;
  #wake: (() => void) | undefined;
  #sendError: unknown;
  #ended = false;

  constructor(
    settings: GrpcCallSettings,
    req: StreamRequest<I, O>,
    timeoutMs: number | undefined,
    serialize: (m: MessageShape<I>) => Uint8Array,
    parse: (data: Uint8Array) => MessageShape<O>,
  ) {
    this.#settings = settings;
    this.#req = req;
    this.#serialize = serialize;
    this.#parse = parse;
    this.#messages = new RequestMessages(settings.replay);
    this.#scope = scopeOf(AbortSignal.any([req.signal, this.#abort.signal]), timeoutMs);
  }

  async start(): Promise<StreamResponse<I, O>> {
    const req = this.#req;
    void this.#send();
    const onAbort = (): void => this.#res?.stream.cancel(Status.CANCELLED, 'call cancelled');
    req.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await this.#settings.call(grpcRequest(req, this.#messages), this.#scope.context);
      this.#res = res;
      this.#header = addMetadata(new Headers(), res.headers);
      if (req.signal.aborted) onAbort();
    } catch (err) {
      req.signal.removeEventListener('abort', onAbort);
      this.#end();
      throw connectErrorOf(this.#sendError ?? err);
    }
    const res = this.#res;
    res.stream.start({
      onMessage: (m) => {
        this.#reading = false;
        this.#queue.push(m);
        this.#wake?.();
      },
      onStatus: (status) => {
        req.signal.removeEventListener('abort', onAbort);
        this.#status = status;
        this.#end();
        this.#wake?.();
      },
    });
    return {
      stream: true,
      service: req.service,
      method: req.method,
      header: this.#header,
      trailer: this.#trailer,
      message: { [Symbol.asyncIterator]: () => ({ next: () => this.#next() }) },
    };
  }

  /** Writes each request message once an attempt has taken the previous one (backpressure), then half-closes. */
  async #send(): Promise<void> {
    try {
      for await (const message of this.#req.message) {
        if (this.#ended) return;
        const data = bufferOf(this.#serialize(message));
        await new Promise<void>((resolve, reject) => {
          this.#messages.push(data, undefined, (err) => (err ? reject(err) : resolve()));
        });
      }
      this.#messages.end();
    } catch (err) {
      if (this.#ended) return;
      this.#sendError = err;
      this.#abort.abort(err);
      this.#res?.stream.cancel(Status.CANCELLED, 'sending the request failed');
    }
  }

  async #next(): Promise<IteratorResult<MessageShape<O>>> {
    for (;;) {
      const message = this.#queue.shift();
      if (message !== undefined) return { done: false, value: this.#parse(message) };
      const status = this.#status;
      if (status !== undefined) {
        if (this.#sendError !== undefined) throw connectErrorOf(this.#sendError);
        statusTrailer(this.#trailer, status);
        if (status.code !== Status.OK) throw statusError(status, this.#header, this.#res?.endpoint);
        return { done: true, value: undefined };
      }
      // a complete response delivers within read(): the wake-up is set first
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        if (!this.#reading) {
          this.#reading = true;
          this.#res?.stream.read();
        }
      });
      this.#wake = undefined;
    }
  }

  /** The call is over: release its deadline timer and its request messages. */
  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#scope.release();
    this.#messages.dispose();
  }
}
