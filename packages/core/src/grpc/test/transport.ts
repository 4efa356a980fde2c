/**
 * Runs a gRPC behaviour suite over either transport: a suite imports
 * `grpcEndpoint` from here, and a second test file selects the native
 * transport with {@link useTransport} before importing the suite.
 */
import { GrpcEndpoint, type GrpcEndpointOptions, grpcJsEndpoint } from '../endpoint.js';
import { type NativeGrpcEndpoint, nativeGrpcEndpoint } from '../native/endpoint.js';

/** The transports a suite can run over. */
export type TestTransport = 'grpc-js' | 'native';

const KEY = Symbol.for('grpc-tower.test.transport');
type Holder = { [KEY]?: TestTransport };

/** Selects the transport of the suites imported after this call (in this test file). */
export function useTransport(transport: TestTransport): void {
  (globalThis as Holder)[KEY] = transport;
}

/** The transport selected for this test file (grpc-js unless chosen). */
export function testTransport(): TestTransport {
  return (globalThis as Holder)[KEY] ?? 'grpc-js';
}

/** An endpoint over the selected transport. */
export function grpcEndpoint(
  address: string,
  options: GrpcEndpointOptions,
): GrpcEndpoint | NativeGrpcEndpoint {
  return testTransport() === 'native'
    ? nativeGrpcEndpoint(address, options)
    : grpcJsEndpoint(address, options);
}

export { GrpcEndpoint };
