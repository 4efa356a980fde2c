// connectedOf and p2c's panic mode in front of real grpc-js servers, some
// unhealthy, one ejected, one down: panic mode balances over the endpoints
// whose connection is up. Over the default (native) transport: the
// decision reads readiness, not the transport. (The decision itself is
// tested in @grpc-tower/balance.)
import { Status } from '@grpc-tower/core';
import { grpcEndpoint } from '@grpc-tower/core/grpc';
import { type EchoServer, insecure } from '@grpc-tower/testing';
import { afterEach, describe, expect, test } from 'vitest';
import { type HealthCheckedEndpoint, healthChecked } from '../health-check/endpoint.js';
import { type OutlierDetector, outlierDetection } from '../outlier/detector.js';
import { type Balancer, p2c, pendingRequests } from '@grpc-tower/balance';
import type { Endpoint } from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import { NEVER, concat, from } from 'rxjs';
import { next, send, startServers } from '../test/support.js';
import { connectedOf } from './connected.js';

describe('panic mode with real servers', () => {
  const servers: EchoServer[] = [];
  const endpoints: { close(o?: { graceMs?: number }): Promise<void> }[] = [];
  const detectors: OutlierDetector[] = [];
  afterEach(async () => {
    for (const d of detectors.splice(0)) d.close();
    await Promise.all(endpoints.splice(0).map((e) => e.close({ graceMs: 0 })));
    await Promise.all(servers.splice(0).map((s) => s.stop(0)));
  });

  test('with 1 of 4 usable, calls still succeed on the remaining servers; with panic off, only on the usable one', async () => {
    const all = await startServers(4);
    servers.push(...all);
    const [, s1, s2, s3] = all;
    const health = healthChecked();
    const detector = outlierDetection({ baseEjectionTimeMs: 60_000, intervalMs: 600_000 });
    detectors.push(detector);
    const inner: HealthCheckedEndpoint[] = [];
    const eps = all.map((s) => {
      const h = health(
        grpcEndpoint(s.address, {
          credentials: insecure,
          channelOptions: {
            'grpc.initial_reconnect_backoff_ms': 60_000,
            'grpc.max_reconnect_backoff_ms': 60_000,
          },
        }),
      );
      inner.push(h);
      return detector.wrap(h);
    });
    endpoints.push(...eps);
    await Promise.all(eps.map((ep) => next(ep.readiness$, (r) => r === 'ready')));

    s1!.setServing('NOT_SERVING'); // unhealthy, but up
    s2!.failNext(5, Status.UNAVAILABLE); // ejected, but up
    for (let i = 0; i < 5; i++) await send(eps[2]!);
    s3!.kill(); // down
    await next(eps[1]!.readiness$, (r) => r === 'failed');
    await next(eps[3]!.readiness$, (r) => r !== 'ready');
    expect(eps.map((e) => e.readiness)).toEqual([
      'ready',
      'failed',
      'failed',
      expect.not.stringMatching('ready'),
    ]);
    expect(eps.map(connectedOf)).toEqual([true, true, true, false]);

    // The real balancer over the same endpoints; each run's balancer borrows
    // them (its close() must not close the endpoints the next run uses).
    type Ep = Endpoint<GrpcRequest, GrpcResponse>;
    const borrowed = (ep: Ep): Ep => ({
      address: ep.address,
      get readiness() {
        return ep.readiness;
      },
      readiness$: ep.readiness$,
      get pending() {
        return ep.pending;
      },
      get connected() {
        return connectedOf(ep);
      },
      call: (req, ctx) => ep.call(req, ctx),
      close: async () => undefined,
    });
    const run = async (panicPercent: number, n: number) => {
      const balancer: Balancer<GrpcRequest, GrpcResponse, string> = p2c(
        concat(
          from(eps.map((ep) => ({ type: 'insert' as const, key: ep.address, endpoint: borrowed(ep) }))),
          NEVER,
        ),
        // pending-requests load: a fresh PeakEWMA would leave an unsampled
        // endpoint at its 30 ms seed, behind the sampled fast ones
        { target: 'panic.test', panicThresholdPercent: panicPercent, load: pendingRequests() },
      );
      const seen = new Map<string, number>();
      const panicking = balancer.panicking;
      const counts = balancer.counts();
      try {
        for (let i = 0; i < n; i++) {
          const r = await send(balancer);
          expect(r.code).toBe(Status.OK);
          seen.set(r.server!, (seen.get(r.server!) ?? 0) + 1);
        }
      } finally {
        await balancer.close();
      }
      return { seen, panicking, counts };
    };

    const panicking = await run(50, 90);
    expect(panicking.panicking).toBe(true);
    expect(new Set(panicking.seen.keys())).toEqual(new Set(['s0', 's1', 's2'])); // never the dead s3

    const strict = await run(0, 30);
    expect(strict.panicking).toBe(false);
    // the health-checked and the ejected endpoint are up but held out; the killed one is down
    expect(strict.counts).toMatchObject({ known: 4, ready: 1, ejected: 2, closed: 0 });
    expect(strict.counts.failed + strict.counts.connecting).toBe(1);
    expect([...strict.seen.keys()]).toEqual(['s0']);

    // back to 2 of 4 usable: at the threshold, not below it; no panic
    s1!.setServing('SERVING');
    await next(eps[1]!.readiness$, (r) => r === 'ready');
    const calm = await run(50, 60);
    expect(calm.panicking).toBe(false);
    expect(new Set(calm.seen.keys())).toEqual(new Set(['s0', 's1']));
    expect(inner.every((h) => h.readiness !== 'closed')).toBe(true);
  });
});
