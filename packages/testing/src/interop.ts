/**
 * gRPC's interop `TestService` (`interop/test.proto`, the names of gRPC's
 * interop spec) on two servers: grpc-js in this process, and gRPC C-core
 * (Debian's Python grpcio, `ccore/interop_server.py`) in a child process.
 * Both answer as the spec's server does: payloads of the sizes asked for,
 * `response_status` ends the call with that status, the
 * `x-grpc-test-echo-initial` metadata comes back as response headers and
 * `x-grpc-test-echo-trailing-bin` as trailers. Neither implements
 * `UnimplementedCall` or `UnimplementedService`.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The path of `interop/test.proto`. */
const INTEROP_PROTO_PATH = fileURLToPath(new URL('../interop/test.proto', import.meta.url));
const PYTHON_SERVER = fileURLToPath(new URL('../ccore/interop_server.py', import.meta.url));

/** The request metadata echoed as response headers. */
const ECHO_INITIAL = 'x-grpc-test-echo-initial';
/** The request metadata echoed as trailers. */
const ECHO_TRAILING = 'x-grpc-test-echo-trailing-bin';

/**
 * The interop package loaded with proto-loader.
 *
 * @example
 * ```ts
 * const { TestServiceClient, UnimplementedServiceClient } = loadInteropPackage();
 * const client = new TestServiceClient(server.address, grpc.credentials.createInsecure());
 * ```
 */
export interface InteropPackage {
  /** `grpc.testing.TestService`'s client constructor. */
  readonly TestServiceClient: grpc.ServiceClientConstructor;
  /** `grpc.testing.UnimplementedService`'s client constructor. */
  readonly UnimplementedServiceClient: grpc.ServiceClientConstructor;
  /** The serialized FileDescriptorProtos of the proto (what the C-core server builds its classes from). */
  readonly fileDescriptorProtos: readonly Buffer[];
}

let loaded: InteropPackage | undefined;

/**
 * Loads `interop/test.proto` (once per process), fields in lowerCamel case.
 *
 * @example
 * ```ts
 * const { TestServiceClient } = loadInteropPackage();
 * const service = TestServiceClient.service;
 * ```
 */
export function loadInteropPackage(): InteropPackage {
  if (loaded !== undefined) return loaded;
  const definition = protoLoader.loadSync(INTEROP_PROTO_PATH, { keepCase: false, defaults: true });
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { testing: Record<string, grpc.ServiceClientConstructor> };
  };
  // the descriptors with the field names of the proto (the loaded ones are lowerCamel)
  const asWritten = protoLoader.loadSync(INTEROP_PROTO_PATH, { keepCase: true });
  const empty = asWritten['grpc.testing.Empty'] as protoLoader.MessageTypeDefinition<object, object>;
  loaded = {
    TestServiceClient: root.grpc.testing.TestService as grpc.ServiceClientConstructor,
    UnimplementedServiceClient: root.grpc.testing.UnimplementedService as grpc.ServiceClientConstructor,
    fileDescriptorProtos: empty.fileDescriptorProtos,
  };
  return loaded;
}

/**
 * A running interop server.
 *
 * @example
 * ```ts
 * const server = await startInteropServer('127.0.0.2');
 * console.log(server.address);
 * await server.stop();
 * ```
 */
export interface InteropServer {
  /** `host:port` it listens on (plaintext). */
  readonly address: string;
  /** Stops it at once (open calls are cancelled). */
  stop(): Promise<void>;
}

interface Payload {
  body: Buffer;
}
interface EchoStatus {
  code: number;
  message: string;
}
interface ResponseParameters {
  size: number;
  intervalUs: number;
}
interface StreamingOutputCallRequest {
  responseParameters: ResponseParameters[];
  payload: Payload | null;
  responseStatus: EchoStatus | null;
}

/** Echoes the initial metadata now; returns the trailers to end the call with. */
function echoMetadata(
  call: Pick<grpc.ServerUnaryCall<unknown, unknown>, 'metadata' | 'sendMetadata'>,
): grpc.Metadata {
  const initial = call.metadata.get(ECHO_INITIAL)[0];
  if (initial !== undefined) {
    const headers = new grpc.Metadata();
    headers.set(ECHO_INITIAL, initial);
    call.sendMetadata(headers);
  }
  const trailers = new grpc.Metadata();
  const trailing = call.metadata.get(ECHO_TRAILING)[0];
  if (trailing !== undefined) trailers.set(ECHO_TRAILING, trailing);
  return trailers;
}

/** The status a request asks the call to end with, if any. */
function asked(status: EchoStatus | null, metadata: grpc.Metadata): grpc.ServiceError | undefined {
  if (status === null || status.code === 0) return undefined;
  return Object.assign(new Error(status.message), { code: status.code, details: status.message, metadata });
}

/**
 * Writes the responses `request` asks for, in order, each after its
 * interval; resolves false when the call was cancelled in between.
 */
async function writeResponses(
  call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
  request: StreamingOutputCallRequest,
): Promise<boolean> {
  for (const { size, intervalUs } of request.responseParameters) {
    if (intervalUs > 0) await new Promise((resolve) => setTimeout(resolve, intervalUs / 1000));
    if (call.cancelled) return false;
    call.write({ payload: { body: Buffer.alloc(size) } });
  }
  return true;
}

/**
 * Starts the grpc-js interop server on `host` (a free port).
 *
 * @example
 * ```ts
 * const [host] = pickHosts(1);
 * const server = await startInteropServer(host);
 * ```
 */
export async function startInteropServer(host: string): Promise<InteropServer> {
  const { TestServiceClient } = loadInteropPackage();
  const server = new grpc.Server();
  server.addService(TestServiceClient.service, {
    EmptyCall: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      callback(null, {});
    },
    UnaryCall: (
      call: grpc.ServerUnaryCall<{ responseSize: number; responseStatus: EchoStatus | null }, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      const trailers = echoMetadata(call);
      const failure = asked(call.request.responseStatus, trailers);
      if (failure !== undefined) callback(failure);
      else callback(null, { payload: { body: Buffer.alloc(call.request.responseSize) } }, trailers);
    },
    StreamingOutputCall: (call: grpc.ServerWritableStream<StreamingOutputCallRequest, unknown>) => {
      const trailers = echoMetadata(call);
      void writeResponses(call, call.request).then((open) => {
        if (!open) return;
        const failure = asked(call.request.responseStatus, trailers);
        if (failure !== undefined) call.emit('error', failure);
        else call.end(trailers);
      });
    },
    StreamingInputCall: (
      call: grpc.ServerReadableStream<{ payload: Payload | null }, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      let size = 0;
      call.on('data', (request: { payload: Payload | null }) => {
        size += request.payload?.body.length ?? 0;
      });
      call.on('end', () => callback(null, { aggregatedPayloadSize: size }));
      call.on('error', () => {});
    },
    FullDuplexCall: (call: grpc.ServerDuplexStream<StreamingOutputCallRequest, unknown>) => {
      const trailers = echoMetadata(call);
      // requests are answered in order; a status asked for ends the call
      let chain = Promise.resolve(true);
      call.on('data', (request: StreamingOutputCallRequest) => {
        chain = chain.then(async (open) => {
          if (!open) return false;
          const failure = asked(request.responseStatus, trailers);
          if (failure === undefined) return writeResponses(call, request);
          call.emit('error', failure);
          return false;
        });
      });
      call.on('end', () => {
        void chain.then((open) => {
          if (open) call.end(trailers);
        });
      });
      call.on('error', () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err === null ? resolve(bound) : reject(err),
    ),
  );
  return {
    address: `${host}:${port}`,
    stop: async () => {
      server.forceShutdown();
    },
  };
}

/**
 * Starts the C-core interop server (`/usr/bin/python3` with Debian's
 * `python3-grpcio`) on `host`; resolves once it listens.
 *
 * @example
 * ```ts
 * const server = await startCcoreInteropServer('127.0.0.3');
 * await server.stop();
 * ```
 */
export async function startCcoreInteropServer(host: string): Promise<InteropServer> {
  const descriptors = loadInteropPackage()
    .fileDescriptorProtos.map((d) => d.toString('base64'))
    .join(',');
  const child = spawn('/usr/bin/python3', [PYTHON_SERVER, host, descriptors]);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let output = '';
  child.stderr.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-4_096);
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      const m = /PORT (\d+)/.exec(output);
      if (m !== null) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`the C-core interop server exited (${code}): ${output}`)));
  });
  return {
    address: `${host}:${port}`,
    stop: async () => {
      child.stdin.end();
      child.kill('SIGKILL');
      await exited;
    },
  };
}
