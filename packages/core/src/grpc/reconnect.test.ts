// grpcEndpoint.reconnect(): a connection attempt now, in place of the
// reconnect backoff, over both transports (the grpc-js endpoint makes it by
// moving to a new grpc-js channel, the native one by dialling at once). Real
// sockets on loopback: a port nobody listens on, then a real grpc-js echo
// server on it. The configured backoff is a minute, so only reconnect() can
// connect within a test.
import * as grpc from '@grpc/grpc-js';
import {
  closedPort,
  createEchoClient,
  insecure,
  loadEchoPackage,
  pickHosts,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
  trackResources,
} from '@grpc-tower/testing';
import { filter, firstValueFrom } from 'rxjs';
import { describe, expect, test } from 'vitest';
import { createChannel } from './channel.js';
import type { GrpcEndpointOptions } from './endpoint.js';
import { grpcEndpoint as anyEndpoint } from './grpc-endpoint.js';
import { readyRoundRobin } from './test/picker.js';

/** The endpoint would wait a minute before its own next attempt. */
const slowBackoff: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 60_000,
  'grpc.max_reconnect_backoff_ms': 120_000,
};

/** grpcEndpoint over `transport`. */
const endpointOver = (transport: TestTransport) => (address: string, options: GrpcEndpointOptions) =>
  anyEndpoint(address, { ...options, transport });

async function failedEndpoint(transport: TestTransport) {
  const grpcEndpoint = endpointOver(transport);
  const [host] = pickHosts(1) as [string];
  const port = await closedPort(host);
  const ep = grpcEndpoint(`${host}:${port}`, { credentials: insecure, channelOptions: slowBackoff });
  await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
  return { ep, host, port };
}

describe.each(TRANSPORTS)('reconnect over the %s transport', (transport) => {
  const grpcEndpoint = endpointOver(transport);

  test('refused: one attempt, shared by every caller, ends failed with the connection error; no second one in the same backoff interval', async () => {
    const { ep, host, port } = await failedEndpoint(transport);
    const seen: string[] = [];
    const sub = ep.readiness$.subscribe((r) => seen.push(r));
    try {
      const first = ep.reconnect();
      expect(first).toBeInstanceOf(Promise);
      // idempotent while it runs
      expect(ep.reconnect()).toBe(first);
      await first;
      expect(ep.readiness).toBe('failed');
      expect(ep.lastError).toBe(`connect ECONNREFUSED ${host}:${port}`);
      // the attempt showed: failed, then connecting, then failed again
      expect(seen).toEqual(['failed', 'connecting', 'failed']);
      // the schedule resumes: no other attempt on demand until its next interval
      expect(ep.reconnect()).toBeUndefined();
    } finally {
      sub.unsubscribe();
      await ep.close();
    }
  });

  test('a server that came up meanwhile: the attempt connects and calls go through', async () => {
    const { ep, host, port } = await failedEndpoint(transport);
    const server = await startEchoServer({ host, port });
    try {
      // grpc-js would not try again for a minute
      const attempt = ep.reconnect();
      expect(attempt).toBeInstanceOf(Promise);
      await attempt;
      expect(ep.readiness).toBe('ready');
      // nothing to start while connected
      expect(ep.reconnect()).toBeUndefined();
    } finally {
      await ep.close();
      await server.stop(100);
    }
  });

  test('nothing to start while connecting, or once closed', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host });
    const ep = grpcEndpoint(server.address, { credentials: insecure });
    try {
      expect(ep.readiness).toBe('connecting');
      expect(ep.reconnect()).toBeUndefined();
      await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'ready')));
      expect(ep.reconnect()).toBeUndefined();
    } finally {
      await ep.close();
      await server.stop(100);
    }
    expect(ep.reconnect()).toBeUndefined();
  });

  test('the connection a reconnect made is lost: it fails again and may reconnect at once', async () => {
    const { ep, host, port } = await failedEndpoint(transport);
    let server = await startEchoServer({ host, port });
    try {
      await ep.reconnect();
      expect(ep.readiness).toBe('ready');
      // the server goes away: the endpoint reconnects on a channel of its
      // configured backoff, which is refused
      server.kill();
      await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
      expect(ep.lastError).toBe(`connect ECONNREFUSED ${host}:${port}`);
      // that failure was not one reconnect() made: a new attempt may start at once
      server = await startEchoServer({ host, port });
      const again = ep.reconnect();
      expect(again).toBeInstanceOf(Promise);
      await again;
      expect(ep.readiness).toBe('ready');
    } finally {
      await ep.close();
      await server.stop(100);
    }
  });

  test('every channel or connection it made is closed: nothing is left alive after close', async () => {
    // a short backoff: grpc-js leaves a closed channel's backoff timer (unref'd) to run out
    const tracker = trackResources();
    try {
      const [host] = pickHosts(1) as [string];
      const port = await closedPort(host);
      const ep = grpcEndpoint(`${host}:${port}`, {
        credentials: insecure,
        channelOptions: { 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 400 },
      });
      const state = (r: string): Promise<unknown> =>
        firstValueFrom(ep.readiness$.pipe(filter((x) => x === r)));
      await state('failed');
      await ep.reconnect(); // refused, on a new channel
      let server = await startEchoServer({ host, port });
      await (ep.reconnect() ?? state('ready'));
      if (ep.readiness !== 'ready') await state('ready');
      server.kill(); // lost: another new channel
      await state('failed');
      server = await startEchoServer({ host, port });
      await (ep.reconnect() ?? state('ready'));
      if (ep.readiness !== 'ready') await state('ready');
      await ep.close();
      await server.stop(100);
      await tracker.expectNone({ settleMs: 3000 });
    } finally {
      tracker.stop();
    }
  });

  test('a call still running on the replaced channel or connection finishes OK (a server that said GOAWAY and stopped listening)', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host, latencyMs: 1_500 });
    const ep = grpcEndpoint(server.address, { credentials: insecure, channelOptions: slowBackoff });
    const picker = readyRoundRobin([ep]);
    const channel = createChannel(picker, { target: 'echo.test', services: [loadEchoPackage().EchoService] });
    const client = createEchoClient('echo.test', { channelOverride: channel });
    try {
      await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'ready')));
      const slow = new Promise<string>((resolve, reject) => {
        client.Unary({ message: 'in flight' }, new grpc.Metadata(), {}, (err, reply) => {
          if (err !== null || reply === undefined) reject(err ?? new Error('no reply'));
          else resolve(reply.message);
        });
      });
      await new Promise((resolve) => setTimeout(resolve, 100)); // the call has reached the server
      // GOAWAY to the connection (the call goes on there), no new connection accepted
      const stopped = server.stop(10_000);
      await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
      expect(ep.pending).toBe(1);
      const attempt = ep.reconnect(); // moves to a new channel while the call runs on the old one
      expect(attempt).toBeInstanceOf(Promise);
      await attempt;
      expect(ep.readiness).toBe('failed');
      await expect(slow).resolves.toBe('in flight');
      expect(ep.pending).toBe(0);
      await stopped;
    } finally {
      client.close();
      await channel.closeAsync();
    }
  });

  test('close during an attempt ends it', async () => {
    const { ep } = await failedEndpoint(transport);
    const attempt = ep.reconnect();
    expect(attempt).toBeInstanceOf(Promise);
    await ep.close();
    await attempt;
    expect(ep.readiness).toBe('closed');
  });
});
