// Outlier detection over real grpc-js echo servers: failures are injected
// with failNext and calls are sent straight to the wrapped endpoints, so
// each server sees exactly the calls the test sends. Over the default
// (native) transport: the detector counts the statuses the servers send,
// which both transports deliver alike (the channel suites check that); what
// the detector must judge differently by where a failure came from is in
// caller-failures.test.ts, over both transports.
import { ConfigError, Status, newContext } from '@grpc-tower/core';
import {
  type NativeGrpcEndpoint,
  type GrpcRequest,
  type GrpcResponse,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import { type EchoServer, insecure } from '@grpc-tower/testing';
import { afterEach, describe, expect, test } from 'vitest';
import type { EndpointEjected, HealthEvent } from '../events.js';
import { PLACED, next, placedInsert, send, startServers } from '../test/support.js';
import { type OutlierDetector, type OutlierEndpoint, outlierDetection } from './detector.js';
import type { OutlierDetectionOptions } from './options.js';

type Ep = OutlierEndpoint<GrpcRequest, GrpcResponse>;

const servers: EchoServer[] = [];
const detectors: OutlierDetector[] = [];
const endpoints: Ep[] = [];

afterEach(async () => {
  for (const d of detectors.splice(0)) d.close();
  await Promise.all(endpoints.splice(0).map((e) => e.close({ graceMs: 0 })));
  await Promise.all(servers.splice(0).map((s) => s.stop(0)));
});

/** Servers, one detector (with a long interval unless given), and a wrapped endpoint per server. */
async function setup(n: number, options: OutlierDetectionOptions = {}) {
  const started = await startServers(n, false);
  servers.push(...started);
  const detector = outlierDetection({ baseEjectionTimeMs: 200, intervalMs: 600_000, ...options });
  detectors.push(detector);
  const events: HealthEvent[] = [];
  detector.events$.subscribe((e) => events.push(e));
  const eps = started.map((s) => detector.wrap(grpcEndpoint(s.address, { credentials: insecure })));
  endpoints.push(...eps);
  await Promise.all(eps.map((ep) => next(ep.readiness$, (r) => r === 'ready')));
  return { servers: started, detector, events, eps };
}

/** Sends `n` unary calls one after another; returns their codes. */
async function calls(ep: Ep, n: number): Promise<number[]> {
  const codes: number[] = [];
  for (let i = 0; i < n; i++) codes.push((await send(ep)).code);
  return codes;
}

const ejections = (events: HealthEvent[]) => events.filter((e): e is EndpointEjected => e.type === 'ejected');

describe('outlierDetection: reconnect', () => {
  test("forwards to the inner endpoint's reconnect, except while ejected", async () => {
    const {
      servers: [a],
      detector,
      eps: [ep],
    } = await setup(3, { baseEjectionTimeMs: 1_000 });
    expect(ep!.reconnect()).toBeUndefined(); // connected: nothing to start
    const returned = next(detector.events$, (e) => e.type === 'returned');
    a!.failNext(100, Status.UNAVAILABLE);
    await calls(ep!, 5);
    expect(ep!.ejected).toBe(true);
    a!.kill();
    await next(ep!.inner.readiness$, (r) => r === 'failed');
    // a new connection would not end the ejection
    expect(ep!.ejected).toBe(true);
    expect(ep!.reconnect()).toBeUndefined();
    await returned;
    expect(ep!.readiness).toBe('failed'); // the connection's state now
    const attempt = ep!.reconnect();
    expect(attempt).toBeInstanceOf(Promise);
    await attempt; // refused: nothing listens any more
    expect(ep!.inner.lastError).toContain('ECONNREFUSED');
  });
});

describe('outlierDetection: consecutive failures', () => {
  test('5 failures in a row eject; the endpoint returns after the base time, and stays out longer the second time', async () => {
    const {
      servers: [a],
      detector,
      events,
      eps: [ep],
    } = await setup(3);
    a!.failNext(100, Status.UNAVAILABLE);
    expect(await calls(ep!, 4)).toEqual([14, 14, 14, 14]);
    expect(ep!.readiness).toBe('ready');
    await calls(ep!, 1);
    expect(ep!.readiness).toBe('failed');
    expect(ep!.ejected).toBe(true);
    expect(ejections(events)).toEqual([
      expect.objectContaining({
        endpoint: a!.address,
        algorithm: 'consecutive-failures',
        durationMs: 200,
        count: 1,
      }),
    ]);
    expect(ejections(events)[0]?.reason).toContain('5 consecutive failures, the last UNAVAILABLE');

    await next(ep!.readiness$, (r) => r === 'ready');
    expect(events.at(-1)).toMatchObject({ type: 'returned', endpoint: a!.address });

    // still failing: five more ejects it again, for twice as long
    await calls(ep!, 5);
    expect(ep!.readiness).toBe('failed');
    expect(ejections(events).map((e) => [e.count, e.durationMs])).toEqual([
      [1, 200],
      [2, 400],
    ]);
    await next(ep!.readiness$, (r) => r === 'ready');
    expect(events.map((e) => e.type)).toEqual(['ejected', 'returned', 'ejected', 'returned']);
    expect(detector.stats().endpoints[0]).toMatchObject({ ejections: 2, multiplier: 2, ejected: false });
  });

  test('a success in between resets the count; codes outside failureCodes are not failures', async () => {
    const {
      servers: [a],
      events,
      eps: [ep],
    } = await setup(3);
    a!.failNext(4, Status.UNAVAILABLE);
    await calls(ep!, 5); // 4 failures, then a success
    a!.failNext(4, Status.INTERNAL);
    await calls(ep!, 4);
    a!.failNext(10, Status.INVALID_ARGUMENT); // the request's fault, not the server's
    await calls(ep!, 10);
    expect(ejections(events)).toEqual([]);
    expect(ep!.readiness).toBe('ready');
  });

  test('failureCodes decide what counts', async () => {
    const {
      servers: [a],
      events,
      eps: [ep],
    } = await setup(3, {
      failureCodes: ['RESOURCE_EXHAUSTED'],
      consecutiveFailures: 3,
    });
    a!.failNext(5, Status.UNAVAILABLE);
    await calls(ep!, 5);
    expect(ejections(events)).toEqual([]);
    a!.failNext(3, Status.RESOURCE_EXHAUSTED);
    await calls(ep!, 3);
    expect(ejections(events)).toHaveLength(1);
  });

  test('calls the caller cancelled count as neither success nor failure', async () => {
    const {
      servers: [a],
      detector,
      events,
      eps: [ep],
    } = await setup(3, { consecutiveFailures: 2 });
    a!.setLatency(5_000);
    const scopes = [1, 2, 3].map(() => newContext());
    const pending = scopes.map((s) => send(ep!, 'Unary', { message: 'slow' }, s.context));
    await expect.poll(() => a!.calls.total).toBe(3);
    for (const s of scopes) s.controller.abort();
    expect((await Promise.all(pending)).map((r) => r.code)).toEqual([1, 1, 1]);
    for (const s of scopes) s.release();
    expect(detector.stats().endpoints[0]).toMatchObject({ successes: 0, failures: 0 });
    expect(ejections(events)).toEqual([]);
  });

  test('a stream that fails after its headers counts through its final status', async () => {
    const {
      servers: [a],
      events,
      eps: [ep],
    } = await setup(3);
    for (let i = 0; i < 5; i++) {
      const r = await send(ep!, 'ServerStream', {
        message: 's',
        count: 1,
        headersThenFail: Status.UNAVAILABLE,
      });
      expect(r.code).toBe(Status.UNAVAILABLE);
    }
    expect(ejections(events)).toHaveLength(1);
    expect(ejections(events)[0]?.endpoint).toBe(a!.address);
  });

  test('the ejection time is capped at max(base, maxEjectionTimeMs)', async () => {
    const {
      servers: [a],
      events,
      eps: [ep],
    } = await setup(3, { baseEjectionTimeMs: 100, maxEjectionTimeMs: 150 });
    a!.failNext(100, Status.UNAVAILABLE);
    for (let round = 0; round < 3; round++) {
      await calls(ep!, 5);
      await next(ep!.readiness$, (r) => r === 'ready');
    }
    expect(ejections(events).map((e) => e.durationMs)).toEqual([100, 150, 150]);
  });

  test('the multiplier decays by one per interval in rotation', async () => {
    const {
      servers: [a],
      detector,
      events,
      eps: [ep],
    } = await setup(3);
    a!.failNext(100, Status.UNAVAILABLE);
    await calls(ep!, 5);
    detector.sweep(); // ejected: no decay
    expect(detector.stats().endpoints[0]?.multiplier).toBe(1);
    await next(ep!.readiness$, (r) => r === 'ready');
    detector.sweep(); // one interval in rotation
    expect(detector.stats().endpoints[0]?.multiplier).toBe(0);
    await calls(ep!, 5);
    expect(ejections(events).map((e) => [e.count, e.durationMs])).toEqual([
      [1, 200],
      [1, 200],
    ]);
  });

  test('the interval timer runs the sweeps by itself', async () => {
    const {
      servers: [a],
      detector,
      eps: [ep],
    } = await setup(3, { intervalMs: 50 });
    a!.failNext(5, Status.UNAVAILABLE);
    await calls(ep!, 5);
    expect(ep!.ejected).toBe(true);
    await next(ep!.readiness$, (r) => r === 'ready');
    await expect.poll(() => detector.stats().endpoints[0]?.multiplier).toBe(0);
  });
});

describe('outlierDetection: the ejection share', () => {
  test.each([
    [3, 10, 1],
    [5, 40, 2],
    [4, 0, 1],
  ])('%i servers all failing, maxEjectionPercent %i: at most %i ejected at once', async (n, percent, max) => {
    const {
      servers: all,
      detector,
      events,
      eps,
    } = await setup(n, {
      maxEjectionPercent: percent,
      baseEjectionTimeMs: 60_000,
    });
    for (const s of all) s.failNext(1000, Status.UNAVAILABLE);
    let most = 0;
    detector.events$.subscribe(() => {
      most = Math.max(most, detector.stats().ejected);
    });
    for (let round = 0; round < 3; round++) for (const ep of eps) await calls(ep, 5);
    expect(detector.stats()).toMatchObject({ known: n, ejected: max, maxEjected: max });
    expect(ejections(events)).toHaveLength(max);
    expect(most).toBe(max);
    expect(eps.filter((e) => e.readiness === 'ready')).toHaveLength(n - max);
  });

  test('an outlier over maxEjectionPercent is reported unenforced (A91), once per run of failures', async () => {
    const {
      servers: all,
      events,
      eps,
    } = await setup(3, { maxEjectionPercent: 10, baseEjectionTimeMs: 60_000 });
    for (const s of all) s.failNext(1000, Status.UNAVAILABLE);
    for (let round = 0; round < 3; round++) for (const ep of eps) await calls(ep, 5);
    const [ejected] = ejections(events);
    const unenforced = events.filter((e) => e.type === 'unenforced');
    expect(unenforced).toHaveLength(2);
    for (const e of unenforced) {
      expect(e).toMatchObject({ algorithm: 'consecutive-failures', because: 'max-ejection-percent' });
    }
    expect(new Set(unenforced.map((e) => e.endpoint))).toEqual(
      new Set(all.map((s) => s.address).filter((a) => a !== ejected!.endpoint)),
    );
  });

  test('when an ejected endpoint returns, another one may take its place', async () => {
    // a base long enough for the five refused calls to B to end while A is out
    const {
      servers: [a, b],
      events,
      eps: [epA, epB],
    } = await setup(3, { baseEjectionTimeMs: 1_000 });
    a!.failNext(1000, Status.UNAVAILABLE);
    b!.failNext(1000, Status.UNAVAILABLE);
    await calls(epA!, 5);
    await calls(epB!, 5); // refused: one of three is the most
    expect(epB!.readiness).toBe('ready');
    await next(epA!.readiness$, (r) => r === 'ready');
    await calls(epB!, 1); // its count is still 6 in a row: ejected now
    expect(epB!.readiness).toBe('failed');
    expect(ejections(events).map((e) => e.endpoint)).toEqual([a!.address, b!.address]);
  });
});

describe('outlierDetection: A50 rate algorithms', () => {
  /** a fails `failed` of its 10 calls, the others none. */
  async function traffic(eps: Ep[], a: EchoServer, failed: number) {
    a.failNext(failed, Status.UNAVAILABLE);
    for (const ep of eps) await calls(ep, 10);
  }

  test('success rate: an endpoint below mean − stdev × factor is ejected at the sweep', async () => {
    const {
      servers: [a],
      detector,
      events,
      eps,
    } = await setup(3, {
      consecutiveFailures: 0,
      successRateEjection: { stdevFactor: 1000, minimumHosts: 3, requestVolume: 10 },
    });
    await traffic(eps, a!, 6); // success rates 0.4, 1, 1: mean 0.8, stdev 0.28
    expect(ejections(events)).toEqual([]);
    detector.sweep();
    expect(ejections(events)).toEqual([
      expect.objectContaining({ endpoint: a!.address, algorithm: 'success-rate', count: 1 }),
    ]);
    expect(ejections(events)[0]?.reason).toContain('success rate 40.0 %');
  });

  test('success rate: not run with fewer hosts than minimumHosts having the request volume', async () => {
    const {
      servers: [a],
      detector,
      events,
      eps,
    } = await setup(3, {
      consecutiveFailures: 0,
      successRateEjection: { stdevFactor: 1000, minimumHosts: 3, requestVolume: 11 },
    });
    await traffic(eps, a!, 6);
    detector.sweep();
    expect(ejections(events)).toEqual([]);
  });

  test('failure percentage: at or above the threshold is ejected at the sweep', async () => {
    const {
      servers: [a],
      detector,
      events,
      eps,
    } = await setup(3, {
      consecutiveFailures: 0,
      failurePercentageEjection: { threshold: 60, minimumHosts: 3, requestVolume: 10 },
    });
    await traffic(eps, a!, 6);
    detector.sweep();
    expect(ejections(events)).toEqual([
      expect.objectContaining({ endpoint: a!.address, algorithm: 'failure-percentage' }),
    ]);
  });

  test('failure percentage: enforcementPercentage 0 detects but never ejects; the counts reset each interval', async () => {
    const {
      servers: [a],
      detector,
      events,
      eps,
    } = await setup(3, {
      consecutiveFailures: 0,
      failurePercentageEjection: {
        threshold: 50,
        enforcementPercentage: 0,
        minimumHosts: 3,
        requestVolume: 10,
      },
    });
    await traffic(eps, a!, 8);
    expect(detector.stats().endpoints[0]).toMatchObject({ failures: 8, successes: 2 });
    detector.sweep();
    expect(ejections(events)).toEqual([]);
    // detected all the same: reported as an outlier left in (A91's unenforced ejection)
    expect(events.filter((e) => e.type === 'unenforced')).toEqual([
      {
        type: 'unenforced',
        endpoint: a!.address,
        algorithm: 'failure-percentage',
        because: 'enforcement-percentage',
      },
    ]);
    expect(detector.stats().endpoints[0]).toMatchObject({ failures: 0, successes: 0 });
  });
});

describe('outlierDetection: lifecycle and options', () => {
  test('closing a wrapper forgets its address; close() of the detector returns every ejected endpoint', async () => {
    const {
      servers: [a],
      detector,
      events,
      eps,
    } = await setup(3, { baseEjectionTimeMs: 60_000 });
    a!.failNext(5, Status.UNAVAILABLE);
    await calls(eps[0]!, 5);
    expect(eps[0]!.readiness).toBe('failed');
    await eps[2]!.close();
    expect(detector.stats().known).toBe(2);
    expect(eps[2]!.readiness).toBe('closed');
    let completed = false;
    detector.events$.subscribe({ complete: () => (completed = true) });
    detector.close();
    expect(eps[0]!.readiness).toBe('ready');
    expect(events.at(-1)).toMatchObject({ type: 'returned', endpoint: a!.address });
    expect(completed).toBe(true);
    expect(() =>
      detector.wrap(grpcEndpoint('127.0.0.1:1', { credentials: insecure }) as NativeGrpcEndpoint),
    ).toThrow(/closed/);
  });

  test.each([
    [{ consecutiveFailures: -1 }, 'consecutiveFailures'],
    [{ consecutiveFailures: 1.5 }, 'consecutiveFailures'],
    [{ failureCodes: ['OK'] }, 'failureCodes[0]'],
    [{ failureCodes: ['UNAVAILABLE', 'NOPE'] }, 'failureCodes[1]'],
    [{ intervalMs: 0 }, 'intervalMs'],
    [{ baseEjectionTimeMs: -5 }, 'baseEjectionTimeMs'],
    [{ maxEjectionTimeMs: Number.NaN }, 'maxEjectionTimeMs'],
    [{ maxEjectionPercent: 101 }, 'maxEjectionPercent'],
    [{ successRateEjection: { enforcementPercentage: 150 } }, 'successRateEjection.enforcementPercentage'],
    [{ successRateEjection: { minimumHosts: 0 } }, 'successRateEjection.minimumHosts'],
    [{ failurePercentageEjection: { threshold: -1 } }, 'failurePercentageEjection.threshold'],
    [{ failurePercentageEjection: { requestVolume: 2.5 } }, 'failurePercentageEjection.requestVolume'],
  ])('%j throws ConfigError naming %s', (options, option) => {
    let caught: unknown;
    try {
      outlierDetection(options as OutlierDetectionOptions);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).option).toBe(option);
  });

  test('wrapping something that is not an endpoint throws ConfigError', () => {
    const detector = outlierDetection();
    detectors.push(detector);
    expect(() => detector.wrap({} as never)).toThrow(ConfigError);
  });

  test('the weight, zone and topology hints of a discovered address travel on its insert, around the wrapper', async () => {
    const detector = outlierDetection();
    detectors.push(detector);
    const insert = await placedInsert((address) =>
      detector.wrap(grpcEndpoint(address, { credentials: insecure })),
    );
    endpoints.push(insert.endpoint);
    expect(insert.endpoint.address).toBe(PLACED.address);
    expect(insert.metadata).toEqual({ weight: 2, zone: 'a', forZones: ['a'] });
  });

  test("defaults are A50's and Envoy's", () => {
    const o = outlierDetection().options;
    expect(o).toMatchObject({
      consecutiveFailures: 5,
      intervalMs: 10_000,
      baseEjectionTimeMs: 30_000,
      maxEjectionTimeMs: 300_000,
      maxEjectionPercent: 10,
      successRateEjection: undefined,
      failurePercentageEjection: undefined,
    });
    expect([...o.failureCodes].sort((x, y) => x - y)).toEqual([2, 4, 13, 14]);
    expect(outlierDetection({ successRateEjection: true }).options.successRateEjection).toEqual({
      stdevFactor: 1900,
      enforcementPercentage: 100,
      minimumHosts: 5,
      requestVolume: 100,
    });
    expect(outlierDetection({ failurePercentageEjection: true }).options.failurePercentageEjection).toEqual({
      threshold: 85,
      enforcementPercentage: 100,
      minimumHosts: 5,
      requestVolume: 50,
    });
  });
});
