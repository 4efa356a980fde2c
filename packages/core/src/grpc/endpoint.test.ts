// Why an endpoint is not ready: grpcEndpoint learns grpc-js's last
// connection error and publishes `failed` together with it. Real sockets on
// loopback: a port nobody listens on, and a real grpc-js echo server.
import { createServer } from 'node:net';
import { pickHosts, startEchoServer } from '@grpc-tower/testing';
import { firstValueFrom, filter } from 'rxjs';
import { describe, expect, test } from 'vitest';
import { ConfigError } from '../errors.js';
import { connectionErrorOf, grpcEndpoint } from './endpoint.js';

/** A port on `host` that nothing listens on (bound, read, released). */
async function closedPort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('connectionErrorOf', () => {
  test.each([
    [
      "grpc-js's no-connection status",
      'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.9:50051. Resolution note: ',
      'connect ECONNREFUSED 127.0.0.9:50051',
    ],
    [
      'an OpenSSL error',
      'No connection established. Last error: 807C8BD9F17F0000:error:0A00010B:SSL routines:ssl3_get_record:' +
        'wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:. Resolution note: ',
      'TLS error: wrong version number (SSL routines:ssl3_get_record)',
    ],
    ['details of another shape, as they are', 'Connection dropped', 'Connection dropped'],
    [
      'an empty reason keeps the details',
      'No connection established. Last error: ',
      'No connection established. Last error: ',
    ],
  ])('%s', (_name, details, reason) => {
    expect(connectionErrorOf(details)).toBe(reason);
  });
});

describe('lastError', () => {
  test('an endpoint whose server refuses connections is failed with the connection error, from the first failure', async () => {
    const [host] = pickHosts(1) as [string];
    const port = await closedPort(host);
    const ep = grpcEndpoint(`${host}:${port}`);
    try {
      expect(ep.lastError).toBeUndefined();
      await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
      // published together: whoever sees `failed` can say why
      expect(ep.lastError).toBe(`connect ECONNREFUSED ${host}:${port}`);
    } finally {
      await ep.close({ graceMs: 0 });
    }
  });

  test('an endpoint that connects has no error and its server sees no call but ours', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host });
    const ep = grpcEndpoint(server.address);
    try {
      await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'ready')));
      expect(ep.lastError).toBeUndefined();
      expect(server.calls.total).toBe(0);
    } finally {
      await ep.close({ graceMs: 0 });
      await server.stop(0);
    }
  });
});

test('an authority or user-agent option that is not a string is refused, naming it', () => {
  expect(() =>
    grpcEndpoint('127.0.0.1:1', { channelOptions: { 'grpc.default_authority': 5 } as never }),
  ).toThrow(/channelOptions\.grpc\.default_authority.*a string/);
  expect(() =>
    grpcEndpoint('127.0.0.1:1', { channelOptions: { 'grpc.primary_user_agent': 1 } as never }),
  ).toThrow(ConfigError);
});
