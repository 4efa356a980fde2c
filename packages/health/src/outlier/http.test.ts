// Outlier detection of HTTP/2 endpoints with the httpOutcomes policy, over
// real node:http2 servers on loopback hosts and real http2Endpoints: 5xx
// answers and failed streams eject, 4xx answers and cancelled calls never
// do, and the default (gRPC) policy reads no HTTP status.
import { p2c, pendingRequests } from '@grpc-tower/balance';
import { type Change, ConfigError, Status, background, newContext } from '@grpc-tower/core';
import { type Http2Request, type Http2Response, http2Endpoint, httpProtocol } from '@grpc-tower/core/http2';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import type { EndpointEjected, HealthEvent } from '../events.js';
import { httpHealthChecked } from '../http-check/endpoint.js';
import { type TestHttp2Server, startHttp2Server } from '../test/http2.js';
import { next } from '../test/support.js';
import { type OutlierEndpoint, outlierDetection } from './detector.js';
import type { OutlierDetectionOptions } from './options.js';
import { type OutlierProtocol, httpOutcomes } from './protocol.js';

type Ep = OutlierEndpoint<Http2Request, Http2Response>;

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function servers(...names: string[]): Promise<TestHttp2Server[]> {
  const started = await Promise.all(names.map((n) => startHttp2Server(n)));
  cleanup.push(() => Promise.all(started.map((s) => s.stop())));
  return started;
}

/** One detector around an endpoint per server, all ready. */
async function setup(list: readonly TestHttp2Server[], options: OutlierDetectionOptions) {
  const detector = outlierDetection({ baseEjectionTimeMs: 60_000, intervalMs: 600_000, ...options });
  cleanup.push(() => detector.close());
  const events: HealthEvent[] = [];
  detector.events$.subscribe((e) => events.push(e));
  const eps = list.map((s) => detector.wrap(http2Endpoint(s.address, { scheme: 'http' })));
  cleanup.push(() => Promise.all(eps.map((e) => e.close({ graceMs: 0 }))));
  await Promise.all(eps.map((ep) => next(ep.readiness$, (r) => r === 'ready')));
  return { detector, events, eps };
}

/** Sends `n` requests for `path` one after another; returns their statuses, or `'failed'`. */
async function calls(ep: Ep, n: number, path = '/work'): Promise<(number | 'failed')[]> {
  const out: (number | 'failed')[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      await ep.call({ path }, background).then(
        (r) => r.status,
        () => 'failed' as const,
      ),
    );
  }
  return out;
}

const ejections = (events: HealthEvent[]) => events.filter((e): e is EndpointEjected => e.type === 'ejected');

describe('outlierDetection with httpOutcomes', () => {
  test('behind p2c: a server answering 500 to every call is ejected, the other takes the calls, and it returns after its ejection time', async () => {
    const [a, b] = await servers('a', 'b');
    a!.set('/work', 500);
    const detector = outlierDetection({ protocol: httpOutcomes, baseEjectionTimeMs: 300, intervalMs: 50 });
    cleanup.push(() => detector.close());
    const events: HealthEvent[] = [];
    detector.events$.subscribe((e) => events.push(e));
    const changes = new Subject<Change<string, Ep>>();
    const balancer = p2c(changes, { target: 'items', load: pendingRequests(), panicThresholdPercent: 0 });
    cleanup.push(() => balancer.close({ graceMs: 0 }));
    const eps = [a!, b!].map((s) => detector.wrap(http2Endpoint(s.address, { scheme: 'http' })));
    for (const ep of eps) changes.next({ type: 'insert', key: ep.address, endpoint: ep });
    await expect.poll(() => balancer.counts().ready).toBe(2);

    const served = async (n: number) => {
      const by: string[] = [];
      for (let i = 0; i < n; i++)
        by.push(String((await balancer.call({ path: '/work' }, background)).headers['x-server']));
      return by;
    };
    for (let i = 0; i < 200 && ejections(events).length === 0; i++) await served(1);
    expect(ejections(events)).toEqual([
      expect.objectContaining({ endpoint: a!.address, algorithm: 'consecutive-failures', count: 1 }),
    ]);
    expect(ejections(events)[0]?.reason).toBe('5 consecutive failures, the last INTERNAL (HTTP 500)');
    expect(a!.count('/work', 500)).toBe(5);
    expect(eps[0]!.readiness).toBe('failed');
    expect(eps[0]!.lastError).toContain('ejected by outlier detection');

    const before = a!.count('/work');
    expect(new Set(await served(30))).toEqual(new Set(['b']));
    expect(a!.count('/work')).toBe(before);

    a!.set('/work', 200);
    await next(eps[0]!.readiness$, (r) => r === 'ready');
    expect(events.at(-1)).toMatchObject({ type: 'returned', endpoint: a!.address });
    expect(await served(40)).toContain('a');
    // the sweeps of intervalMs forgive it: its next ejection would be short again
    await expect.poll(() => detector.stats().endpoints[0]?.multiplier).toBe(0);
  });

  test("502, 503 and 504 are UNAVAILABLE: failureCodes [UNAVAILABLE] ejects on them and not on 500, as Envoy's gateway-failure rule", async () => {
    const [a] = await servers('a');
    const {
      detector,
      events,
      eps: [ep],
    } = await setup([a!], { protocol: httpOutcomes, failureCodes: ['UNAVAILABLE'], consecutiveFailures: 3 });
    a!.set('/work', 500);
    expect(await calls(ep!, 10)).toEqual(Array(10).fill(500));
    expect(ejections(events)).toEqual([]);
    expect(detector.stats().endpoints[0]).toMatchObject({ successes: 10, failures: 0 });

    a!.script('/work', [502, 503, 504]);
    expect(await calls(ep!, 3)).toEqual([502, 503, 504]);
    expect(ejections(events)[0]?.reason).toBe('3 consecutive failures, the last UNAVAILABLE (HTTP 504)');
  });

  test('4xx answers never eject, whatever failureCodes say', async () => {
    const [a] = await servers('a');
    const every = Object.values(Status).filter((c) => c !== Status.OK);
    const {
      detector,
      events,
      eps: [ep],
    } = await setup([a!], {
      protocol: httpOutcomes,
      failureCodes: every,
      consecutiveFailures: 2,
      failurePercentageEjection: { threshold: 1, minimumHosts: 1, requestVolume: 10 },
    });
    a!.script('/work', [400, 401, 403, 404, 409, 429, 499, 400, 404, 429, 451, 418]);
    expect(await calls(ep!, 12)).toEqual([400, 401, 403, 404, 409, 429, 499, 400, 404, 429, 451, 418]);
    expect(detector.stats().endpoints[0]).toMatchObject({
      successes: 12,
      failures: 0,
      consecutiveFailures: 0,
    });
    detector.sweep(); // the failure-percentage rule judges the interval too
    expect(ejections(events)).toEqual([]);
    expect(ep!.readiness).toBe('ready');
  });

  test('failed streams count as failures; calls the caller cancelled count as neither', async () => {
    const [a, b] = await servers('a', 'b');
    const {
      detector,
      events,
      eps: [epA, epB],
    } = await setup([a!, b!], { protocol: httpOutcomes, consecutiveFailures: 3 });
    b!.set('/slow', 'hang');
    const scopes = [1, 2, 3, 4].map(() => newContext());
    const pending = scopes.map((s) =>
      epB!.call({ path: '/slow' }, s.context).then(
        () => 'answered',
        () => 'failed',
      ),
    );
    await expect.poll(() => b!.count('/slow')).toBe(4);
    for (const s of scopes) s.controller.abort();
    expect(await Promise.all(pending)).toEqual(Array(4).fill('failed'));
    for (const s of scopes) s.release();
    expect(detector.stats().endpoints[1]).toMatchObject({ successes: 0, failures: 0 });

    a!.set('/work', 'reset');
    expect(await calls(epA!, 3)).toEqual(['failed', 'failed', 'failed']);
    expect(ejections(events).map((e) => e.endpoint)).toEqual([a!.address]);
    expect(ejections(events)[0]?.reason).toMatch(/^3 consecutive failures, the last UNAVAILABLE \(HTTP\/2 /);
  });

  test('health checks under the detector are not counted as calls', async () => {
    const [a] = await servers('a');
    a!.set('/healthz', 503); // a failing check would count against it, if the detector saw it
    const detector = outlierDetection({ protocol: httpOutcomes, consecutiveFailures: 1 });
    cleanup.push(() => detector.close());
    const health = httpHealthChecked({ path: '/healthz', intervalMs: 5 });
    const ep = detector.wrap(health(http2Endpoint(a!.address, { scheme: 'http' })));
    cleanup.push(() => ep.close({ graceMs: 0 }));
    await next(ep.readiness$, (r) => r === 'failed');
    await expect.poll(() => a!.count('/healthz')).toBeGreaterThanOrEqual(5);
    expect(detector.stats().endpoints[0]).toMatchObject({ successes: 0, failures: 0, ejected: false });
    expect(ep.lastError).toBe('health check GET /healthz: 503');
  });

  test.each([
    [200, undefined],
    [204, undefined],
    [302, undefined],
    [404, undefined],
    [429, undefined],
    [500, { code: Status.INTERNAL, details: 'HTTP 500' }],
    [501, { code: Status.INTERNAL, details: 'HTTP 501' }],
    [502, { code: Status.UNAVAILABLE, details: 'HTTP 502' }],
    [503, { code: Status.UNAVAILABLE, details: 'HTTP 503' }],
    [504, { code: Status.UNAVAILABLE, details: 'HTTP 504' }],
    [599, { code: Status.INTERNAL, details: 'HTTP 599' }],
    [0, { code: Status.INTERNAL, details: 'HTTP 0' }],
    [600, { code: Status.INTERNAL, details: 'HTTP 600' }],
  ])('httpOutcomes: %i → %j', (status, outcome) => {
    expect(httpOutcomes.classify({ status })).toEqual(outcome);
  });

  test('httpOutcomes reads nothing in what is not an HTTP response', () => {
    for (const res of [undefined, null, 'x', {}, { status: '500' }])
      expect(httpOutcomes.classify(res)).toBeUndefined();
  });
});

describe('outlierDetection: the protocol option', () => {
  test("core's httpProtocol(), the object the retry layer reads too, judges answers as httpOutcomes does: 5xx fail, 4xx never", async () => {
    const [a, b] = await servers('a', 'b');
    const {
      detector,
      events,
      eps: [ep, other],
    } = await setup([a!, b!], { protocol: httpProtocol(), consecutiveFailures: 3 });
    b!.set('/work', 404);
    expect(await calls(other!, 10)).toEqual(Array(10).fill(404));
    a!.set('/work', 503);
    expect(await calls(ep!, 3)).toEqual([503, 503, 503]);
    expect(ejections(events).map((e) => [e.endpoint, e.reason])).toEqual([
      [a!.address, '3 consecutive failures, the last UNAVAILABLE (HTTP 503)'],
    ]);
    expect(detector.stats().endpoints.find((e) => e.address === b!.address)).toMatchObject({
      successes: 10,
      failures: 0,
    });
  });

  test('the default (gRPC statuses) reads no HTTP status: 500 answers are successes, as before', async () => {
    const [a] = await servers('a');
    const {
      detector,
      events,
      eps: [ep],
    } = await setup([a!], {});
    expect(detector.options.protocol).toBeUndefined();
    a!.set('/work', 500);
    await calls(ep!, 10);
    expect(ejections(events)).toEqual([]);
    expect(detector.stats().endpoints[0]).toMatchObject({ successes: 10, failures: 0 });
  });

  test('a policy that throws counts the response as neither', async () => {
    const [a] = await servers('a');
    const broken: OutlierProtocol = {
      name: 'broken',
      classify: () => {
        throw new Error('no');
      },
    };
    const {
      detector,
      eps: [ep],
    } = await setup([a!], { protocol: broken });
    expect(await calls(ep!, 3)).toEqual([200, 200, 200]);
    expect(detector.stats().endpoints[0]).toMatchObject({ successes: 0, failures: 0 });
  });

  test.each([[{}], ['http'], [{ name: 'http' }], [{ classify: () => undefined }], [null]])(
    'protocol %j throws ConfigError naming protocol',
    (protocol) => {
      let caught: unknown;
      try {
        outlierDetection({ protocol } as unknown as OutlierDetectionOptions);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).option).toBe('protocol');
    },
  );
});
