// grpcEndpoint picks the transport: native by default, grpc-js by name; each
// class refuses the other transport's name, and a transport it does not know
// is refused naming the option.
import { insecure } from '@grpc-tower/testing';
import { describe, expect, test } from 'vitest';
import { ConfigError } from '../errors.js';
import { GrpcEndpoint } from './endpoint.js';
import { grpcEndpoint } from './grpc-endpoint.js';
import { NativeGrpcEndpoint, nativeGrpcEndpoint } from './native/endpoint.js';

describe('grpcEndpoint transport', () => {
  test.each([
    ['no transport', undefined, NativeGrpcEndpoint],
    ["'native'", 'native', NativeGrpcEndpoint],
    ["'grpc-js'", 'grpc-js', GrpcEndpoint],
  ] as const)('%s makes a %O', async (_name, transport, kind) => {
    const ep = grpcEndpoint('127.0.0.1:1', { credentials: insecure, transport });
    try {
      expect(ep).toBeInstanceOf(kind);
    } finally {
      await ep.close({ graceMs: 0 });
    }
  });

  test('a transport it does not know is refused, naming the option and the choices', () => {
    expect(() => grpcEndpoint('127.0.0.1:1', { credentials: insecure, transport: 'quic' as never })).toThrow(
      expect.objectContaining({ where: 'grpcEndpoint', option: 'transport', value: 'quic' }),
    );
    expect(() => grpcEndpoint('127.0.0.1:1', { credentials: insecure, transport: 'quic' as never })).toThrow(
      /'native' \(the default\) or 'grpc-js'/,
    );
  });

  test("each endpoint class refuses the other transport's name", () => {
    expect(() => nativeGrpcEndpoint('127.0.0.1:1', { credentials: insecure, transport: 'grpc-js' })).toThrow(
      ConfigError,
    );
    expect(() => new GrpcEndpoint('127.0.0.1:1', { credentials: insecure, transport: 'native' })).toThrow(
      expect.objectContaining({ where: 'grpcEndpoint', option: 'transport', value: 'native' }),
    );
  });

  test("the native endpoint's errors name grpcEndpoint when it was made by it", () => {
    expect(() => grpcEndpoint('127.0.0.1:1', { credentials: insecure, closeGraceMs: -1 })).toThrow(
      expect.objectContaining({ where: 'grpcEndpoint', option: 'closeGraceMs' }),
    );
  });
});
