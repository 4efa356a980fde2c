import * as grpc from '@grpc/grpc-js';
import {
  type EchoServer,
  GeneratedEchoClient,
  GeneratedEchoRequest,
  activeHandles,
  expectNoLeaks,
  insecure,
  loadEchoPackage,
  pickHosts,
  startEchoServer,
  TRANSPORTS,
  type TestTransport,
} from '@grpc-tower/testing';
import { firstValueFrom, filter as rxFilter } from 'rxjs';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ConfigError, DeadlineExceededError } from '../errors.js';
import { timeout } from '../layers/timeout/layer.js';
import { type Service, ServiceBuilder } from '../service.js';
import { Status } from '../status.js';
import { createChannel } from './channel.js';
import { GrpcEndpoint, type GrpcEndpointOptions } from './endpoint.js';
import { grpcEndpoint } from './grpc-endpoint.js';
import { NativeGrpcEndpoint } from './native/endpoint.js';
import { ENDPOINT_METADATA_KEY, type GrpcRequest, type GrpcResponse } from './types.js';
import { readyRoundRobin } from './test/picker.js';

const { EchoClient: EchoClientCtor, EchoService } = loadEchoPackage();
// biome-ignore lint/suspicious/noExplicitAny: proto-loader clients and messages are untyped
type Loose = (...args: any[]) => any;
type Client = grpc.Client & Record<'Unary' | 'ServerStream' | 'ClientStream' | 'Bidi', Loose>;
const EchoClient = EchoClientCtor as unknown as new (
  target: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => Client;
// biome-ignore lint/suspicious/noExplicitAny: proto-loader messages are untyped
type Reply = any;

const bigMessages: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
};

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setupOver(transport: TestTransport, count: number, opts: { services?: boolean }) {
  const hosts = pickHosts(count);
  const servers: EchoServer[] = [];
  for (const [i, host] of hosts.entries()) servers.push(await startEchoServer({ host, name: `s${i}` }));
  const endpoints = servers.map((s) =>
    grpcEndpoint(s.address, { credentials: insecure, channelOptions: bigMessages, transport }),
  );
  await Promise.all(endpoints.map((e) => firstValueFrom(e.readiness$.pipe(rxFilter((r) => r === 'ready')))));
  const picker = readyRoundRobin(endpoints);
  const channel = createChannel(picker, {
    target: 'echo.test',
    ...(opts.services === false ? {} : { services: [EchoService] }),
  });
  const client = new EchoClient('echo.test', grpc.credentials.createInsecure(), { channelOverride: channel });
  cleanups.push(async () => {
    client.close();
    await channel.closeAsync();
    await Promise.all(servers.map((s) => s.stop(100)));
  });
  return { servers, endpoints, channel, client };
}

const unary = (client: Client, req: object, md = new grpc.Metadata(), opts: grpc.CallOptions = {}) =>
  new Promise<{ reply: Reply; headers: grpc.Metadata; trailers: grpc.StatusObject }>((resolve, reject) => {
    let headers = new grpc.Metadata();
    const call = client.Unary(req, md, opts, (err: grpc.ServiceError | null, reply: Reply) => {
      if (err) reject(err);
      else call.on('status', (trailers: grpc.StatusObject) => resolve({ reply, headers, trailers }));
    });
    call.on('metadata', (m: grpc.Metadata) => {
      headers = m;
    });
  });

const collect = <T>(stream: NodeJS.ReadableStream): Promise<T[]> =>
  new Promise((resolve, reject) => {
    const out: T[] = [];
    stream.on('data', (d: T) => out.push(d));
    stream.on('error', reject);
    stream.on('end', () => resolve(out));
  });

// what needs no endpoint is the same whatever the transport
describe('createChannel with no endpoint', () => {
  test('a deadline that passes while the stack holds the call before any endpoint says so', async () => {
    // a stack that keeps every call until it is told to stop, as a balancer with nothing ready does
    const waiting: Service<GrpcRequest, GrpcResponse> = {
      call: (_req, ctx) =>
        new Promise<GrpcResponse>((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
        }),
    };
    const channel = createChannel(waiting, { target: 'held', services: [EchoService] });
    const client = new EchoClient('held', grpc.credentials.createInsecure(), { channelOverride: channel });
    cleanups.push(async () => {
      client.close();
      await channel.closeAsync();
    });
    const err = await unary(client, { message: 'x' }, new grpc.Metadata(), {
      deadline: Date.now() + 100,
    }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(err?.details).toMatch(/before the call reached a server, waiting for an endpoint/);
    expect(channel.activeCalls).toBe(0);
  });

  test('the options that named them apart from the stack are refused with a named error', () => {
    const picker = readyRoundRobin<GrpcRequest, GrpcResponse>([]);
    for (const option of ['readiness', 'owns'] as const) {
      expect(() => createChannel(picker, { target: 'echo', [option]: picker } as never)).toThrow(ConfigError);
      expect(() => createChannel(picker, { target: 'echo', [option]: picker } as never)).toThrow(
        new RegExp(`createChannel.*${option}.*ServiceBuilder\\.service`),
      );
    }
  });
});

// every behaviour below is meant to be the same over both transports
describe.each(TRANSPORTS)('over the %s transport', (transport) => {
  const setup = (count = 1, opts: { services?: boolean } = {}) => setupOver(transport, count, opts);
  const endpointAt = (address: string, options: GrpcEndpointOptions) =>
    grpcEndpoint(address, { ...options, transport });
  /** A client of a channel whose one endpoint never connects: nothing listens on its address. */
  const nowhere = () => {
    const [host] = pickHosts(1);
    const channel = createChannel(readyRoundRobin([endpointAt(`${host}:1`, { credentials: insecure })]), {
      target: 'nowhere',
    });
    const client = new EchoClient('nowhere', grpc.credentials.createInsecure(), { channelOverride: channel });
    cleanups.push(async () => {
      client.close();
      await channel.closeAsync();
    });
    return { client, channel };
  };

  test('the endpoints are of this transport', async () => {
    const { endpoints } = await setup(1);
    expect(endpoints[0]).toBeInstanceOf(transport === 'native' ? NativeGrpcEndpoint : GrpcEndpoint);
  });

  describe.each([
    ['with service definitions', true],
    ['without service definitions', false],
  ])('createChannel %s: all four call types with a proto-loader client', (_name, services) => {
    test('unary', async () => {
      const { client } = await setup(1, { services });
      const { reply } = await unary(client, { message: 'hello', payload: Buffer.from([1, 2, 3]) });
      expect(reply.message).toBe('hello');
      expect(Buffer.from(reply.payload)).toEqual(Buffer.from([1, 2, 3]));
      expect(reply.server).toBe('s0');
    });

    test('server streaming', async () => {
      const { client } = await setup(1, { services });
      const replies = await collect<Reply>(client.ServerStream({ message: 'x', count: 5 }));
      expect(replies.map((r) => r.index)).toEqual([0, 1, 2, 3, 4]);
    });

    test('client streaming', async () => {
      const { client } = await setup(1, { services });
      const reply = await new Promise<Reply>((resolve, reject) => {
        const call = client.ClientStream((err: Error | null, r: Reply) => (err ? reject(err) : resolve(r)));
        for (const m of ['a', 'b', 'c']) call.write({ message: m });
        call.end();
      });
      expect(reply.received).toBe(3);
      expect(reply.message).toBe('a,b,c');
    });

    test('bidi streaming, interleaved', async () => {
      const { client } = await setup(1, { services });
      const call = client.Bidi();
      const seen: string[] = [];
      await new Promise<void>((resolve, reject) => {
        call.on('data', (r: Reply) => {
          seen.push(r.message);
          if (seen.length < 4) call.write({ message: `m${seen.length}` });
          else call.end();
        });
        call.on('error', reject);
        call.on('end', resolve);
        call.write({ message: 'm0' });
      });
      expect(seen).toEqual(['m0', 'm1', 'm2', 'm3']);
    });
  });

  describe('createChannel with a ts-proto generated client', () => {
    test('all four call types', async () => {
      const { channel } = await setup(1);
      const client = new GeneratedEchoClient('echo.test', grpc.credentials.createInsecure(), {
        channelOverride: channel,
      });
      try {
        const reply = await new Promise<Reply>((resolve, reject) =>
          client.unary(
            GeneratedEchoRequest.fromPartial({ message: 'gen', payload: Buffer.from('p') }),
            (e, r) => (e ? reject(e) : resolve(r)),
          ),
        );
        expect(reply.message).toBe('gen');
        const streamed = await collect<Reply>(
          client.serverStream(GeneratedEchoRequest.fromPartial({ message: 's', count: 3 })),
        );
        expect(streamed.map((r) => r.index)).toEqual([0, 1, 2]);
        const cs = await new Promise<Reply>((resolve, reject) => {
          const call = client.clientStream((e, r) => (e ? reject(e) : resolve(r)));
          call.write(GeneratedEchoRequest.fromPartial({ message: '1' }));
          call.write(GeneratedEchoRequest.fromPartial({ message: '2' }));
          call.end();
        });
        expect(cs.message).toBe('1,2');
        const bidi = client.bidi();
        bidi.write(GeneratedEchoRequest.fromPartial({ message: 'b1' }));
        bidi.write(GeneratedEchoRequest.fromPartial({ message: 'b2' }));
        bidi.end();
        expect((await collect<Reply>(bidi)).map((r) => r.message)).toEqual(['b1', 'b2']);
      } finally {
        client.close();
      }
    });
  });

  describe('metadata, trailers and errors', () => {
    test('request metadata reaches the server; headers and trailers come back', async () => {
      const { client } = await setup(1);
      const md = new grpc.Metadata();
      md.set('x-tenant', 'acme');
      md.set('x-bin', Buffer.from([0xff, 0x00]));
      const { headers, trailers } = await unary(client, { message: 'm', echoMetadata: true }, md);
      expect(headers.get('x-tenant')).toEqual(['acme']);
      expect(trailers.metadata.get('x-tenant-trailer')).toEqual(['acme']);
      expect(trailers.code).toBe(Status.OK);
    });

    test('an error status keeps code, details, trailing metadata and binary status details, and names the endpoint', async () => {
      const { client, servers } = await setup(1);
      const err = await unary(client, {
        failCode: Status.FAILED_PRECONDITION,
        failDetails: 'not today',
      }).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code).toBe(Status.FAILED_PRECONDITION);
      expect(err?.details).toBe('not today');
      expect(err?.metadata.get('x-fail-reason')).toEqual(['not today']);
      expect(err?.metadata.get('grpc-status-details-bin')[0]).toBeInstanceOf(Buffer);
      expect(err?.metadata.get(ENDPOINT_METADATA_KEY)).toEqual([servers[0]!.address]);
    });

    test('a stream that fails after its headers reports the status to the client', async () => {
      const { client } = await setup(1);
      const err = await collect(client.ServerStream({ count: 1, headersThenFail: Status.ABORTED })).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code).toBe(Status.ABORTED);
    });
  });

  describe('deadlines and cancellation', () => {
    test('a deadline that passes while the call waits for an endpoint fails DEADLINE_EXCEEDED', async () => {
      const { client, channel } = nowhere();
      const err = await unary(client, { message: 'x' }, new grpc.Metadata(), {
        deadline: Date.now() + 150,
      }).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code).toBe(Status.DEADLINE_EXCEEDED);
      expect(err?.details).toMatch(/before the call reached a server/);
      // the picker held the call: no endpoint was ready
      expect(err?.details).toMatch(/waiting for an endpoint/);
      expect(channel.activeCalls).toBe(0);
    });

    test('the deadline holds while the server is slow', async () => {
      const { client, servers } = await setup(1);
      const err = await unary(client, { delayMs: 2_000 }, new grpc.Metadata(), {
        deadline: Date.now() + 100,
      }).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code).toBe(Status.DEADLINE_EXCEEDED);
      expect(err?.details).toMatch(new RegExp(`waiting for the response of ${servers[0]!.address}`));
      expect(err?.metadata.get(ENDPOINT_METADATA_KEY)).toEqual([servers[0]!.address]);
    });

    test('the server receives the deadline (grpc-timeout): the caller deadline, or the lower one of a timeout layer', async () => {
      const [host] = pickHosts(1);
      const seen: number[] = [];
      const server = new grpc.Server();
      server.addService(EchoService, {
        Unary: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
          const d = call.getDeadline();
          seen.push(d instanceof Date ? d.getTime() : d);
          callback(null, { message: 'ok' });
        },
      });
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (e, p) =>
          e ? reject(e) : resolve(p),
        ),
      );
      cleanups.push(() => server.forceShutdown());
      const endpoint = endpointAt(`${host}:${port}`, { credentials: insecure });
      const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
        .layer(timeout({ ms: 3_000 }))
        .service(endpoint);
      const channel = createChannel(stack, { target: 'deadlines', services: [EchoService] });
      const client = new EchoClient('deadlines', grpc.credentials.createInsecure(), {
        channelOverride: channel,
      });
      cleanups.push(async () => {
        client.close();
        await channel.closeAsync();
      });
      const before = Date.now();
      await unary(client, { message: 'a' }, new grpc.Metadata(), { deadline: before + 1_500 });
      await unary(client, { message: 'b' });
      expect(seen).toHaveLength(2);
      // the caller's deadline, sooner than the layer's (1.5 s against 3 s)
      expect(seen[0]).toBeGreaterThan(before);
      expect(seen[0]).toBeLessThan(before + 2_500);
      // no caller deadline: the timeout layer's, which the server still learns
      expect(Number.isFinite(seen[1])).toBe(true);
      expect(seen[1]).toBeGreaterThan(seen[0]!);
    });

    test('client cancel of each call type ends the call CANCELLED and frees the endpoint', async () => {
      const { client, endpoints } = await setup(1);
      // the status event carries the final code for every call type
      const cancelled = (call: grpc.ClientUnaryCall) =>
        new Promise<number>((resolve) => {
          call.on('status', (s: grpc.StatusObject) => resolve(s.code));
        });
      const u = client.Unary({ delayMs: 5_000 }, () => undefined);
      const uDone = cancelled(u);
      const s = client.ServerStream({ count: 100, delayMs: 50 });
      s.on('data', () => undefined);
      s.on('error', () => undefined);
      const sDone = cancelled(s);
      const c = client.ClientStream(() => undefined);
      c.write({ message: 'a' });
      c.on('error', () => undefined);
      const cDone = cancelled(c);
      const b = client.Bidi();
      b.on('data', () => undefined);
      b.on('error', () => undefined);
      b.write({ message: 'a' });
      const bDone = cancelled(b);
      await new Promise((r) => setTimeout(r, 100));
      u.cancel();
      s.cancel();
      c.cancel();
      b.cancel();
      expect(await Promise.all([uDone, sDone, cDone, bDone])).toEqual([
        Status.CANCELLED,
        Status.CANCELLED,
        Status.CANCELLED,
        Status.CANCELLED,
      ]);
      await expect.poll(() => endpoints[0]!.pending).toBe(0);
    });

    test('a parent server call propagates its deadline and cancellation to calls made with it', async () => {
      const { channel } = await setup(1);
      const downstream = new EchoClient('echo.test', grpc.credentials.createInsecure(), {
        channelOverride: channel,
      });
      // a front server whose handler calls the echo server through the channel, with `parent`
      const front = new grpc.Server();
      const outcomes: number[] = [];
      front.addService(EchoService, {
        Unary: (call: grpc.ServerUnaryCall<Reply, Reply>, cb: grpc.sendUnaryData<Reply>) => {
          downstream.Unary({ delayMs: 5_000 }, { parent: call }, (err: grpc.ServiceError | null) => {
            outcomes.push(err?.code ?? 0);
            cb(err, {});
          });
        },
      });
      const [host] = pickHosts(1);
      const port = await new Promise<number>((res, rej) =>
        front.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (e, p) =>
          e ? rej(e) : res(p),
        ),
      );
      const client = new EchoClient(`${host}:${port}`, grpc.credentials.createInsecure());
      cleanups.push(() => {
        client.close();
        downstream.close();
        front.forceShutdown();
      });
      const err = await unary(client, {}, new grpc.Metadata(), { deadline: Date.now() + 200 }).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code).toBe(Status.DEADLINE_EXCEEDED);
      // the downstream call ended with the parent: by its inherited deadline or the parent's cancel
      await expect.poll(() => outcomes.length).toBe(1);
      expect([Status.DEADLINE_EXCEEDED, Status.CANCELLED]).toContain(outcomes[0]);
    });

    test('abort reasons map to status codes in the stack', async () => {
      const { client } = await setup(1);
      const slow = unary(client, { delayMs: 5_000 }, new grpc.Metadata(), { deadline: Date.now() + 50 });
      await expect(slow).rejects.toMatchObject({ code: Status.DEADLINE_EXCEEDED });
      expect(new DeadlineExceededError('x').code).toBe(Status.DEADLINE_EXCEEDED);
    });
  });

  describe('size, concurrency and backpressure', () => {
    test('10 MB messages both ways, unary and bidi', async () => {
      const { client } = await setup(1);
      const payload = Buffer.alloc(10 * 1024 * 1024, 7);
      const { reply } = await unary(client, { payload });
      expect(Buffer.from(reply.payload).equals(payload)).toBe(true);
      const b = client.Bidi();
      b.write({ payload });
      b.end();
      const out = await collect<Reply>(b);
      expect(Buffer.from(out[0].payload).length).toBe(payload.length);
    });

    test('1,000 concurrent calls over three servers all complete', async () => {
      const { client, servers } = await setup(3);
      const replies = await Promise.all(
        Array.from({ length: 1_000 }, (_, i) => unary(client, { message: String(i) }).then((r) => r.reply)),
      );
      expect(replies.map((r) => r.message)).toEqual(Array.from({ length: 1_000 }, (_, i) => String(i)));
      const perServer = new Map<string, number>();
      for (const r of replies) perServer.set(r.server, (perServer.get(r.server) ?? 0) + 1);
      expect([...perServer.keys()].sort()).toEqual(servers.map((s) => s.name).sort());
    });

    test('write callbacks fire in order for a client stream (backpressure)', async () => {
      const { client } = await setup(1);
      const order: number[] = [];
      const reply = await new Promise<Reply>((resolve, reject) => {
        const call = client.ClientStream((e: Error | null, r: Reply) => (e ? reject(e) : resolve(r)));
        const payload = Buffer.alloc(64 * 1024, 1);
        let i = 0;
        const writeMore = (): void => {
          while (i < 200) {
            const n = i++;
            if (!call.write({ message: String(n), payload }, () => order.push(n))) {
              call.once('drain', writeMore);
              return;
            }
          }
          call.end();
        };
        writeMore();
      });
      expect(reply.received).toBe(200);
      expect(order).toEqual(Array.from({ length: 200 }, (_, i) => i));
    });
  });

  describe('interceptors, credentials and connectivity', () => {
    test('client interceptors still run on a client that uses the channel', async () => {
      const { channel } = await setup(1);
      const seen: string[] = [];
      const interceptor: grpc.Interceptor = (options, next) =>
        new grpc.InterceptingCall(next(options), {
          start(metadata, _listener, nextStart) {
            seen.push(`start ${options.method_definition.path}`);
            metadata.set('x-intercepted', 'yes');
            nextStart(metadata, {
              onReceiveStatus(status, nextStatus) {
                seen.push(`status ${status.code}`);
                nextStatus(status);
              },
            });
          },
        });
      const client = new EchoClient('echo.test', grpc.credentials.createInsecure(), {
        channelOverride: channel,
        interceptors: [interceptor],
      });
      cleanups.push(() => client.close());
      const { headers } = await unary(client, { echoMetadata: true });
      expect(headers.get('x-intercepted')).toEqual(['yes']);
      expect(seen).toEqual(['start /grpctower.testing.Echo/Unary', 'status 0']);
    });

    test('call credentials are refused over an insecure endpoint', async () => {
      const { client } = await setup(1);
      const creds = grpc.credentials.createFromMetadataGenerator((_p, cb) => {
        const md = new grpc.Metadata();
        md.set('authorization', 'Bearer secret');
        cb(null, md);
      });
      const err = await unary(client, {}, new grpc.Metadata(), { credentials: creds }).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code).toBe(Status.UNAUTHENTICATED);
      expect(err?.details).toMatch(/not secure/);
    });

    test('connectivity is aggregated over the endpoints and waitForReady works', async () => {
      const { client, channel } = await setup(2);
      await new Promise<void>((resolve, reject) =>
        client.waitForReady(Date.now() + 5_000, (e?: Error) => (e ? reject(e) : resolve())),
      );
      expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.READY);
      channel.close();
      expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.SHUTDOWN);
    });

    test('waitForReady on a channel whose endpoints never connect fails at its deadline', async () => {
      const { client } = nowhere();
      const err = await new Promise<Error | undefined>((resolve) =>
        client.waitForReady(Date.now() + 200, resolve),
      );
      expect(err?.message).toMatch(/[Dd]eadline|[Ff]ailed to connect/);
    });
  });

  describe('close', () => {
    test('close() returns at once, refuses new calls at once, and lets calls in flight finish: unary and a server stream', async () => {
      const { client, channel, endpoints } = await setup(1);
      const inflight = Array.from({ length: 5 }, (_, i) =>
        unary(client, { delayMs: 400, message: String(i) }),
      );
      const stream = collect<Reply>(client.ServerStream({ message: 's', count: 4, delayMs: 100 }));
      await expect.poll(() => (endpoints[0] as GrpcEndpoint).pending).toBe(6);
      const order: string[] = [];
      channel.close();
      order.push('close returned');
      expect(channel.activeCalls).toBe(6);
      expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.SHUTDOWN);
      const refused = await unary(client, {}).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      order.push('new call refused');
      expect(refused?.code).toBe(Status.UNAVAILABLE);
      expect(refused?.details).toBe('channel echo.test is closing');
      const replies = await Promise.all(inflight);
      order.push('calls in flight ended');
      expect(replies.map((r) => r.reply.message)).toEqual(['0', '1', '2', '3', '4']);
      expect((await stream).map((r: Reply) => r.index)).toEqual([0, 1, 2, 3]);
      await channel.closeGracefully();
      expect(endpoints[0]?.readiness).toBe('closed');
      expect(order).toEqual(['close returned', 'new call refused', 'calls in flight ended']);
      const afterwards = await unary(client, {}).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(afterwards?.details).toBe('channel echo.test is closed');
    });

    test('when the grace time runs out the calls left end UNAVAILABLE saying so; a second close can shorten it', async () => {
      const { client, channel, endpoints } = await setup(1);
      const slow = Array.from({ length: 3 }, () =>
        unary(client, { delayMs: 10_000 }).then(
          () => undefined,
          (e: grpc.ServiceError) => e,
        ),
      );
      const quick = unary(client, { delayMs: 50, message: 'quick' });
      const stream = collect<Reply>(client.ServerStream({ count: 100, delayMs: 100 })).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      await expect.poll(() => (endpoints[0] as GrpcEndpoint).pending).toBe(5);
      const closed = channel.closeGracefully({ graceMs: 200 });
      expect((await quick).reply.message).toBe('quick');
      const errors = await Promise.all([...slow, stream]);
      for (const e of errors) {
        expect(e?.code).toBe(Status.UNAVAILABLE);
        expect(e?.details).toBe('channel echo.test closed: the 200 ms grace time ran out');
      }
      await closed;
      expect(channel.activeCalls).toBe(0);
      expect(endpoints[0]?.readiness).toBe('closed');

      // close({ graceMs: 0 }) after a longer close ends what is left at once
      const next = await setup(1);
      const cut = unary(next.client, { delayMs: 10_000 }).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      await expect.poll(() => next.channel.activeCalls).toBe(1);
      next.channel.close({ graceMs: 60_000 });
      next.channel.close({ graceMs: 0 });
      expect((await cut)?.details).toMatch(/channel echo.test closed: the \d+ ms grace time ran out/);
      await next.channel.closeGracefully();
    });

    test('a bad grace time is refused with a named error', async () => {
      const { channel } = await setup(1);
      await expect(channel.closeGracefully({ graceMs: -1 })).rejects.toThrow(
        /TowerChannel\.close: option "graceMs" must be a finite number/,
      );
      expect(() => channel.close({ graceMs: Number.NaN })).toThrow(ConfigError);
      expect(() => createChannel(readyRoundRobin([]), { target: 'x', closeGraceMs: Infinity })).toThrow(
        /createChannel: option "closeGraceMs"/,
      );
    });

    test('closing with no call in flight leaves nothing behind, and no timer of the close', async () => {
      const before = activeHandles();
      const { client, channel, servers } = await setup(1);
      await unary(client, {});
      client.close();
      await channel.closeGracefully();
      await Promise.all(servers.map((s) => s.stop(100)));
      await expectNoLeaks(before, { settleMs: 2_000 });
    });

    test('closing an endpoint drains: calls in flight finish, new calls are refused', async () => {
      const { client, endpoints } = await setup(1);
      const endpoint = endpoints[0] as GrpcEndpoint;
      const inflight = Array.from({ length: 5 }, (_, i) =>
        unary(client, { delayMs: 200, message: String(i) }),
      );
      await expect.poll(() => endpoint.pending).toBe(5);
      const closed = endpoint.close();
      const replies = await Promise.all(inflight);
      expect(replies.map((r) => r.reply.message)).toEqual(['0', '1', '2', '3', '4']);
      await closed;
      expect(endpoint.readiness).toBe('closed');
    });
  });

  describe('resources', () => {
    let baseline: ReturnType<typeof activeHandles>;
    beforeAll(() => {
      baseline = activeHandles();
    });

    test('after 10,000 calls no timer, socket or listener is left behind', async () => {
      const { client, channel } = await setup(2);
      const before = activeHandles();
      for (let batch = 0; batch < 20; batch++) {
        await Promise.all(
          Array.from({ length: 500 }, (_, i) =>
            unary(client, { message: String(i) }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }),
          ),
        );
      }
      expect(channel.activeCalls).toBe(0);
      expect(channel.replayBytes).toBe(0);
      await expectNoLeaks(before, { settleMs: 2_000 });
      void baseline;
    });
  });

  describe('the stack carries readiness and close', () => {
    test('a stack built over the endpoint reports its connectivity and closes it with the channel', async () => {
      const server = await startEchoServer({ host: pickHosts(1)[0]!, name: 'lc' });
      cleanups.push(() => server.stop(100));
      const endpoint = endpointAt(server.address, { credentials: insecure });
      const passThrough = (
        inner: Service<GrpcRequest, GrpcResponse>,
      ): Service<GrpcRequest, GrpcResponse> => ({
        call: (req, ctx) => inner.call(req, ctx),
      });
      const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>().layer(passThrough).service(endpoint);
      const channel = createChannel(stack, { target: 'echo.test' });
      const client = new EchoClient('echo.test', grpc.credentials.createInsecure(), {
        channelOverride: channel,
      });
      await new Promise<void>((resolve, reject) =>
        client.waitForReady(Date.now() + 5_000, (err) => (err ? reject(err) : resolve())),
      );
      expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.READY);
      const { reply } = await unary(client, { message: 'hi' });
      expect(reply.message).toBe('hi');
      client.close();
      await channel.closeAsync();
      expect(endpoint.readiness).toBe('closed');
      expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.SHUTDOWN);
    });
  });
});
