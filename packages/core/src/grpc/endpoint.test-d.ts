import * as grpc from '@grpc/grpc-js';
import { describe, expectTypeOf, test } from 'vitest';
import { GrpcEndpoint, type GrpcEndpointOptions } from './endpoint.js';
import { grpcEndpoint } from './grpc-endpoint.js';
import type { NativeGrpcEndpoint } from './native/endpoint.js';

// Type-level only: nothing here runs, so no channel is opened.
describe('grpcEndpoint credentials types', () => {
  test('credentials are a required option', () => {
    expectTypeOf<GrpcEndpointOptions['credentials']>().toEqualTypeOf<grpc.ChannelCredentials>();
    expectTypeOf<Pick<GrpcEndpointOptions, 'credentials'>>().toEqualTypeOf<{
      readonly credentials: grpc.ChannelCredentials;
    }>();
  });

  test('an endpoint without credentials does not type-check', () => {
    // @ts-expect-error: the options, with their credentials, are required
    grpcEndpoint('127.0.0.1:1');
    // @ts-expect-error: credentials are required
    grpcEndpoint('127.0.0.1:1', {});
    // @ts-expect-error: credentials are required
    grpcEndpoint('127.0.0.1:1', { authority: 'orders.internal' });
    // @ts-expect-error: the class requires them too
    new GrpcEndpoint('127.0.0.1:1');
    // @ts-expect-error: call credentials are not channel credentials
    grpcEndpoint('127.0.0.1:1', { credentials: grpc.credentials.createFromGoogleCredential({} as never) });
  });

  test('explicit credentials type-check, plaintext or TLS', () => {
    // the last (widest) signature
    expectTypeOf<Parameters<typeof grpcEndpoint>[1]>().toEqualTypeOf<GrpcEndpointOptions>();
    expectTypeOf(
      grpcEndpoint('127.0.0.1:1', { credentials: grpc.credentials.createInsecure() }),
    ).toEqualTypeOf<NativeGrpcEndpoint>();
    expectTypeOf(
      grpcEndpoint('127.0.0.1:1', { credentials: grpc.credentials.createSsl() }),
    ).toEqualTypeOf<NativeGrpcEndpoint>();
  });

  test('the transport picks the class: native by default, grpc-js by name', () => {
    const credentials = grpc.credentials.createInsecure();
    expectTypeOf(
      grpcEndpoint('127.0.0.1:1', { credentials, transport: 'native' }),
    ).toEqualTypeOf<NativeGrpcEndpoint>();
    expectTypeOf(
      grpcEndpoint('127.0.0.1:1', { credentials, transport: 'grpc-js' }),
    ).toEqualTypeOf<GrpcEndpoint>();
    const either = (process.env.T === 'grpc-js' ? 'grpc-js' : 'native') as 'grpc-js' | 'native';
    expectTypeOf(grpcEndpoint('127.0.0.1:1', { credentials, transport: either })).toEqualTypeOf<
      GrpcEndpoint | NativeGrpcEndpoint
    >();
    // @ts-expect-error: only the two transports
    grpcEndpoint('127.0.0.1:1', { credentials, transport: 'quic' });
  });
});
