import * as grpc from '@grpc/grpc-js';
import { describe, expectTypeOf, test } from 'vitest';
import { GrpcEndpoint, type GrpcEndpointOptions, grpcEndpoint } from './endpoint.js';

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
    expectTypeOf(grpcEndpoint).parameter(1).toEqualTypeOf<GrpcEndpointOptions>();
    expectTypeOf(
      grpcEndpoint('127.0.0.1:1', { credentials: grpc.credentials.createInsecure() }),
    ).toEqualTypeOf<GrpcEndpoint>();
    expectTypeOf(
      grpcEndpoint('127.0.0.1:1', { credentials: grpc.credentials.createSsl() }),
    ).toEqualTypeOf<GrpcEndpoint>();
  });
});
