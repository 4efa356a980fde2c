// The whole stack over real grpc-js servers: discovery (staticList +
// connect) → health checking → outlier detection → p2c → retry →
// createChannel → a proto-loader client. One server turns NOT_SERVING,
// another fails five calls in a row; every call of the client succeeds,
// and both servers come back.
import { p2c, pendingRequests } from '@grpc-tower/balance';
import { ServiceBuilder, Status } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { connect, staticList } from '@grpc-tower/discover';
import { retry } from '@grpc-tower/retry';
import {
  type EchoProtoClient,
  type EchoReply,
  type EchoServer,
  activeHandles,
  createEchoClient,
  expectNoLeaks,
  insecure,
  loadEchoPackage,
  TRANSPORTS,
} from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import { merge } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import type { HealthEvent } from './events.js';
import { healthChecked } from './health-check/endpoint.js';
import { outlierDetection } from './outlier/detector.js';
import { next, startServers } from './test/support.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function unary(
  client: EchoProtoClient,
  message: string,
): Promise<{ code: number; server: string | undefined }> {
  return new Promise((resolve) => {
    client.Unary(
      { message },
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (err: grpc.ServiceError | null, reply?: EchoReply) =>
        resolve({ code: err === null ? Status.OK : err.code, server: reply?.server }),
    );
  });
}

// the whole stack is meant to compose alike over both transports
describe.each(TRANSPORTS)('over the %s transport', (transport) => {
  test('discovery, health, outlier detection, p2c and retry compose: no call fails while servers go bad and come back', async () => {
    const before = activeHandles();
    const servers: EchoServer[] = await startServers(3);
    cleanup.push(() => Promise.all(servers.map((s) => s.stop(0))).then(() => undefined));
    const [s0, s1, s2] = servers;

    const health = healthChecked({ backoff: { initialMs: 50 } });
    const detector = outlierDetection({ baseEjectionTimeMs: 1_500, intervalMs: 600_000 });
    cleanup.push(() => detector.close());
    const events: HealthEvent[] = [];
    merge(health.events$, detector.events$).subscribe((e) => events.push(e));

    const endpoints = connect(staticList(servers.map((s) => s.address)), (a) =>
      detector.wrap(health(grpcEndpoint(a.address, { credentials: insecure, transport }))),
    );
    // panic mode off: this test shows health and ejection gating the pool
    // (with 2 of 3 servers out, the default 50 % threshold would spread calls
    // over all three; pick/connected.test.ts shows that)
    const balancer = p2c(endpoints, {
      target: 'static:echo',
      load: pendingRequests(),
      panicThresholdPercent: 0,
    });
    const retries = retry({ maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 5 });
    const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>().layer(retries).service(balancer);
    const channel = createChannel(stack, {
      target: 'static:echo',
      services: [loadEchoPackage().EchoService],
    });
    cleanup.push(() => channel.closeAsync());
    const client = createEchoClient('static:echo', { channelOverride: channel });
    cleanup.push(() => client.close());

    await expect.poll(() => balancer.stats().counts.ready, { timeout: 10_000 }).toBe(3);

    let failedCalls = 0;
    const calls = async (n: number): Promise<Set<string>> => {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) {
        const r = await unary(client, `m${i}`);
        if (r.code !== Status.OK) failedCalls++;
        else seen.add(r.server!);
      }
      return seen;
    };

    expect(await calls(60)).toEqual(new Set(['s0', 's1', 's2']));

    // s0 says it is not serving: it leaves the rotation as soon as the Watch tells us
    const unhealthy = next(health.events$, (e) => e.type === 'health' && e.endpoint === s0!.address);
    s0!.setServing('NOT_SERVING');
    await unhealthy;
    const s0Calls = s0!.calls.total;
    expect(await calls(30)).toEqual(new Set(['s1', 's2']));
    expect(s0!.calls.total).toBe(s0Calls);

    // s1 fails every call: retries hide it from the client, outlier detection ejects it
    s1!.failNext(5, Status.UNAVAILABLE);
    const ejected = next(detector.events$, (e) => e.type === 'ejected');
    for (let i = 0; i < 200 && !events.some((e) => e.type === 'ejected'); i++) await calls(1);
    expect(await ejected).toMatchObject({
      endpoint: s1!.address,
      algorithm: 'consecutive-failures',
      count: 1,
    });
    const s1Calls = s1!.calls.total;
    expect(await calls(10)).toEqual(new Set(['s2']));
    expect(s1!.calls.total).toBe(s1Calls);
    expect(retries.stats().retries).toBeGreaterThanOrEqual(5);

    // both recover: s0 by its health service, s1 when its ejection time is up
    s0!.setServing('SERVING');
    await next(detector.events$, (e) => e.type === 'returned', 10_000);
    await expect.poll(() => balancer.stats().counts.ready, { timeout: 10_000 }).toBe(3);
    expect(await calls(60)).toEqual(new Set(['s0', 's1', 's2']));

    expect(failedCalls).toBe(0);
    const story = events.map((e) =>
      e.type === 'health'
        ? `${e.endpoint === s0!.address ? 's0' : '?'} ${e.from}->${e.to}`
        : `${e.type} ${e.endpoint === s1!.address ? 's1' : '?'}`,
    );
    // the start (three unknown->healthy), then what the test did, in order
    expect(story.slice(3)).toEqual([
      's0 healthy->unhealthy',
      'ejected s1',
      's0 unhealthy->healthy',
      'returned s1',
    ]);
    expect(s2).toBeDefined();

    for (const fn of cleanup.splice(0).reverse()) await fn();
    await expectNoLeaks(before, { settleMs: 3000 });
  });
});
