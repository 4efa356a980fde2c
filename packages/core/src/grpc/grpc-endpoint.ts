/**
 * `grpcEndpoint`: the endpoint of one gRPC server address, over the
 * transport its options choose (native by default, grpc-js by name).
 *
 * @module
 */
import { ConfigError } from '../errors.js';
import { GrpcEndpoint, type GrpcEndpointOptions } from './endpoint.js';
import { NativeGrpcEndpoint } from './native/endpoint.js';

/**
 * Creates an endpoint for `address` (`host:port`, IPv6 as `[::1]:50051`).
 * It starts connecting at once and reconnects with gRPC's backoff. By
 * default it speaks gRPC over its own HTTP/2 connection
 * (`NativeGrpcEndpoint`); `transport: 'grpc-js'` gives one that goes
 * through a grpc-js channel of its own (`GrpcEndpoint`, see
 * {@link GrpcEndpointOptions.transport} for when to pick it).
 *
 * @example
 * ```ts
 * const ep = grpcEndpoint('10.0.0.7:50051', {
 *   credentials: grpc.credentials.createSsl(ca),
 *   authority: 'orders.internal',
 * });
 * const local = grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() });
 * const viaGrpcJs = grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure(), transport: 'grpc-js' });
 * ```
 */
export function grpcEndpoint(
  address: string,
  options: GrpcEndpointOptions & { readonly transport: 'grpc-js' },
): GrpcEndpoint;
export function grpcEndpoint(
  address: string,
  options: GrpcEndpointOptions & { readonly transport?: 'native' | undefined },
): NativeGrpcEndpoint;
export function grpcEndpoint(
  address: string,
  options: GrpcEndpointOptions,
): GrpcEndpoint | NativeGrpcEndpoint;
export function grpcEndpoint(
  address: string,
  options: GrpcEndpointOptions,
): GrpcEndpoint | NativeGrpcEndpoint {
  const transport = (options as { transport?: unknown } | null | undefined)?.transport;
  if (transport === 'grpc-js') return new GrpcEndpoint(address, options);
  if (transport !== undefined && transport !== 'native') {
    throw new ConfigError('grpcEndpoint', 'transport', transport, "'native' (the default) or 'grpc-js'");
  }
  return new NativeGrpcEndpoint(address, options, 'grpcEndpoint');
}
