// The channel's behaviour suite (channel.test.ts), run over the native
// transport: the same tests, with nativeGrpcEndpoint as every endpoint.
import { insecure } from '@grpc-tower/testing';
import { expect, test } from 'vitest';
import { NativeGrpcEndpoint } from './native/endpoint.js';
import { grpcEndpoint, useTransport } from './test/transport.js';

useTransport('native');
await import('./channel.test.js');

test('the suite above ran over native endpoints', async () => {
  const endpoint = grpcEndpoint('127.0.0.1:1', { credentials: insecure });
  expect(endpoint).toBeInstanceOf(NativeGrpcEndpoint);
  await endpoint.close({ graceMs: 0 });
});
