// The one-call channel's suite (channel.test.ts), run with
// `transport: 'native'` on every channel it makes.
import * as grpc from '@grpc/grpc-js';
import { ConfigError } from '@grpc-tower/core';
import { expect, test } from 'vitest';
import { towerChannel, useTransport } from './test/transport.js';

useTransport('native');
await import('./channel.test.js');

test('the suite above ran over the native transport (which refuses keys grpc-js would ignore)', () => {
  expect(() =>
    towerChannel('ipv4:127.0.0.1:1', grpc.credentials.createInsecure(), {
      channelOptions: { 'grpc.not_an_option': 1 },
    }),
  ).toThrow(ConfigError);
});
