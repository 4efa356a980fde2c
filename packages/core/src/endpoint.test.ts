// DelegatingEndpoint, the base of endpoint wrappers: what it forwards to a
// real gRPC endpoint, over each transport, and what a subclass overrides.
import {
  GeneratedEchoReply,
  GeneratedEchoRequest,
  TRANSPORTS,
  closedPort,
  insecure,
  pickHosts,
  startEchoServer,
} from '@grpc-tower/testing';
import { firstValueFrom, filter } from 'rxjs';
import { describe, expect, test } from 'vitest';
import { type CallContext, newContext } from './context.js';
import { DelegatingEndpoint, type Endpoint, type Readiness } from './endpoint.js';
import { ConfigError } from './errors.js';
import { grpcEndpoint } from './grpc/grpc-endpoint.js';
import { grpcRequest } from './grpc/test/request.js';
import type { GrpcRequest, GrpcResponse } from './grpc/types.js';

const UNARY = '/grpctower.testing.Echo/Unary';

/** One unary echo call through `ep`, asking the server to wait `delayMs` first; the reply's message. */
async function echo(ep: Endpoint<GrpcRequest, GrpcResponse>, text: string, delayMs = 0): Promise<string> {
  const scope = newContext({ timeoutMs: 10_000 });
  try {
    const body = Buffer.from(
      GeneratedEchoRequest.encode(GeneratedEchoRequest.fromPartial({ message: text, delayMs })).finish(),
    );
    const res = await ep.call(grpcRequest(UNARY, { messages: [body] }), scope.context);
    const [message] = res.unary?.messages ?? [];
    if (message === undefined) throw new Error(`no reply message (status ${res.unary?.status.code})`);
    return GeneratedEchoReply.decode(message).message;
  } finally {
    scope.release();
  }
}

const readinessOf = (ep: Endpoint<unknown, unknown>, wanted: Readiness): Promise<unknown> =>
  firstValueFrom(ep.readiness$.pipe(filter((r) => r === wanted)));

/** Counts the calls it passes on: a wrapper that observes and changes nothing else. */
class Counting<Req, Res> extends DelegatingEndpoint<Req, Res> {
  calls = 0;
  override call(req: Req, ctx: CallContext): Promise<Res> {
    this.calls++;
    return this.inner.call(req, ctx);
  }
}

test('wrapping something that is not an endpoint throws ConfigError naming the caller', () => {
  expect(() => new DelegatingEndpoint(undefined as never, 'myWrapper')).toThrow(ConfigError);
  expect(() => new DelegatingEndpoint({ address: '127.0.0.1:1' } as never, 'myWrapper')).toThrow(
    /myWrapper.*endpoint/,
  );
});

describe.each(TRANSPORTS)('over the %s transport', (transport) => {
  test('address, metadata, readiness, calls, pending and close are the inner endpoint’s', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host });
    const inner = grpcEndpoint(server.address, {
      credentials: insecure,
      transport,
      weight: 2,
      zone: 'zone-a',
      forZones: ['zone-a', 'zone-b'],
      priority: 1,
      group: 'blue',
      groupWeight: 3,
    });
    const ep = new DelegatingEndpoint(inner);
    try {
      expect(ep.inner).toBe(inner);
      expect(ep.address).toBe(server.address);
      expect(ep.weight).toBe(2);
      expect(ep.zone).toBe('zone-a');
      expect(ep.forZones).toEqual(['zone-a', 'zone-b']);
      expect([ep.priority, ep.group, ep.groupWeight]).toEqual([1, 'blue', 3]);
      await readinessOf(ep, 'ready');
      expect(ep.readiness).toBe('ready');
      expect(ep.connected).toBe(true);
      expect(ep.lastError).toBeUndefined();
      expect(ep.reconnect()).toBeUndefined(); // ready: nothing to start

      const slow = echo(ep, 'slow', 300);
      await expect.poll(() => server.calls.total).toBe(1);
      expect(ep.pending).toBe(1);
      expect(inner.pending).toBe(1);
      await expect(slow).resolves.toBe('slow');
      expect(ep.pending).toBe(0);

      const closed = readinessOf(ep, 'closed');
      await ep.close({ graceMs: 0 });
      await closed;
      expect(inner.readiness).toBe('closed');
      expect(ep.readiness).toBe('closed');
    } finally {
      await inner.close({ graceMs: 0 });
      await server.stop(0);
    }
  });

  test('a server that refuses connections: failed, with the inner endpoint’s error, and reconnect() is the inner one’s', async () => {
    const [host] = pickHosts(1) as [string];
    const port = await closedPort(host);
    const inner = grpcEndpoint(`${host}:${port}`, { credentials: insecure, transport });
    const ep = new DelegatingEndpoint(inner);
    try {
      expect(ep.weight).toBeUndefined();
      expect(ep.zone).toBeUndefined();
      expect(ep.forZones).toBeUndefined();
      expect(ep.priority).toBeUndefined();
      await readinessOf(ep, 'failed');
      expect(ep.connected).toBe(false);
      expect(ep.lastError).toBe(`connect ECONNREFUSED ${host}:${port}`);
      const attempt = ep.reconnect();
      expect(attempt).toBeInstanceOf(Promise);
      await attempt;
      // the attempt failed as the first did, and says so through the wrapper
      expect(ep.lastError).toBe(`connect ECONNREFUSED ${host}:${port}`);
    } finally {
      await ep.close({ graceMs: 0 });
    }
  });

  test('a subclass that overrides call alone sees every call and forwards the rest', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host });
    const ep = new Counting(grpcEndpoint(server.address, { credentials: insecure, transport }));
    try {
      await readinessOf(ep, 'ready');
      expect(await echo(ep, 'one')).toBe('one');
      expect(await echo(ep, 'two')).toBe('two');
      expect(ep.calls).toBe(2);
      expect(server.calls.total).toBe(2);
      expect(ep.readiness).toBe('ready');
    } finally {
      await ep.close({ graceMs: 0 });
      await server.stop(0);
    }
  });
});
