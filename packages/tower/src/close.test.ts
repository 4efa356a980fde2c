// Closing towerChannel gracefully, against real grpc-js echo servers on
// distinct 127.0.0.x hosts: calls in flight (unary, server streams, calls
// waiting for an endpoint, retries between attempts) finish after close();
// new calls fail at once; after the grace time the rest end with their own
// error; nothing is left behind, and a process exits by itself.
import * as grpc from '@grpc/grpc-js';
import { type Layer, Status, type Change } from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import type { DiscoveredAddress } from '@grpc-tower/discover';
import {
  type EchoProtoClient,
  type EchoReply,
  type EchoServer,
  activeHandles,
  createEchoClient,
  expectNoLeaks,
  loadEchoPackage,
  pickHosts,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
} from '@grpc-tower/testing';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import type { TowerOptions } from './channel.js';
import { overTransport } from './test/transport.js';
import { runCloseChild } from './test/run-close-child.js';

const insecure = grpc.credentials.createInsecure();
const { EchoService } = loadEchoPackage();

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function servers(count: number): Promise<EchoServer[]> {
  const started = await Promise.all(
    pickHosts(count).map((host, i) => startEchoServer({ host, name: `s${i}` })),
  );
  cleanups.push(() => Promise.all(started.map((s) => s.stop(100))));
  return started;
}

function channelOver(transport: TestTransport, target: string, options: TowerOptions = {}) {
  const channel = overTransport(transport).towerChannel(target, insecure, {
    services: [EchoService],
    ...options,
  });
  const client = createEchoClient(target, { channelOverride: channel });
  cleanups.push(() => channel.closeGracefully({ graceMs: 0 }));
  return { channel, client };
}

type Outcome = { ok: true; reply: EchoReply } | { ok: false; code: number; details: string };

function unary(client: EchoProtoClient, message: string, delayMs = 0): Promise<Outcome> {
  return new Promise((resolve) => {
    client.Unary({ message, delayMs }, new grpc.Metadata(), {}, (err, reply) => {
      if (err === null && reply !== undefined) resolve({ ok: true, reply });
      else resolve({ ok: false, code: err?.code ?? -1, details: err?.details ?? '' });
    });
  });
}

function serverStream(client: EchoProtoClient, count: number, delayMs: number): Promise<Outcome[]> {
  return new Promise((resolve) => {
    const out: Outcome[] = [];
    const call = client.ServerStream({ message: 'tick', count, delayMs });
    call.on('data', (reply: EchoReply) => out.push({ ok: true, reply }));
    call.on('error', (err: grpc.ServiceError) => {
      out.push({ ok: false, code: err.code, details: err.details });
      resolve(out);
    });
    call.on('end', () => resolve(out));
  });
}

describe.each(TRANSPORTS)('towerChannel close() over the %s transport', (transport) => {
  test('a unary call and a server stream in flight finish OK; new calls fail at once; nothing is left', async () => {
    const before = activeHandles();
    const [server] = await servers(1);
    const target = `ipv4:${server?.address}`;
    const { channel, client } = channelOver(transport, target);
    expect((await unary(client, 'warm')).ok).toBe(true);
    const call = unary(client, 'in flight', 300);
    const stream = serverStream(client, 4, 80);
    await expect.poll(() => channel.activeCalls).toBe(2);
    client.close();
    expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.SHUTDOWN);
    const refused = await unary(client, 'after close');
    expect(refused).toEqual({ ok: false, code: Status.UNAVAILABLE, details: `channel ${target} is closing` });
    expect(channel.activeCalls).toBe(2);
    expect(await call).toMatchObject({ ok: true, reply: { message: 'in flight' } });
    const replies = await stream;
    expect(replies.map((r) => (r.ok ? r.reply.index : `failed ${r.details}`))).toEqual([0, 1, 2, 3]);
    await channel.closeGracefully();
    await server?.stop(100);
    await expectNoLeaks(before, { settleMs: 3_000 });
  });

  test('a call waiting for an endpoint reaches a server discovered after close()', async () => {
    const [server] = await servers(1);
    const discovery = new Subject<Change<string, DiscoveredAddress>>();
    const { channel, client } = channelOver(transport, 'ipv4:127.0.0.1:1', {
      discovery,
      balancer: { failFastMs: 20_000 },
    });
    const waiting = unary(client, 'patient');
    await expect.poll(() => channel.activeCalls).toBe(1);
    await new Promise((resolve) => setImmediate(resolve));
    channel.close();
    expect((await unary(client, 'late')).ok).toBe(false);
    const address = server?.address as string;
    discovery.next({ type: 'insert', key: address, endpoint: { address } });
    expect(await waiting).toMatchObject({ ok: true, reply: { message: 'patient', server: 's0' } });
    await channel.closeGracefully();
    expect(server?.calls.total).toBe(1);
  });

  test('a retry between its attempts at close() still finds the balancer and finishes OK', async () => {
    const [server] = await servers(1);
    const target = `ipv4:${server?.address}`;
    const seen: string[] = [];
    let closeNow: (() => void) | undefined;
    // one run per attempt: closes the channel the moment the first attempt fails
    const attempts: Layer<GrpcRequest, GrpcResponse> = (inner) => ({
      call: (req, ctx) => {
        seen.push('attempt');
        return inner.call(req, ctx).then(
          (res) => {
            seen.push('attempt OK');
            return res;
          },
          (err: unknown) => {
            seen.push('attempt failed');
            closeNow?.();
            closeNow = undefined;
            throw err;
          },
        );
      },
    });
    const { channel, client } = channelOver(transport, target, {
      retry: { maxAttempts: 3, initialBackoffMs: 300, maxBackoffMs: 300 },
      layers: { inner: [attempts] },
    });
    expect((await unary(client, 'warm')).ok).toBe(true);
    seen.length = 0;
    closeNow = () => {
      channel.close();
      seen.push('closed');
    };
    server?.failNext(1, Status.UNAVAILABLE, 'try again');
    const retried = await unary(client, 'retried');
    expect(retried).toMatchObject({ ok: true, reply: { message: 'retried' } });
    expect(seen).toEqual(['attempt', 'attempt failed', 'closed', 'attempt', 'attempt OK']);
    await channel.closeGracefully();
  });

  test('when the grace time runs out the calls left end UNAVAILABLE saying so; nothing is left', async () => {
    const before = activeHandles();
    const [server] = await servers(1);
    const target = `ipv4:${server?.address}`;
    const { channel, client } = channelOver(transport, target, { closeGraceMs: 200 });
    const quick = unary(client, 'quick', 50);
    const slow = [unary(client, 'slow', 10_000), unary(client, 'slow', 10_000)];
    const stream = serverStream(client, 100, 100);
    await expect.poll(() => channel.activeCalls).toBe(4);
    const closed = channel.closeGracefully();
    expect(await quick).toMatchObject({ ok: true });
    const expired = {
      ok: false,
      code: Status.UNAVAILABLE,
      details: `channel ${target} closed: the 200 ms grace time ran out`,
    };
    expect(await Promise.all(slow)).toEqual([expired, expired]);
    const ticks = await stream;
    expect(ticks.at(-1)).toEqual(expired);
    expect(ticks.length).toBeGreaterThan(1);
    await closed;
    expect(channel.activeCalls).toBe(0);
    await server?.stop(100);
    await expectNoLeaks(before, { settleMs: 3_000 });
  });
});

describe.each(TRANSPORTS)('a process that closes its channel over the %s transport', (transport) => {
  test('exits by itself once its slow call has ended, the call OK', async () => {
    const [server] = await servers(1);
    const { exit, events, stderr } = await runCloseChild(transport, server?.address as string, 600);
    expect(exit, stderr).toEqual({ code: 0, signal: null });
    expect(events.map((e) => e.event)).toEqual(['closed', 'call', 'exit']);
    expect(events[0]).toMatchObject({ activeCalls: 1 });
    expect(events[1]).toMatchObject({ ok: true, message: 'slow' });
    expect(server?.calls.total).toBe(1);
  });
});
