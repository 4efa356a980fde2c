import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEchoClient, type EchoProtoClient, type EchoReply, type EchoRequest } from './echo.js';
import { activeHandles, expectNoLeaks, pickHosts } from './leaks.js';
import { type EchoServer, encodeRpcStatus, startEchoServer } from './server.js';
import { callbackOutcome, streamOutcome } from './test-helpers.js';

const unary = (client: EchoProtoClient, request: EchoRequest, metadata = new grpc.Metadata(), options = {}) =>
  callbackOutcome<EchoReply>((cb) => client.Unary(request, metadata, options, cb));

const clientStream = (client: EchoProtoClient, requests: EchoRequest[], metadata = new grpc.Metadata()) =>
  callbackOutcome<EchoReply>((cb) => {
    const call = client.ClientStream(metadata, {}, cb);
    for (const request of requests) call.write(request);
    call.end();
    return call;
  });

describe('startEchoServer, proto-loader client', () => {
  let server: EchoServer;
  let client: EchoProtoClient;

  beforeAll(async () => {
    const [host] = pickHosts(1);
    server = await startEchoServer({ host: host!, name: 'echo-a' });
    client = createEchoClient(server.address);
  });

  afterAll(async () => {
    client.close();
    await server.stop(1000);
  });

  afterEach(() => {
    server.setLatency(0);
    server.failNext(0, 0);
  });

  it('binds the host it was given and names itself', () => {
    expect(server.address).toBe(`${server.host}:${server.port}`);
    expect(server.port).toBeGreaterThan(0);
    expect(server.name).toBe('echo-a');
  });

  it('echoes a unary call', async () => {
    const out = await unary(client, { message: 'hello', payload: Buffer.from([1, 2, 3]) });
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.replies).toHaveLength(1);
    expect(out.replies[0]).toMatchObject({ message: 'hello', server: 'echo-a', index: 0 });
    expect([...out.replies[0]!.payload]).toEqual([1, 2, 3]);
  });

  it('streams count replies from a server-streaming call', async () => {
    const out = await streamOutcome(client.ServerStream({ message: 's', count: 4 }));
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.replies.map((r) => r.index)).toEqual([0, 1, 2, 3]);
    expect(out.replies.every((r) => r.message === 's' && r.server === 'echo-a')).toBe(true);
  });

  it('answers a client-streaming call once with what it received', async () => {
    const out = await clientStream(client, [
      { message: 'a', payload: Buffer.from('x') },
      { message: 'b', payload: Buffer.from('y') },
      { message: 'c' },
    ]);
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.replies[0]).toMatchObject({ message: 'a,b,c', received: 3, server: 'echo-a' });
    expect(out.replies[0]!.payload.toString()).toBe('xy');
  });

  it('echoes each bidi message as it arrives and ends when the client half-closes', async () => {
    const call = client.Bidi();
    const outcome = streamOutcome(call);
    const replies: EchoReply[] = [];
    for (const message of ['one', 'two', 'three']) {
      // each reply arrives before the next message is sent
      const next = new Promise<EchoReply>((resolve) => call.once('data', resolve));
      call.write({ message });
      replies.push(await next);
    }
    call.end();
    const out = await outcome;
    expect(out.status.code).toBe(grpc.status.OK);
    expect(replies.map((r) => [r.message, r.index])).toEqual([
      ['one', 0],
      ['two', 1],
      ['three', 2],
    ]);
  });

  it('fails with fail_code, details, x-fail-reason and status details', async () => {
    const out = await unary(client, { failCode: grpc.status.RESOURCE_EXHAUSTED, failDetails: 'too much' });
    expect(out.status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(out.status.details).toBe('too much');
    expect(out.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(out.status.metadata.get('x-fail-reason')).toEqual(['too much']);
    const details = out.status.metadata.get('grpc-status-details-bin');
    expect(details).toHaveLength(1);
    expect(Buffer.compare(details[0] as Buffer, encodeRpcStatus(8, 'too much'))).toBe(0);
  });

  it('echoes x- metadata into headers and <key>-trailer trailers', async () => {
    const md = new grpc.Metadata();
    md.set('x-trace', 'abc');
    md.set('x-blob-bin', Buffer.from([9, 8]));
    md.set('other', 'not echoed');
    for (const out of [
      await unary(client, { message: 'm', echoMetadata: true }, md),
      await streamOutcome(client.ServerStream({ count: 1, echoMetadata: true }, md)),
      await clientStream(client, [{ echoMetadata: true }], md),
    ]) {
      expect(out.status.code).toBe(grpc.status.OK);
      expect(out.headers?.get('x-trace')).toEqual(['abc']);
      expect(out.headers?.get('x-blob-bin')).toEqual([Buffer.from([9, 8])]);
      expect(out.headers?.get('other')).toEqual([]);
      expect(out.status.metadata.get('x-trace-trailer')).toEqual(['abc']);
      expect(out.status.metadata.get('x-blob-trailer-bin')).toEqual([Buffer.from([9, 8])]);
    }
    const plain = await unary(client, { message: 'm' }, md);
    expect(plain.headers?.get('x-trace')).toEqual([]);
  });

  it('sends headers, then fails, on headers_then_fail', async () => {
    const md = new grpc.Metadata();
    md.set('x-id', '7');
    const out = await streamOutcome(
      client.ServerStream({ count: 2, headersThenFail: grpc.status.ABORTED, echoMetadata: true }, md),
    );
    expect(out.headers?.get('x-id')).toEqual(['7']);
    expect(out.replies.map((r) => r.index)).toEqual([0, 1]);
    expect(out.status.code).toBe(grpc.status.ABORTED);

    const bidi = client.Bidi(md);
    const bidiOut = streamOutcome(bidi);
    bidi.write({ message: 'ok' });
    bidi.write({ headersThenFail: grpc.status.DATA_LOSS, failDetails: 'gone' });
    const b = await bidiOut;
    expect(b.headers).toBeDefined();
    expect(b.replies.map((r) => r.message)).toEqual(['ok']);
    expect(b.status.code).toBe(grpc.status.DATA_LOSS);
    expect(b.status.details).toBe('gone');
  });

  it('fails the next n calls of any kind after failNext, and counts calls', async () => {
    const before = server.calls;
    server.failNext(2, grpc.status.UNAVAILABLE, 'draining');
    const first = await unary(client, { message: '1' });
    const second = await streamOutcome(client.ServerStream({ count: 1 }));
    const third = await unary(client, { message: '3' });
    expect(first.status).toMatchObject({ code: grpc.status.UNAVAILABLE, details: 'draining' });
    expect(first.status.metadata.get('x-fail-reason')).toEqual(['draining']);
    expect(second.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(third.status.code).toBe(grpc.status.OK);
    const after = server.calls;
    expect(after.total - before.total).toBe(3);
    expect(after.byMethod.Unary - before.byMethod.Unary).toBe(2);
    expect(after.byMethod.ServerStream - before.byMethod.ServerStream).toBe(1);
  });

  it('adds server-wide latency, and stops its timers when a call is cancelled', async () => {
    await unary(client, { message: 'warm' });
    const before = activeHandles();
    server.setLatency(60_000);
    const slow = await unary(client, { message: 'slow' }, new grpc.Metadata(), {
      deadline: Date.now() + 100,
    });
    expect(slow.status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const stream = client.ServerStream({ count: 3 });
    const streamed = streamOutcome(stream);
    setTimeout(() => stream.cancel(), 50);
    expect((await streamed).status.code).toBe(grpc.status.CANCELLED);
    await expectNoLeaks(before, { settleMs: 2000 });
    server.setLatency(0);
    expect((await unary(client, { message: 'fast' })).status.code).toBe(grpc.status.OK);
  });

  it('waits delay_ms per request', async () => {
    const out = await unary(client, { delayMs: 60_000 }, new grpc.Metadata(), { deadline: Date.now() + 100 });
    expect(out.status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const ok = await unary(client, { delayMs: 5 }, new grpc.Metadata(), { deadline: Date.now() + 20_000 });
    expect(ok.status.code).toBe(grpc.status.OK);
  });

  it('carries a 10 MB payload both ways', async () => {
    const payload = Buffer.alloc(10 * 1024 * 1024, 7);
    const out = await unary(client, { payload });
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.replies[0]!.payload.length).toBe(payload.length);
    expect(Buffer.compare(out.replies[0]!.payload, payload)).toBe(0);
  });
});

describe('startEchoServer lifecycle', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it('serves grpc.health.v1 and switches status with setServing', async () => {
    const [host] = pickHosts(1);
    const server = await startEchoServer({ host: host!, health: true });
    cleanup.push(() => server.stop(1000));
    const def = protoLoader.loadSync(healthProtoPath, { keepCase: true, enums: String, defaults: true });
    const Health = grpc.loadPackageDefinition(def).grpc as grpc.GrpcObject;
    const HealthClient = (Health.health as grpc.GrpcObject).v1 as grpc.GrpcObject;
    const Ctor = HealthClient.Health as grpc.ServiceClientConstructor;
    const health = new Ctor(server.address, grpc.credentials.createInsecure());
    cleanup.push(() => health.close());
    const check = (service: string) =>
      callbackOutcome<{ status: string }>((cb) => {
        const method = health.Check as (
          req: { service: string },
          cb: (err: grpc.ServiceError | null, reply?: { status: string }) => void,
        ) => grpc.ClientUnaryCall;
        return method.call(health, { service }, cb);
      });
    expect((await check('')).replies[0]?.status).toBe('SERVING');
    expect((await check('grpctower.testing.Echo')).replies[0]?.status).toBe('SERVING');
    server.setServing('NOT_SERVING', 'grpctower.testing.Echo');
    expect((await check('grpctower.testing.Echo')).replies[0]?.status).toBe('NOT_SERVING');
    expect((await check('')).replies[0]?.status).toBe('SERVING');
    expect(server.calls.total).toBe(0);
  });

  it('refuses setServing without health', async () => {
    const [host] = pickHosts(1);
    const server = await startEchoServer({ host: host! });
    cleanup.push(() => server.stop(1000));
    expect(() => server.setServing('NOT_SERVING')).toThrow(/health/);
  });

  it('rejects with the address when the port is taken', async () => {
    const [host] = pickHosts(1);
    const first = await startEchoServer({ host: host! });
    cleanup.push(() => first.stop(1000));
    await expect(startEchoServer({ host: host!, port: first.port })).rejects.toThrow(first.address);
  });

  it('stop() lets a call in flight finish; kill() cuts one off', async () => {
    const before = activeHandles();
    const [a, b] = pickHosts(2);
    const graceful = await startEchoServer({ host: a! });
    const killed = await startEchoServer({ host: b! });
    const ca = createEchoClient(graceful.address);
    const cb = createEchoClient(killed.address);
    cleanup.push(
      () => ca.close(),
      () => cb.close(),
    );
    await unary(ca, { message: 'warm' });
    await unary(cb, { message: 'warm' });
    const inFlight = streamOutcome(ca.ServerStream({ count: 2, delayMs: 100 }));
    const cut = streamOutcome(cb.ServerStream({ count: 2, delayMs: 60_000 }));
    await new Promise((resolve) => setTimeout(resolve, 30));
    const stopped = graceful.stop(10_000);
    killed.kill();
    const [done, dropped] = await Promise.all([inFlight, cut]);
    await stopped;
    expect(done.status.code).toBe(grpc.status.OK);
    expect(done.replies).toHaveLength(2);
    expect(dropped.status.code).not.toBe(grpc.status.OK);
    expect((await unary(ca, { message: 'after' })).status.code).toBe(grpc.status.UNAVAILABLE);
    ca.close();
    cb.close();
    await expectNoLeaks(before, { settleMs: 3000 });
  });

  it('validates its options', async () => {
    await expect(startEchoServer({ port: -1 })).rejects.toThrow(RangeError);
    await expect(startEchoServer({ latencyMs: Number.NaN })).rejects.toThrow(RangeError);
  });
});
