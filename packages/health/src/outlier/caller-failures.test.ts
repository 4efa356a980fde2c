// Outlier detection counts only what a server or a connection produced:
// real grpc-js echo servers, calls with the caller's own short deadlines,
// a request refused in this process, and servers that really hang; over
// both transports, whose failures the detector must judge alike.
import { p2c, pendingRequests } from '@grpc-tower/balance';
import { ServiceBuilder, Status, newContext } from '@grpc-tower/core';
import {
  type GrpcRequest,
  type GrpcResponse,
  type GrpcTransport,
  createChannel,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import { connect, staticList } from '@grpc-tower/discover';
import {
  type EchoProtoClient,
  type EchoServer,
  createEchoClient,
  insecure,
  loadEchoPackage,
  TRANSPORTS,
} from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, test } from 'vitest';
import type { HealthEvent } from '../events.js';
import { echoRequest, next, send, startServers } from '../test/support.js';
import { type OutlierDetector, type OutlierEndpoint, outlierDetection } from './detector.js';
import type { OutlierDetectionOptions } from './options.js';

type Ep = OutlierEndpoint<GrpcRequest, GrpcResponse>;

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** Servers with one detector around an endpoint per server, all ready. */
async function setup(n: number, options: OutlierDetectionOptions = {}, transport: GrpcTransport = 'native') {
  const servers = await startServers(n, false);
  cleanup.push(() => Promise.all(servers.map((s) => s.stop(0))));
  const detector = outlierDetection({ baseEjectionTimeMs: 60_000, intervalMs: 600_000, ...options });
  cleanup.push(() => detector.close());
  const events: HealthEvent[] = [];
  detector.events$.subscribe((e) => events.push(e));
  const eps = servers.map((s) =>
    detector.wrap(grpcEndpoint(s.address, { credentials: insecure, transport })),
  );
  cleanup.push(() => Promise.all(eps.map((e) => e.close({ graceMs: 0 }))));
  await Promise.all(eps.map((ep) => next(ep.readiness$, (r) => r === 'ready')));
  return { servers, detector, events, eps };
}

/** The same servers behind p2c and createChannel, with a proto-loader client. */
function stackOver(detector: OutlierDetector, servers: readonly EchoServer[], transport: GrpcTransport) {
  const endpoints = connect(staticList(servers.map((s) => s.address)), (a) =>
    detector.wrap(grpcEndpoint(a.address, { credentials: insecure, transport })),
  );
  const balancer = p2c(endpoints, {
    target: 'static:echo',
    load: pendingRequests(),
    panicThresholdPercent: 0,
  });
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>().service(balancer);
  const channel = createChannel(stack, { target: 'static:echo', services: [loadEchoPackage().EchoService] });
  cleanup.push(() => channel.closeAsync());
  const client = createEchoClient('static:echo', { channelOverride: channel });
  cleanup.push(() => client.close());
  return { balancer, client };
}

function unary(client: EchoProtoClient, deadlineMs: number, metadata = new grpc.Metadata()): Promise<number> {
  return new Promise((resolve) => {
    client.Unary({ message: 'x' }, metadata, { deadline: Date.now() + deadlineMs }, (err) =>
      resolve(err === null ? Status.OK : err.code),
    );
  });
}

/** `n` calls straight to `ep` at once, each with its own deadline of `deadlineMs`. */
async function withDeadline(ep: Ep, n: number, deadlineMs: number): Promise<number[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const scope = newContext({ timeoutMs: deadlineMs });
      try {
        return (await send(ep, 'Unary', { message: 'slow' }, scope.context)).code;
      } finally {
        scope.release();
      }
    }),
  );
}

const ejections = (events: HealthEvent[]) => events.filter((e) => e.type === 'ejected');

describe.each(TRANSPORTS)(
  "outlierDetection: the caller's own deadline, over the %s transport",
  (transport) => {
    test('200 calls with a 2 ms deadline to healthy 20 ms servers eject nothing', async () => {
      const { servers, detector, events } = await setup(
        3,
        {
          consecutiveFailures: 5,
          failurePercentageEjection: { threshold: 50, requestVolume: 20, minimumHosts: 3 },
          successRateEjection: { stdevFactor: 100, requestVolume: 20, minimumHosts: 3 },
        },
        transport,
      );
      for (const s of servers) s.setLatency(20);
      const { balancer, client } = stackOver(detector, servers, transport);
      await expect.poll(() => balancer.counts().ready, { timeout: 10_000 }).toBe(3);

      const codes: number[] = [];
      for (let round = 0; round < 10; round++) {
        codes.push(...(await Promise.all(Array.from({ length: 20 }, () => unary(client, 2)))));
      }
      expect(codes).toHaveLength(200);
      expect(codes.filter((c) => c === Status.DEADLINE_EXCEEDED).length).toBeGreaterThan(150);
      detector.sweep(); // the rate algorithms judge the interval too
      expect(ejections(events)).toEqual([]);
      expect(balancer.counts().ready).toBe(3);
      expect(detector.stats()).toMatchObject({ ejected: 0 });
      for (const e of detector.stats().endpoints) expect(e.consecutiveFailures).toBe(0);
    });

    test('a server that hangs past generous deadlines is ejected (deadlineMinMs, no success before)', async () => {
      const {
        servers: [a],
        events,
        eps: [ep],
      } = await setup(3, {}, transport);
      a!.setLatency(10_000);
      expect(await withDeadline(ep!, 5, 1_200)).toEqual(Array(5).fill(Status.DEADLINE_EXCEEDED));
      expect(ejections(events)).toEqual([
        expect.objectContaining({ endpoint: a!.address, algorithm: 'consecutive-failures' }),
      ]);
      expect((ejections(events)[0] as { reason: string }).reason).toMatch(/DEADLINE_EXCEEDED after \d+ ms/);
      expect(ep!.readiness).toBe('failed');
    });

    test('a server ten times slower than it usually is fails at the deadline and is ejected (deadlineLatencyFactor)', async () => {
      const {
        servers: [a, b],
        detector,
        events,
        eps: [ep, other],
      } = await setup(3, {}, transport);
      for (let i = 0; i < 5; i++) expect((await send(ep!)).code).toBe(Status.OK);
      expect(detector.stats().endpoints[0]?.typicalLatencyMs).toBeLessThan(50);
      // 300 ms is 10 × its latency (floored at 10 ms): a fair chance
      a!.setLatency(10_000);
      expect(await withDeadline(ep!, 5, 300)).toEqual(Array(5).fill(Status.DEADLINE_EXCEEDED));
      expect(ejections(events).map((e) => e.endpoint)).toEqual([a!.address]);

      // the same deadline on a server whose typical latency is far above it counts as the caller's
      b!.setLatency(400);
      expect((await send(other!)).code).toBe(Status.OK);
      b!.setLatency(10_000);
      expect(await withDeadline(other!, 5, 300)).toEqual(Array(5).fill(Status.DEADLINE_EXCEEDED));
      expect(ejections(events).map((e) => e.endpoint)).toEqual([a!.address]);
      expect(other!.readiness).toBe('ready');
    });
  },
);

describe("outlierDetection's deadline rule", () => {
  test('deadlineMinMs and deadlineLatencyFactor are checked', () => {
    expect(() => outlierDetection({ deadlineMinMs: -1 })).toThrow(/deadlineMinMs/);
    expect(() => outlierDetection({ deadlineLatencyFactor: 0 })).toThrow(/deadlineLatencyFactor/);
    expect(outlierDetection().options.deadlineRule).toEqual({ minMs: 1_000, latencyFactor: 10 });
  });
});

describe('outlierDetection: a call refused in this process', () => {
  test.each(TRANSPORTS)(
    '%s: a connection-specific header refused by the channel with INTERNAL ejects nothing',
    async (transport) => {
      const { servers, detector, events } = await setup(3, { consecutiveFailures: 2 }, transport);
      const { balancer, client } = stackOver(detector, servers, transport);
      await expect.poll(() => balancer.counts().ready, { timeout: 10_000 }).toBe(3);
      const bad = new grpc.Metadata();
      bad.set('connection', 'close');
      const codes = await Promise.all(Array.from({ length: 20 }, () => unary(client, 5_000, bad)));
      expect(codes).toEqual(Array(20).fill(Status.INTERNAL));
      expect(ejections(events)).toEqual([]);
      expect(balancer.counts().ready).toBe(3);
      expect(await unary(client, 5_000)).toBe(Status.OK);
    },
  );

  test.each([
    // grpc-js opens no stream for it, and says so in its own words
    ['grpc-js', { code: Status.INTERNAL, serverResponded: false }, /^Failed to start HTTP\/2 stream/],
    // the native endpoint refuses it before asking for a stream
    [
      'native',
      { code: Status.INTERNAL, delivery: 'not-sent' },
      /metadata "connection" is a header the transport sets itself/,
    ],
  ] as const)(
    'the same header sent straight to a %s endpoint, which cannot send it, ejects nothing',
    async (transport, shape, message) => {
      const {
        servers: [server],
        detector,
        events,
        eps: [ep],
      } = await setup(3, { consecutiveFailures: 2 }, transport);
      for (let i = 0; i < 4; i++) {
        const req = echoRequest('Unary', { message: 'x' });
        req.metadata.set('connection', 'close');
        const err = await ep!.call(req, newContext().context).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toMatchObject(shape);
        expect((err as Error).message).toMatch(message);
      }
      expect(server!.calls.total).toBe(0);
      expect(ejections(events)).toEqual([]);
      expect(detector.stats().endpoints[0]).toMatchObject({ failures: 0, consecutiveFailures: 0 });
      await next(ep!.readiness$, (r) => r === 'ready');
      expect((await send(ep!)).code).toBe(Status.OK);
    },
  );
});
