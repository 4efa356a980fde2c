/**
 * `@grpc-tower/core/grpc`: the gRPC path. {@link grpcEndpoint} makes an
 * endpoint for one server address, with the channel credentials its calls
 * use (required: a grpc-js client ignores its own credentials when
 * `channelOverride` is set); {@link createChannel} turns a stack of layers
 * over endpoints into a grpc-js `ChannelInterface` that any grpc-js client
 * uses through `channelOverride`.
 *
 * @example
 * ```ts
 * import { createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
 * const endpoint = grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() });
 * const channel = createChannel(endpoint, { target: 'echo' });
 * const client = new EchoClient('echo', grpc.credentials.createInsecure(), { channelOverride: channel });
 * ```
 * @packageDocumentation
 */
export { createChannel, TowerChannel, type CreateChannelOptions } from './channel.js';
export { GrpcEndpoint, type GrpcEndpointOptions, type GrpcTransport } from './endpoint.js';
export { grpcEndpoint } from './grpc-endpoint.js';
export { grpcProtocol } from './protocol.js';
export {
  nativeGrpcEndpoint,
  NativeGrpcEndpoint,
  type NativeGrpcEndpointOptions,
} from './native/endpoint.js';
export {
  GrpcStatusError,
  ENDPOINT_METADATA_KEY,
  type GrpcRequest,
  type GrpcResponse,
  type ResponseStream,
} from './types.js';
export { RequestMessages } from './messages.js';
