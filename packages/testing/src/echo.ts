/**
 * The echo service (`grpctower.testing.Echo`, `proto/echo.proto`) loaded at
 * run time with `@grpc/proto-loader`, and the shapes of its messages as a
 * proto-loader client sends and receives them (camelCase fields, defaults
 * filled in on received messages, `bytes` as `Buffer`).
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * Absolute path of `echo.proto`.
 *
 * @example
 * ```ts
 * const def = protoLoader.loadSync(ECHO_PROTO_PATH);
 * ```
 */
export const ECHO_PROTO_PATH: string = fileURLToPath(new URL('../proto/echo.proto', import.meta.url));

/**
 * The fully qualified name of the echo service, as health checks name it.
 *
 * @example
 * ```ts
 * server.setServing('NOT_SERVING', ECHO_SERVICE_NAME);
 * ```
 */
export const ECHO_SERVICE_NAME = 'grpctower.testing.Echo';

/**
 * The method names of the echo service, one per gRPC call type.
 *
 * @example
 * ```ts
 * const m: EchoMethod = 'ServerStream';
 * ```
 */
export type EchoMethod = 'Unary' | 'ServerStream' | 'ClientStream' | 'Bidi';

/**
 * A request as a proto-loader client sends it; every field may be left out.
 *
 * @example
 * ```ts
 * const req: EchoRequest = { message: 'hi', delayMs: 20, echoMetadata: true };
 * ```
 */
export interface EchoRequest {
  /** Text echoed back in `EchoReply.message`. */
  message?: string;
  /** Bytes echoed back in `EchoReply.payload`. */
  payload?: Uint8Array;
  /**
   * Wait this long before answering: ServerStream before each reply,
   * ClientStream and Bidi before handling this message.
   */
  delayMs?: number;
  /** When not 0, fail with this gRPC status code (after `delayMs`), with no response headers first. */
  failCode?: number;
  /** The status message of a failure asked for by `failCode` or `headersThenFail`. */
  failDetails?: string;
  /** ServerStream: how many replies to send. */
  count?: number;
  /**
   * Copy each `x-` request metadata key into the response headers, and into
   * the trailers as `<key>-trailer` (`<name>-trailer-bin` for `<name>-bin`).
   */
  echoMetadata?: boolean;
  /**
   * When not 0, send the response headers, then fail with this status code
   * (ServerStream sends its `count` replies in between).
   */
  headersThenFail?: number;
}

/**
 * A reply as a proto-loader client receives it (every field present).
 *
 * @example
 * ```ts
 * client.Unary({ message: 'hi' }, (err: grpc.ServiceError | null, reply: EchoReply) => {
 *   console.log(reply.server, reply.message);
 * });
 * ```
 */
export interface EchoReply {
  /** The request's message (ClientStream: all messages joined with `,`). */
  message: string;
  /** The request's payload. */
  payload: Buffer;
  /** The name of the server that answered. */
  server: string;
  /** The position of this reply in a stream. */
  index: number;
  /** ClientStream: how many request messages arrived. */
  received: number;
}

/**
 * The echo service as loaded by proto-loader: a client constructor and the
 * service definition a grpc-js server implements.
 *
 * @example
 * ```ts
 * const { EchoClient } = loadEchoPackage();
 * const client = new EchoClient('127.0.0.2:50051', grpc.credentials.createInsecure());
 * ```
 */
export interface EchoPackage {
  /** The client constructor; methods exist as `Unary` and `unary`, and so on. */
  readonly EchoClient: grpc.ServiceClientConstructor;
  /** The service definition (`EchoClient.service`). */
  readonly EchoService: grpc.ServiceDefinition;
}

/**
 * A proto-loader echo client with typed methods (the constructor's
 * `ServiceClient` types every method as `Function`). The lowerCamel aliases
 * (`unary`, ...) exist too but are not typed here.
 *
 * @example
 * ```ts
 * const client = createEchoClient(server.address);
 * const stream = client.ServerStream({ message: 'x', count: 3 });
 * ```
 */
export interface EchoProtoClient extends grpc.Client {
  /** One request, one reply. */
  Unary(
    request: EchoRequest,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<EchoReply>,
  ): grpc.ClientUnaryCall;
  /** One request, `count` replies. */
  ServerStream(
    request: EchoRequest,
    metadata?: grpc.Metadata,
    options?: Partial<grpc.CallOptions>,
  ): grpc.ClientReadableStream<EchoReply>;
  /** Many requests, one reply. */
  ClientStream(
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<EchoReply>,
  ): grpc.ClientWritableStream<EchoRequest>;
  /** Each request echoed as it arrives. */
  Bidi(
    metadata?: grpc.Metadata,
    options?: Partial<grpc.CallOptions>,
  ): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
}

/** Largest message the echo clients made by {@link createEchoClient} accept: 64 MiB. */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Creates a proto-loader echo client for `target` (insecure unless
 * `credentials` are given). `options` are grpc-js client options, such as
 * `channelOverride`; message size limits default to 64 MiB each way.
 *
 * @example
 * ```ts
 * const client = createEchoClient('127.0.0.2:40001');
 * client.Unary({ message: 'hi' }, new grpc.Metadata(), {}, (err, reply) => {});
 * client.close();
 * ```
 */
export function createEchoClient(
  target: string,
  options: Partial<grpc.ClientOptions> = {},
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): EchoProtoClient {
  const { EchoClient } = loadEchoPackage();
  const client = new EchoClient(target, credentials, {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    ...options,
  });
  return client as unknown as EchoProtoClient;
}

/** The proto-loader options the echo package is loaded with. */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

let loaded: EchoPackage | undefined;

/**
 * Loads `echo.proto` with proto-loader (once per process; later calls
 * return the same objects).
 *
 * @example
 * ```ts
 * const { EchoClient, EchoService } = loadEchoPackage();
 * server.addService(EchoService, handlers);
 * ```
 */
export function loadEchoPackage(): EchoPackage {
  if (loaded !== undefined) return loaded;
  const definition = protoLoader.loadSync(ECHO_PROTO_PATH, LOADER_OPTIONS);
  const root = grpc.loadPackageDefinition(definition);
  const EchoClient = lookup(root, ECHO_SERVICE_NAME.split('.'));
  loaded = { EchoClient, EchoService: EchoClient.service };
  return loaded;
}

function lookup(root: grpc.GrpcObject, path: readonly string[]): grpc.ServiceClientConstructor {
  let node: grpc.GrpcObject[string] = root;
  for (const part of path) {
    if (typeof node !== 'object' || node === null || 'format' in node) {
      throw new Error(`echo.proto has no ${path.join('.')}`);
    }
    const next: grpc.GrpcObject[string] | undefined = (node as grpc.GrpcObject)[part];
    if (next === undefined) throw new Error(`echo.proto has no ${path.join('.')}`);
    node = next;
  }
  if (typeof node !== 'function') throw new Error(`${path.join('.')} in echo.proto is not a service`);
  return node;
}
