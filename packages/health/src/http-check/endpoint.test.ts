// httpHealthChecked against real node:http2 servers on loopback hosts,
// through real http2Endpoints: /healthz answers what the test sets, and
// the servers count every check they see.
import { type Balancer, p2c, pendingRequests } from '@grpc-tower/balance';
import { ConfigError, type Endpoint, type Readiness, background, type Change } from '@grpc-tower/core';
import { type Http2Request, type Http2Response, http2Endpoint } from '@grpc-tower/core/http2';
import { trackResources } from '@grpc-tower/testing';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import type { HealthEvent } from '../events.js';
import { type TestHttp2Server, startHttp2Server } from '../test/http2.js';
import { PLACED, next, placedInsert } from '../test/support.js';
import { type HttpHealthCheckedEndpoint, httpHealthChecked } from './endpoint.js';
import type { HttpHealthCheckOptions } from './options.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function server(name: string, at?: { host: string; port: number }): Promise<TestHttp2Server> {
  const s = await startHttp2Server(name, at);
  cleanup.push(() => s.stop());
  return s;
}

const inner = (address: string) =>
  http2Endpoint(address, { scheme: 'http', initialBackoffMs: 20, maxBackoffMs: 50 });

function checked(
  target: Endpoint<Http2Request, Http2Response> | string,
  options: Partial<HttpHealthCheckOptions> = {},
) {
  const health = httpHealthChecked({ path: '/healthz', intervalMs: 10, ...options });
  const events: HealthEvent[] = [];
  health.events$.subscribe((e) => events.push(e));
  const ep = health(typeof target === 'string' ? inner(target) : target);
  cleanup.push(() => ep.close({ graceMs: 0 }));
  const states: Readiness[] = [];
  ep.readiness$.subscribe((r) => states.push(r));
  return { health, ep, events, states };
}

const healthChanges = (events: HealthEvent[]) =>
  events.flatMap((e) => (e.type === 'health' ? [`${e.from}->${e.to}`] : []));

const work = (svc: { call(req: Http2Request, ctx: typeof background): Promise<Http2Response> }) =>
  svc.call({ path: '/work' }, background);

describe('httpHealthChecked: the verdict', () => {
  test('/healthz turning 503 fails the endpoint after unhealthyThreshold checks; 200 again readies it after healthyThreshold', async () => {
    const s = await server('s0');
    const { health, ep, events, states } = checked(s.address, { unhealthyThreshold: 3, healthyThreshold: 2 });
    // what the server had answered when each verdict changed
    const answered: { to: string; failures: number; successes: number }[] = [];
    health.events$.subscribe((e) => {
      if (e.type === 'health') {
        answered.push({ to: e.to, failures: s.count('/healthz', 503), successes: s.count('/healthz', 200) });
      }
    });
    await next(ep.readiness$, (r) => r === 'ready');
    expect(ep.health).toBe('healthy');
    expect(ep.lastStatus).toBe(200);

    s.set('/healthz', 503);
    await next(ep.readiness$, (r) => r === 'failed');
    expect(answered[1]).toMatchObject({ to: 'unhealthy', failures: 3 });
    expect(ep.lastError).toBe('health check GET /healthz: 503');
    expect(ep.lastStatus).toBe(503);

    const successesBefore = s.count('/healthz', 200);
    s.set('/healthz', 200);
    await next(ep.readiness$, (r) => r === 'ready');
    expect(answered[2]?.to).toBe('healthy');
    expect(answered[2]!.successes - successesBefore).toBe(2);
    expect(ep.lastError).toBeUndefined();

    expect(states).toEqual(['connecting', 'ready', 'failed', 'ready']);
    expect(healthChanges(events)).toEqual(['unknown->healthy', 'healthy->unhealthy', 'unhealthy->healthy']);
    expect(events[1]).toMatchObject({
      type: 'health',
      endpoint: s.address,
      reason: 'GET /healthz answered 503 (3 in a row)',
      status: undefined,
    });
    expect(events[2]).toMatchObject({ reason: 'GET /healthz answered 200 (2 in a row)' });
  });

  test('one failed check between successes does not take the endpoint out', async () => {
    const s = await server('s0');
    const { ep, events } = checked(s.address, { unhealthyThreshold: 2 });
    await next(ep.readiness$, (r) => r === 'ready');
    const before = s.count('/healthz');
    s.script('/healthz', [503, 200, 503, 200, 503, 200]);
    await expect.poll(() => s.count('/healthz')).toBeGreaterThan(before + 6);
    expect(healthChanges(events)).toEqual(['unknown->healthy']);
    expect(ep.readiness).toBe('ready');
  });

  test('the first answer decides: a server answering 503 from the start is failed after one check', async () => {
    const s = await server('s0');
    s.set('/healthz', 503);
    const { ep, events, states } = checked(s.address, { unhealthyThreshold: 5 });
    await next(ep.readiness$, (r) => r === 'failed');
    expect(s.count('/healthz')).toBe(1);
    expect(states).toEqual(['connecting', 'failed']);
    expect(events).toEqual([
      {
        type: 'health',
        endpoint: s.address,
        from: 'unknown',
        to: 'unhealthy',
        reason: 'GET /healthz answered 503',
        status: undefined,
      },
    ]);
  });

  test('behind p2c: a server whose /healthz answers 503 stops getting calls, and gets them again on 200', async () => {
    const [a, b] = [await server('a'), await server('b')];
    const health = httpHealthChecked({ path: '/healthz', intervalMs: 10, unhealthyThreshold: 2 });
    const changes = new Subject<Change<string, HttpHealthCheckedEndpoint>>();
    const balancer: Balancer<Http2Request, Http2Response, string> = p2c(changes, {
      target: 'items',
      load: pendingRequests(),
      panicThresholdPercent: 0,
    });
    cleanup.push(() => balancer.close({ graceMs: 0 }));
    const eps = [a, b].map((s) => health(inner(s.address)));
    for (const ep of eps) changes.next({ type: 'insert', key: ep.address, endpoint: ep });
    await Promise.all(eps.map((ep) => next(ep.readiness$, (r) => r === 'ready')));

    const served = async (n: number) => {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) {
        const res = await work(balancer);
        expect(res.status).toBe(200);
        seen.add(String(res.headers['x-server']));
      }
      return seen;
    };
    expect(await served(40)).toEqual(new Set(['a', 'b']));

    a.set('/healthz', 503);
    await next(eps[0]!.readiness$, (r) => r === 'failed');
    expect(a.count('/healthz', 503)).toBe(2);
    const before = a.count('/work');
    expect(await served(40)).toEqual(new Set(['b']));
    expect(a.count('/work')).toBe(before);
    expect(balancer.counts().ready).toBe(1);

    a.set('/healthz', 200);
    await next(eps[0]!.readiness$, (r) => r === 'ready');
    expect(await served(40)).toContain('a');
    expect(a.count('/work')).toBeGreaterThan(before);
  });

  test('expectedStatuses: by default 204 and 302 are healthy and 404 is not; with [200] alone 204 is not', async () => {
    const s = await server('s0');
    s.set('/no-content', 204);
    s.set('/moved', 302);
    s.set('/missing', 404);
    const verdict = async (path: string, options: Partial<HttpHealthCheckOptions> = {}) => {
      const { ep } = checked(s.address, { path, ...options });
      return next(ep.readiness$, (r) => r === 'ready' || r === 'failed');
    };
    expect(await verdict('/no-content')).toBe('ready');
    expect(await verdict('/moved')).toBe('ready');
    expect(await verdict('/missing')).toBe('failed');
    expect(await verdict('/no-content', { expectedStatuses: [200] })).toBe('failed');
    expect(await verdict('/missing', { expectedStatuses: [200, [400, 404]] })).toBe('ready');
  });

  test("the path, the query and the headers go out with every check, on the endpoint's own session", async () => {
    const s = await server('s0');
    s.set('/ready?full=1', 200);
    const { ep } = checked(s.address, {
      path: '/ready?full=1',
      headers: { ':authority': 'items.internal', 'x-probe': 'client' },
    });
    await next(ep.readiness$, (r) => r === 'ready');
    await expect.poll(() => s.count('/ready?full=1')).toBeGreaterThanOrEqual(2);
    for (const seen of s.seen.filter((x) => x.path === '/ready?full=1')) {
      expect(seen.headers).toMatchObject({
        ':method': 'GET',
        ':authority': 'items.internal',
        'x-probe': 'client',
      });
    }
    await work(ep);
    expect(s.seen.find((x) => x.path === '/work')?.headers[':authority']).toBe(s.address);
  });
});

describe('httpHealthChecked: failures without an answer', () => {
  test('a check that hangs times out, counts as a failure, and its stream is cancelled; the next answer counts', async () => {
    const s = await server('s0');
    s.set('/healthz', 'hang');
    const { ep, events } = checked(s.address, { timeoutMs: 50, healthyThreshold: 1 });
    await next(ep.readiness$, (r) => r === 'failed');
    expect(ep.lastError).toBe('health check GET /healthz: timed out after 50 ms');
    expect(events[0]).toMatchObject({ to: 'unhealthy', reason: 'GET /healthz timed out after 50 ms' });
    await expect.poll(() => s.abandoned).toBeGreaterThanOrEqual(1);

    s.set('/healthz', 200);
    await next(ep.readiness$, (r) => r === 'ready');
    expect(healthChanges(events)).toEqual(['unknown->unhealthy', 'unhealthy->healthy']);
  });

  test('a reset stream is a failed check, named in lastError', async () => {
    const s = await server('s0');
    s.set('/healthz', 'reset');
    const { ep } = checked(s.address);
    await next(ep.readiness$, (r) => r === 'failed');
    expect(ep.lastError).toMatch(/^health check GET \/healthz: HTTP\/2 .*(NGHTTP2_INTERNAL_ERROR|code 2)/);
    // the session is fine: calls still go through, the endpoint is only held out
    expect((await work(ep)).status).toBe(200);
    expect(ep.connected).toBe(true);
  });

  test("checks pause while the connection is down and start again, first, on the next one; the connection's readiness gates", async () => {
    const s = await server('s0');
    const { host, port } = s;
    let calls = 0;
    const real = inner(s.address);
    const counting: Endpoint<Http2Request, Http2Response> = {
      address: real.address,
      get readiness() {
        return real.readiness;
      },
      readiness$: real.readiness$,
      get pending() {
        return real.pending;
      },
      get lastError() {
        return real.lastError;
      },
      call: (req, ctx) => {
        calls++;
        return real.call(req, ctx);
      },
      close: (o) => real.close(o),
    };
    const { ep, events } = checked(counting, { intervalMs: 5, unhealthyThreshold: 2 });
    await next(ep.readiness$, (r) => r === 'ready');
    await expect.poll(() => s.count('/healthz')).toBeGreaterThanOrEqual(3);

    let down = -1;
    real.readiness$.subscribe((r) => {
      if (r !== 'ready' && down < 0) down = calls;
    });
    await s.stop();
    await next(ep.readiness$, (r) => r !== 'ready');
    expect(['connecting', 'failed']).toContain(ep.readiness);
    expect(ep.lastError).toBe(real.lastError); // the connection's reason, not a verdict
    await new Promise((resolve) => setTimeout(resolve, 100)); // twenty intervals' worth
    expect(calls).toBe(down);

    const again = await server('again', { host, port });
    await next(ep.readiness$, (r) => r === 'ready');
    expect(again.seen[0]?.path).toBe('/healthz');
    expect(healthChanges(events)).toEqual(['unknown->healthy', 'healthy->unknown', 'unknown->healthy']);
    expect(events[1]).toMatchObject({ reason: expect.stringMatching(/^connection (lost|failed)$/) });
  });
});

describe('httpHealthChecked: reconnect', () => {
  test("reconnect() starts the inner endpoint's attempt now; once connected it is ready after its first check", async () => {
    const s = await server('s0');
    const { host, port } = s;
    // a backoff of a minute: only reconnect() can bring the connection back within the test
    const slow = http2Endpoint(s.address, {
      scheme: 'http',
      initialBackoffMs: 60_000,
      maxBackoffMs: 120_000,
    });
    const { ep } = checked(slow);
    await next(ep.readiness$, (r) => r === 'ready');
    expect(ep.reconnect()).toBeUndefined(); // connected: nothing to start
    await s.stop();
    await next(ep.readiness$, (r) => r === 'failed');
    const again = await server('again', { host, port });
    const attempt = ep.reconnect();
    expect(attempt).toBeInstanceOf(Promise);
    expect(ep.reconnect()).toBe(attempt); // the inner endpoint's one attempt
    await attempt;
    expect(slow.readiness).toBe('ready');
    await next(ep.readiness$, (r) => r === 'ready');
    expect(again.seen[0]?.path).toBe('/healthz');
  });
});

describe('httpHealthChecked: lifecycle', () => {
  test('the check in flight is not counted in pending; close() aborts it, closes the endpoint, and leaves nothing alive', async () => {
    const s = await server('s0');
    s.set('/healthz', 'hang');
    const tracker = trackResources();
    try {
      const real = inner(s.address);
      const ep = httpHealthChecked({ path: '/healthz', timeoutMs: 60_000, intervalMs: 60_000 })(real);
      let completed = false;
      ep.readiness$.subscribe({ complete: () => (completed = true) });
      await expect.poll(() => s.count('/healthz')).toBe(1);
      expect(real.pending).toBe(1);
      expect(ep.pending).toBe(0);
      expect(ep.readiness).toBe('connecting');

      await ep.close(); // with the check left open, the endpoint would wait its 30 s grace
      expect(real.readiness).toBe('closed');
      expect(ep.readiness).toBe('closed');
      expect(completed).toBe(true);
      await expect.poll(() => s.abandoned).toBe(1);
      await s.stop();
      await tracker.expectNone({ settleMs: 3000 });
    } finally {
      tracker.stop();
    }
  });

  test('initialJitterMs holds the first check back (the endpoint waits at connecting); a draw of 0 checks at once', async () => {
    const s = await server('s0');
    const late = checked(s.address, { initialJitterMs: 60_000, random: () => 0.5 });
    await next(late.ep.inner.readiness$, (r) => r === 'ready');
    for (let i = 0; i < 10; i++) expect((await work(late.ep)).status).toBe(200);
    expect(s.count('/healthz')).toBe(0);
    expect(late.ep.readiness).toBe('connecting');

    const soon = checked(s.address, { initialJitterMs: 60_000, random: () => 0 });
    await next(soon.ep.readiness$, (r) => r === 'ready');
    expect(s.count('/healthz')).toBeGreaterThanOrEqual(1);
  });
});

describe('httpHealthChecked: options', () => {
  test.each([
    [undefined, 'options'],
    [{}, 'path'],
    [{ path: 'healthz' }, 'path'],
    [{ path: '/health z' }, 'path'],
    [{ path: '/healthz', expectedStatuses: [] }, 'expectedStatuses'],
    [{ path: '/healthz', expectedStatuses: 200 }, 'expectedStatuses'],
    [{ path: '/healthz', expectedStatuses: [200, [300, 200]] }, 'expectedStatuses[1]'],
    [{ path: '/healthz', expectedStatuses: [[99, 200]] }, 'expectedStatuses[0]'],
    [{ path: '/healthz', expectedStatuses: [600] }, 'expectedStatuses[0]'],
    [{ path: '/healthz', intervalMs: 0 }, 'intervalMs'],
    [{ path: '/healthz', timeoutMs: -1 }, 'timeoutMs'],
    [{ path: '/healthz', unhealthyThreshold: 0 }, 'unhealthyThreshold'],
    [{ path: '/healthz', healthyThreshold: 1.5 }, 'healthyThreshold'],
    [{ path: '/healthz', initialJitterMs: -1 }, 'initialJitterMs'],
    [{ path: '/healthz', headers: 'host: x' }, 'headers'],
    [{ path: '/healthz', headers: { ':path': '/other' } }, 'headers.:path'],
    [{ path: '/healthz', headers: { Connection: 'close' } }, 'headers.Connection'],
    [{ path: '/healthz', headers: { 'x-a': { b: 1 } } }, 'headers.x-a'],
    [{ path: '/healthz', random: 1 }, 'random'],
  ])('%j throws ConfigError naming %s', (options, option) => {
    let caught: unknown;
    try {
      httpHealthChecked(options as HttpHealthCheckOptions);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).option).toBe(option);
    expect((caught as ConfigError).where).toBe('httpHealthChecked');
  });

  test('wrapping something that is not an endpoint throws ConfigError', () => {
    expect(() => httpHealthChecked({ path: '/healthz' })({} as never)).toThrow(ConfigError);
  });

  test('the weight, zone and topology hints of a discovered address travel on its insert, around the wrapper', async () => {
    const insert = await placedInsert((address) =>
      httpHealthChecked({ path: '/healthz' })(http2Endpoint(address, { scheme: 'http' })),
    );
    const ep = insert.endpoint;
    cleanup.push(() => ep.close({ graceMs: 0 }));
    expect(ep.address).toBe(PLACED.address);
    expect(insert.metadata).toEqual({ weight: 2, zone: 'a', forZones: ['a'] });
  });

  test('defaults: 200–399 healthy, every 5 s, 1 s timeout, 2 failures out, 2 successes back, no jitter', () => {
    expect(httpHealthChecked({ path: '/healthz' }).options).toMatchObject({
      path: '/healthz',
      expectedStatuses: [[200, 399]],
      intervalMs: 5_000,
      timeoutMs: 1_000,
      unhealthyThreshold: 2,
      healthyThreshold: 2,
      initialJitterMs: 0,
      headers: undefined,
    });
  });
});
