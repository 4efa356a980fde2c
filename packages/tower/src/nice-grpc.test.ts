// nice-grpc over the one-call channel: its client factory with its retry and
// deadline middleware, against real grpc-js echo servers, with the
// ts-proto generated definition, over both transports (the calls, retries
// and deadlines are meant to behave the same). This file type-checks without
// a cast.
import * as grpc from '@grpc/grpc-js';
import {
  type EchoServer,
  GeneratedEchoRequest,
  GeneratedEchoService,
  pickHosts,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
} from '@grpc-tower/testing';
import { ClientError, Status, createClient, createClientFactory } from 'nice-grpc';
import { deadlineMiddleware } from 'nice-grpc-client-middleware-deadline';
import { retryMiddleware } from 'nice-grpc-client-middleware-retry';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { type TowerOptions, asGrpcChannel } from './channel.js';
import { overTransport } from './test/transport.js';

const insecure = grpc.credentials.createInsecure();

let server: EchoServer;
const channels: { closeAsync(): Promise<void> }[] = [];
beforeAll(async () => {
  server = await startEchoServer({ host: pickHosts(1)[0] as string, name: 'nice' });
});
afterEach(async () => {
  await Promise.all(channels.splice(0).map((c) => c.closeAsync()));
});
afterAll(() => server.stop(0));

function channel(transport: TestTransport = 'native', options: TowerOptions = {}) {
  const ch = overTransport(transport).towerChannel(server.address, insecure, {
    services: [GeneratedEchoService],
    ...options,
  });
  channels.push(ch);
  return ch;
}

test("grpc-js's Channel class is what nice-grpc's types ask for; asGrpcChannel gives it without a cast", () => {
  const ch = channel();
  // @ts-expect-error a ChannelInterface lacks the class's private member, so TypeScript refuses it
  createClient(GeneratedEchoService, ch);
  const client = createClient(GeneratedEchoService, asGrpcChannel(ch));
  expect(typeof client.unary).toBe('function');
  // the very same object: nothing is wrapped
  expect(asGrpcChannel(ch)).toBe(ch);
});

describe.each(TRANSPORTS)('over the %s transport', (transport) => {
  test('unary and server-streaming calls', async () => {
    const client = createClient(GeneratedEchoService, asGrpcChannel(channel(transport)));
    const reply = await client.unary(GeneratedEchoRequest.fromPartial({ message: 'hello' }));
    expect(reply).toMatchObject({ message: 'hello', server: 'nice' });
    const replies: number[] = [];
    for await (const r of client.serverStream(GeneratedEchoRequest.fromPartial({ message: 's', count: 3 })))
      replies.push(r.index);
    expect(replies).toEqual([0, 1, 2]);
  });

  test("nice-grpc's retry middleware retries INTERNAL, which the channel's default policy does not", async () => {
    const client = createClientFactory()
      .use(retryMiddleware)
      .create(GeneratedEchoService, asGrpcChannel(channel(transport)));
    const before = server.calls.total;
    server.failNext(1, Status.INTERNAL, 'hiccup');
    const reply = await client.unary(GeneratedEchoRequest.fromPartial({ message: 'again' }), {
      retry: true,
      retryBaseDelayMs: 10,
      retryMaxAttempts: 2,
    });
    expect(reply.message).toBe('again');
    // one failed call and its retry, both through the channel to the server
    expect(server.calls.total - before).toBe(2);
  });

  test("nice-grpc's deadline middleware sets the deadline the channel enforces", async () => {
    const client = createClientFactory()
      .use(deadlineMiddleware)
      .create(GeneratedEchoService, asGrpcChannel(channel(transport)));
    server.setLatency(1_000);
    try {
      const err = await client
        .unary(GeneratedEchoRequest.fromPartial({ message: 'slow' }), { deadline: 100 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClientError);
      expect((err as ClientError).code).toBe(Status.DEADLINE_EXCEEDED);
    } finally {
      server.setLatency(0);
    }
  });
});
