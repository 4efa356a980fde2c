// Builds the client side the retry tests share: one grpcEndpoint per server
// address, the test picker over them, a layer on top, a grpc-tower channel
// over the stack and a proto-loader echo client on that channel; plus
// promise wrappers for client calls that never reject.
import * as grpc from '@grpc/grpc-js';
import { type Service, ServiceBuilder } from '@grpc-tower/core';
import {
  type GrpcEndpoint,
  type GrpcRequest,
  type GrpcResponse,
  type GrpcTransport,
  type NativeGrpcEndpoint,
  type TowerChannel,
  createChannel,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import {
  type EchoProtoClient,
  type EchoReply,
  type EchoRequest,
  createEchoClient,
  insecure,
  loadEchoPackage,
} from '@grpc-tower/testing';
import { type PickMode, type TestPicker, testPicker } from './picker.js';

export interface Stack {
  readonly endpoints: (NativeGrpcEndpoint | GrpcEndpoint)[];
  readonly picker: TestPicker;
  readonly channel: TowerChannel;
  readonly client: EchoProtoClient;
  close(): Promise<void>;
}

export function buildStack(
  addresses: readonly string[],
  layer: (inner: Service<GrpcRequest, GrpcResponse>) => Service<GrpcRequest, GrpcResponse>,
  options: {
    mode?: PickMode;
    replay?: { perCallBytes?: number; perChannelBytes?: number };
    /** The endpoints' transport; native by default, as `grpcEndpoint`'s. */
    transport?: GrpcTransport;
  } = {},
): Stack {
  const transport = options.transport ?? 'native';
  const endpoints = addresses.map((a) =>
    grpcEndpoint(a, { credentials: insecure, closeGraceMs: 0, transport }),
  );
  const picker = testPicker(endpoints, options.mode);
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>().layer(layer).service(picker);
  const channel = createChannel(stack, {
    target: 'echo.retry.test',
    services: [loadEchoPackage().EchoService],
    ...(options.replay === undefined ? {} : { replay: options.replay }),
  });
  const client = createEchoClient('echo.retry.test', { channelOverride: channel });
  return {
    endpoints,
    picker,
    channel,
    client,
    async close() {
      client.close();
      await channel.closeAsync();
    },
  };
}

/** Resolves once every endpoint is ready (bounded). */
export async function allReady(
  endpoints: readonly (NativeGrpcEndpoint | GrpcEndpoint)[],
  timeoutMs = 5_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (endpoints.some((e) => e.readiness !== 'ready')) {
    if (Date.now() > until) {
      throw new Error(
        `endpoints not ready: ${endpoints.map((e) => `${e.address}=${e.readiness}`).join(', ')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface CallResult {
  readonly replies: EchoReply[];
  readonly error: grpc.ServiceError | undefined;
}

export function unary(
  client: EchoProtoClient,
  request: EchoRequest,
  options: Partial<grpc.CallOptions> = {},
  metadata?: grpc.Metadata,
  onCall?: (call: grpc.ClientUnaryCall) => void,
): Promise<CallResult> {
  return new Promise((resolve) => {
    const call = client.Unary(request, metadata ?? newMetadata(), options, (err, reply) => {
      resolve({ replies: reply === undefined || err !== null ? [] : [reply], error: err ?? undefined });
    });
    onCall?.(call);
  });
}

export function readStream(call: grpc.ClientReadableStream<EchoReply>): Promise<CallResult> {
  return new Promise((resolve) => {
    const replies: EchoReply[] = [];
    let error: grpc.ServiceError | undefined;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      resolve({ replies, error });
    };
    call.on('data', (r: EchoReply) => replies.push(r));
    call.on('error', (e: grpc.ServiceError) => {
      error = e;
      finish();
    });
    call.on('end', () => setImmediate(finish));
  });
}

export function clientStream(
  client: EchoProtoClient,
  requests: readonly EchoRequest[],
  options: Partial<grpc.CallOptions> = {},
): Promise<CallResult> {
  return new Promise((resolve) => {
    const call = client.ClientStream(newMetadata(), options, (err, reply) => {
      resolve({ replies: reply === undefined || err !== null ? [] : [reply], error: err ?? undefined });
    });
    for (const r of requests) call.write(r);
    call.end();
  });
}

function newMetadata(): grpc.Metadata {
  return new grpc.Metadata();
}

/** Polls `check` every 10 ms until it is true, for at most `timeoutMs`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
