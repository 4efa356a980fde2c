// The balancer's lifecycle over counting endpoints (no network; see
// test/counting-endpoint.ts): waiting, fail-fast, readiness, draining,
// replacement, churn, stats, events and close. The same behaviour over real
// gRPC servers is in grpc.test.ts.
import {
  CancelledError,
  ClosedError,
  ConfigError,
  DeadlineExceededError,
  GraceExpiredError,
  GrpcTowerError,
  Status,
  UnavailableError,
  background,
  newContext,
  type Change,
} from '@grpc-tower/core';
import { activeHandles, expectNoLeaks } from '@grpc-tower/testing';
import { Subject, firstValueFrom, take, toArray } from 'rxjs';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { Balancer } from './balancer.js';
import { AvoidEndpoints } from './hints.js';
import { NoReadyEndpointDeadlineError, NoReadyEndpointError } from './errors.js';
import type { BalancerEvent } from './events.js';
import { peakEwma } from './load/peak-ewma.js';
import { pendingRequests } from './load/pending.js';
import type { BalancerOptions } from './options.js';
import { p2c } from './p2c.js';
import { roundRobin } from './round-robin.js';
import { CountingEndpoint } from './test/counting-endpoint.js';
import { seededRandom } from './test/prng.js';

type B = Balancer<string, string, string>;
const open: B[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close({ graceMs: 0 })));
});

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function make(kind: 'p2c' | 'roundRobin' = 'p2c', options: BalancerOptions = {}) {
  const discover = new Subject<Change<string, CountingEndpoint>>();
  const balancer: B =
    kind === 'p2c'
      ? p2c(discover, { load: pendingRequests(), random: seededRandom(42), target: 'echo.test', ...options })
      : roundRobin(discover, { target: 'echo.test', ...options });
  open.push(balancer);
  const events: BalancerEvent<string>[] = [];
  balancer.events$.subscribe((e) => events.push(e));
  const insert = (ep: CountingEndpoint, key = ep.address) =>
    discover.next({ type: 'insert', key, endpoint: ep });
  const remove = (key: string) => discover.next({ type: 'remove', key });
  return { discover, balancer, events, insert, remove };
}

describe.each(['p2c', 'roundRobin'] as const)('%s: waiting for a ready endpoint', (kind) => {
  test('zero endpoints, then one appears: the waiting call goes to it', async () => {
    const { balancer, insert } = make(kind);
    const call = balancer.call('hello', background);
    await tick();
    expect(balancer.stats().waiting).toBe(1);
    const ep = new CountingEndpoint('10.0.0.1:50051', 'connecting');
    insert(ep);
    await tick();
    expect(balancer.stats().waiting).toBe(1); // connecting is not ready
    ep.setReadiness('ready');
    await expect(call).resolves.toBe('10.0.0.1:50051:hello');
    expect(balancer.stats().waiting).toBe(0);
  });

  test('waiting calls are served in order when an endpoint turns ready', async () => {
    const { balancer, insert } = make(kind);
    // connecting: calls wait for it (with every endpoint failed they would fail at once)
    const ep = new CountingEndpoint('10.0.0.1:50051', 'connecting');
    insert(ep);
    const order: string[] = [];
    const calls = ['a', 'b', 'c'].map((r) => balancer.call(r, background).then((v) => order.push(v)));
    ep.setReadiness('ready');
    await Promise.all(calls);
    expect(order).toEqual(['10.0.0.1:50051:a', '10.0.0.1:50051:b', '10.0.0.1:50051:c']);
  });

  test('past failFastMs the call fails with a named UNAVAILABLE error naming the target and counts', async () => {
    // panic mode off: it would send the call to the ejected endpoint, whose connection is up
    const { balancer, insert } = make(kind, { failFastMs: 50, panicThresholdPercent: 0 });
    insert(new CountingEndpoint('10.0.0.1:50051', 'connecting'));
    insert(new CountingEndpoint('10.0.0.2:50051', 'failed'));
    // held out by a health check or outlier detection while its connection is up
    const ejected = new CountingEndpoint('10.0.0.3:50051', 'failed');
    ejected.connectedOverride = true;
    insert(ejected);
    const err = await balancer.call('x', background).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NoReadyEndpointError);
    expect(err).toBeInstanceOf(UnavailableError);
    const e = err as NoReadyEndpointError;
    expect(e.code).toBe(Status.UNAVAILABLE);
    expect(e.target).toBe('echo.test');
    expect(e.counts).toEqual({ known: 3, ready: 0, connecting: 1, failed: 1, ejected: 1, closed: 0 });
    expect(e.message).toContain('target "echo.test"');
    expect(e.message).toContain('3 known: 0 ready, 1 connecting, 1 failed, 1 ejected, 0 closed');
    expect(e.waitedMs).toBeGreaterThanOrEqual(49);
    expect(balancer.stats().waiting).toBe(0);
  });

  test('with nothing discovered, the error says so', async () => {
    const { balancer } = make(kind, { failFastMs: 10 });
    const err = await balancer.call('x', background).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoReadyEndpointError);
    expect((err as Error).message).toContain('(no endpoint known); no endpoint discovered yet');
  });

  test('failFastMs 0 fails at once', async () => {
    const { balancer, insert } = make(kind, { failFastMs: 0 });
    insert(new CountingEndpoint('10.0.0.1:50051', 'connecting'));
    await expect(balancer.call('x', background)).rejects.toBeInstanceOf(NoReadyEndpointError);
  });

  test('a deadline sooner than failFastMs ends the wait with DEADLINE_EXCEEDED and the counts', async () => {
    const { balancer, insert } = make(kind, { failFastMs: 10_000 });
    insert(new CountingEndpoint('10.0.0.1:50051', 'connecting'));
    const scope = newContext({ timeoutMs: 40 });
    try {
      const err = await balancer.call('x', scope.context).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NoReadyEndpointDeadlineError);
      expect((err as NoReadyEndpointDeadlineError).code).toBe(Status.DEADLINE_EXCEEDED);
      expect((err as Error).message).toContain('1 known: 0 ready, 1 connecting');
    } finally {
      scope.release();
    }
    expect(balancer.stats().waiting).toBe(0);
  });

  test('cancelling a waiting call rejects it with the abort reason and dequeues it', async () => {
    const { balancer } = make(kind);
    const scope = newContext({});
    const call = balancer.call('x', scope.context);
    await tick();
    expect(balancer.stats().waiting).toBe(1);
    scope.controller.abort(new CancelledError('user went away'));
    await expect(call).rejects.toThrow('user went away');
    expect(balancer.stats().waiting).toBe(0);
    scope.release();
  });

  test('waitForReady waits past failFastMs until an endpoint is ready', async () => {
    const { balancer, insert } = make(kind, { failFastMs: 5, waitForReady: true });
    const call = balancer.call('x', background);
    await sleep(60);
    expect(balancer.stats().waiting).toBe(1);
    insert(new CountingEndpoint('10.0.0.1:50051'));
    await expect(call).resolves.toBe('10.0.0.1:50051:x');
  });

  test('an already aborted call fails without waiting', async () => {
    const { balancer, insert } = make(kind);
    insert(new CountingEndpoint('10.0.0.1:50051'));
    const ac = new AbortController();
    ac.abort();
    await expect(balancer.call('x', background.withSignal(ac.signal))).rejects.toBeInstanceOf(CancelledError);
  });
});

describe('when no endpoint can take the call', () => {
  const refused = (address: string): CountingEndpoint => {
    const ep = new CountingEndpoint(address, 'failed');
    ep.lastError = `connect ECONNREFUSED ${address}`;
    return ep;
  };

  test('with every known endpoint failed, the call fails at once naming their last errors, not to be retried', async () => {
    const { balancer, insert } = make('p2c', { failFastMs: 10_000, panicThresholdPercent: 0 });
    insert(refused('10.0.0.1:50051'));
    insert(refused('10.0.0.2:50051'));
    const started = Date.now();
    const err = await balancer.call('x', background).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(err).toBeInstanceOf(NoReadyEndpointError);
    const e = err as NoReadyEndpointError;
    expect(e.code).toBe(Status.UNAVAILABLE);
    expect(e.retryable).toBe(false);
    expect(e.waitedMs).toBe(0);
    expect(e.message).toContain('2 known: 0 ready, 0 connecting, 2 failed');
    expect(e.message).toContain(
      'last errors: 10.0.0.1:50051: connect ECONNREFUSED 10.0.0.1:50051; ' +
        '10.0.0.2:50051: connect ECONNREFUSED 10.0.0.2:50051',
    );
    expect(balancer.stats().waiting).toBe(0);
  });

  test('a call waiting for a connecting endpoint fails as soon as that endpoint fails', async () => {
    const { balancer, insert } = make('p2c', { failFastMs: 10_000 });
    const ep = new CountingEndpoint('10.0.0.1:50051', 'connecting');
    insert(ep);
    const call = balancer.call('x', background).catch((e: unknown) => e);
    await tick();
    expect(balancer.stats().waiting).toBe(1);
    ep.lastError = 'connect ECONNREFUSED 10.0.0.1:50051';
    ep.setReadiness('failed');
    const err = await call;
    expect(err).toBeInstanceOf(NoReadyEndpointError);
    expect((err as Error).message).toContain(
      'last error: 10.0.0.1:50051: connect ECONNREFUSED 10.0.0.1:50051',
    );
    expect(balancer.stats().waiting).toBe(0);
  });

  test('past three endpoints the message says how many more', async () => {
    const { balancer, insert } = make('p2c', { panicThresholdPercent: 0 });
    for (let i = 1; i <= 5; i++) insert(refused(`10.0.0.${i}:50051`));
    const err = (await balancer.call('x', background).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain('10.0.0.3:50051: connect ECONNREFUSED 10.0.0.3:50051; and 2 more');
    expect(err.message).not.toContain('10.0.0.4:50051:');
  });

  test('with waitForReady the call waits for a failed endpoint to recover', async () => {
    const { balancer, insert } = make('p2c', { waitForReady: true });
    const ep = refused('10.0.0.1:50051');
    insert(ep);
    const call = balancer.call('x', background);
    await sleep(30);
    expect(balancer.stats().waiting).toBe(1);
    ep.setReadiness('ready');
    await expect(call).resolves.toBe('10.0.0.1:50051:x');
  });

  test('an emptied set while discovery works is waited on: the next insert serves the call', async () => {
    const { balancer, insert, remove } = make('p2c', { failFastMs: 10_000 });
    insert(new CountingEndpoint('10.0.0.1:50051'));
    remove('10.0.0.1:50051');
    const call = balancer.call('x', background);
    await tick();
    expect(balancer.stats().waiting).toBe(1);
    insert(new CountingEndpoint('10.0.0.2:50051'));
    await expect(call).resolves.toBe('10.0.0.2:50051:x');
  });

  test('a failing source with nothing known fails calls at once, naming its error, until it works again', async () => {
    const discover = new Subject<Change<string, CountingEndpoint>>();
    const events$ = new Subject<{ type: string; error?: unknown }>();
    const source = Object.assign(discover.asObservable(), { events$: events$.asObservable() });
    const balancer: B = p2c(source, { target: 'orders.internal:50051', failFastMs: 10_000 });
    open.push(balancer);
    const waiting = balancer.call('early', background).catch((e: unknown) => e);
    await tick();
    expect(balancer.stats().waiting).toBe(1);
    events$.next({
      type: 'failed',
      error: new Error('DNS A/AAAA query for orders.internal failed: ENOTFOUND'),
    });
    const early = await waiting;
    expect(early).toBeInstanceOf(NoReadyEndpointError);
    expect((early as Error).message).toContain(
      '(no endpoint known); discovery failed: DNS A/AAAA query for orders.internal failed: ENOTFOUND',
    );
    expect(balancer.readiness).toBe('failed');
    const err = await balancer.call('x', background).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoReadyEndpointError);
    expect((err as NoReadyEndpointError).waitedMs).toBe(0);
    // the source answers again: calls wait for its endpoints
    events$.next({ type: 'resolved' });
    const next = balancer.call('y', background);
    await tick();
    expect(balancer.stats().waiting).toBe(1);
    discover.next({ type: 'insert', key: 'a', endpoint: new CountingEndpoint('10.0.0.1:50051') });
    await expect(next).resolves.toBe('10.0.0.1:50051:y');
  });
});

describe('waiting calls release their timers and listeners on every path', () => {
  test('woken, timed out, cancelled, deadline and closed waiters leave nothing behind', async () => {
    const before = activeHandles();
    const { balancer, insert } = make('p2c', { failFastMs: 30 });
    const ac = new AbortController();
    // the listeners currently registered on `signal`
    const live = new Set<unknown>();
    const signal = ac.signal;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((...args: Parameters<typeof add>) => {
      live.add(args[1]);
      add(...args);
    }) as typeof signal.addEventListener;
    signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
      live.delete(args[1]);
      remove(...args);
    }) as typeof signal.removeEventListener;
    const ctx = background.withSignal(signal);
    const timedOut = Array.from({ length: 5 }, () => balancer.call('t', ctx).catch((e: unknown) => e));
    expect((await Promise.all(timedOut)).every((e) => e instanceof NoReadyEndpointError)).toBe(true);
    expect(live.size).toBe(0);
    const woken = Array.from({ length: 5 }, () => balancer.call('w', ctx));
    insert(new CountingEndpoint('10.0.0.1:50051'));
    await Promise.all(woken);
    expect(live.size).toBe(0);
    const { balancer: other } = make('p2c', { failFastMs: 60_000 });
    const scope = newContext({ signal, timeoutMs: 20 });
    const deadline = other.call('d', scope.context).catch((e: unknown) => e);
    const closing = Array.from({ length: 5 }, () => other.call('c', ctx).catch((e: unknown) => e));
    const cancelled = other.call('x', ctx).catch((e: unknown) => e);
    expect(await deadline).toBeInstanceOf(NoReadyEndpointDeadlineError);
    scope.release();
    expect(live.size).toBe(6); // the six calls still waiting on `signal`, nothing more
    ac.abort(new CancelledError('stop'));
    expect(await cancelled).toBeInstanceOf(CancelledError);
    await other.close();
    expect((await Promise.all(closing)).every((e) => e instanceof CancelledError)).toBe(true);
    expect(other.stats().waiting).toBe(0);
    await balancer.close();
    await expectNoLeaks(before, { settleMs: 500 });
  });
});

describe('readiness', () => {
  test('the aggregate follows the endpoints, with or without traffic', async () => {
    const { balancer, insert, remove } = make();
    const seen: string[] = [];
    balancer.readiness$.subscribe((r) => seen.push(r));
    expect(balancer.readiness).toBe('connecting'); // nothing discovered yet
    const a = new CountingEndpoint('10.0.0.1:50051', 'failed');
    insert(a);
    expect(balancer.readiness).toBe('failed');
    const b = new CountingEndpoint('10.0.0.2:50051', 'connecting');
    insert(b);
    expect(balancer.readiness).toBe('connecting');
    b.setReadiness('ready');
    expect(balancer.readiness).toBe('ready');
    b.setReadiness('failed');
    expect(balancer.readiness).toBe('failed');
    remove(a.address);
    remove(b.address);
    expect(balancer.readiness).toBe('failed'); // discovery emptied the set
    await balancer.close();
    expect(balancer.readiness).toBe('closed');
    expect(seen).toEqual(['connecting', 'failed', 'connecting', 'ready', 'failed', 'closed']);
  });

  test('a failed endpoint leaves the ready set, stays known, and takes calls again once ready', async () => {
    const { balancer, insert } = make();
    const a = new CountingEndpoint('10.0.0.1:50051');
    const b = new CountingEndpoint('10.0.0.2:50051');
    insert(a);
    insert(b);
    a.setReadiness('failed');
    await Promise.all(Array.from({ length: 200 }, () => balancer.call('x', background)));
    expect(a.calls).toBe(0);
    expect(b.calls).toBe(200);
    expect(balancer.counts()).toEqual({
      known: 2,
      ready: 1,
      connecting: 0,
      failed: 1,
      ejected: 0,
      closed: 0,
    });
    expect(balancer.stats().endpoints.find((e) => e.address === a.address)?.state).toBe('failed');
    a.setReadiness('connecting');
    a.setReadiness('ready');
    await Promise.all(Array.from({ length: 200 }, () => balancer.call('x', background)));
    expect(a.calls).toBeGreaterThan(50);
  });

  test('an endpoint whose readiness stream errors counts as failed and is reported', async () => {
    const { balancer, events, insert } = make();
    const watch = new Subject<never>();
    class Broken extends CountingEndpoint {
      override get readiness$() {
        return watch;
      }
    }
    insert(new Broken('10.0.0.1:50051'));
    watch.error(new Error('watch failed'));
    expect(balancer.counts().failed).toBe(1);
    expect(events.some((e) => e.type === 'endpoint-error')).toBe(true);
  });
});

describe('errors from endpoints carry the address', () => {
  test('a plain Error becomes a GrpcTowerError with the endpoint address and the cause', async () => {
    const { balancer, insert } = make();
    const ep = new CountingEndpoint('10.0.0.1:50051');
    const boom = new Error('boom');
    ep.failWith = boom;
    insert(ep);
    const err = await balancer.call('x', background).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrpcTowerError);
    expect((err as GrpcTowerError).endpoint).toBe('10.0.0.1:50051');
    expect((err as GrpcTowerError).code).toBe(Status.UNKNOWN);
    expect((err as Error).cause).toBe(boom);
    expect(balancer.stats().endpoints[0]?.failures).toBe(1);
  });

  test('a GrpcTowerError passes through unchanged', async () => {
    const { balancer, insert } = make();
    const ep = new CountingEndpoint('10.0.0.1:50051');
    const original = new UnavailableError('reset', { endpoint: '10.0.0.1:50051' });
    ep.failWith = original;
    insert(ep);
    await expect(balancer.call('x', background)).rejects.toBe(original);
  });

  test("the caller's own cancellation is not counted as an endpoint failure", async () => {
    const { balancer, insert } = make();
    const ep = new CountingEndpoint('10.0.0.1:50051');
    ep.hold = true;
    insert(ep);
    const scope = newContext({});
    const call = balancer.call('x', scope.context);
    scope.controller.abort();
    await expect(call).rejects.toBeInstanceOf(CancelledError);
    scope.release();
    expect(balancer.stats().endpoints[0]).toMatchObject({ picks: 1, failures: 0 });
  });

  test("a call cancelled or cut short by the caller's deadline neither counts nor raises PeakEWMA's estimate", async () => {
    const discover = new Subject<Change<string, CountingEndpoint>>();
    const balancer: B = p2c(discover, { load: peakEwma({ defaultRttMs: 30 }), target: 'echo.test' });
    open.push(balancer);
    const ep = new CountingEndpoint('10.0.0.1:50051');
    ep.hold = true;
    discover.next({ type: 'insert', key: ep.address, endpoint: ep });
    const cancelled = newContext({});
    const call = balancer.call('x', cancelled.context);
    await sleep(80);
    cancelled.controller.abort();
    await expect(call).rejects.toBeInstanceOf(CancelledError);
    cancelled.release();
    const short = newContext({ timeoutMs: 80 });
    await expect(balancer.call('x', short.context)).rejects.toBeInstanceOf(DeadlineExceededError);
    short.release();
    const stats = balancer.stats().endpoints[0];
    expect(stats).toMatchObject({ picks: 2, failures: 0 });
    expect(stats?.ewmaMs).toBeLessThanOrEqual(30);
  });
});

describe('removal drains', () => {
  test('a removed endpoint gets no new calls, finishes its calls in flight, then closes', async () => {
    const { balancer, events, insert, remove } = make();
    const a = new CountingEndpoint('10.0.0.1:50051');
    const b = new CountingEndpoint('10.0.0.2:50051');
    a.hold = true;
    b.hold = true;
    insert(a);
    insert(b);
    const inFlight = Array.from({ length: 20 }, (_, i) => balancer.call(`r${i}`, background));
    const onA = a.inFlight;
    expect(onA).toBeGreaterThan(0);
    remove(a.address);
    expect(a.closeCalls).toBe(1);
    expect(balancer.counts()).toEqual({
      known: 1,
      ready: 1,
      connecting: 0,
      failed: 0,
      ejected: 0,
      closed: 0,
    });
    expect(balancer.stats().endpoints.find((e) => e.address === a.address)?.role).toBe('draining');
    const later = Array.from({ length: 20 }, (_, i) => balancer.call(`s${i}`, background));
    expect(a.inFlight).toBe(onA); // nothing new on the draining endpoint
    a.release();
    b.release();
    const results = await Promise.allSettled([...inFlight, ...later]);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    await tick();
    expect(a.readiness).toBe('closed');
    expect(balancer.stats().endpoints.map((e) => e.address)).toEqual([b.address]);
    expect(events.filter((e) => e.type === 'remove' || e.type === 'closed').map((e) => e.type)).toEqual([
      'remove',
      'closed',
    ]);
  });

  test('a close failure is reported on events$, never thrown', async () => {
    const { balancer, events, insert, remove } = make();
    const a = new CountingEndpoint('10.0.0.1:50051');
    a.closeError = new Error('close exploded');
    insert(a);
    remove(a.address);
    await tick();
    const failed = events.find((e) => e.type === 'close-error');
    expect(failed).toMatchObject({ type: 'close-error', address: a.address });
    expect(balancer.stats().endpoints).toEqual([]);
  });

  test('remove of an unknown key is ignored; insert of the same endpoint again is a no-op', () => {
    const { balancer, insert, remove } = make();
    const a = new CountingEndpoint('10.0.0.1:50051');
    insert(a);
    remove('10.9.9.9:1');
    insert(a);
    expect(a.closeCalls).toBe(0);
    expect(balancer.counts().known).toBe(1);
  });
});

describe('re-insert of a known key', () => {
  test('the old endpoint keeps serving until the new one is ready, then drains', async () => {
    const { balancer, events, insert } = make();
    const old = new CountingEndpoint('10.0.0.1:50051');
    insert(old, 'svc-a');
    const fresh = new CountingEndpoint('10.0.0.9:50051', 'connecting');
    insert(fresh, 'svc-a');
    await balancer.call('x', background);
    expect(old.calls).toBe(1);
    expect(old.closeCalls).toBe(0);
    expect(balancer.stats().endpoints.map((e) => [e.address, e.role])).toEqual([
      [old.address, 'active'],
      [fresh.address, 'incoming'],
    ]);
    fresh.setReadiness('ready');
    expect(old.closeCalls).toBe(1);
    await balancer.call('y', background);
    expect(fresh.calls).toBe(1);
    expect(old.calls).toBe(1);
    expect(events.find((e) => e.type === 'replace')).toMatchObject({
      key: 'svc-a',
      address: fresh.address,
      previous: old.address,
    });
    expect(balancer.counts().known).toBe(1);
  });

  test('when the old endpoint is not ready, the new one takes over at once', () => {
    const { balancer, insert } = make();
    const old = new CountingEndpoint('10.0.0.1:50051', 'failed');
    insert(old, 'k');
    const fresh = new CountingEndpoint('10.0.0.9:50051', 'connecting');
    insert(fresh, 'k');
    expect(old.closeCalls).toBe(1);
    expect(
      balancer
        .stats()
        .endpoints.filter((e) => e.role === 'active')
        .map((e) => e.address),
    ).toEqual([fresh.address]);
  });

  test('when the old endpoint stops being ready while the new one connects, the new one takes over', () => {
    const { balancer, insert } = make();
    const old = new CountingEndpoint('10.0.0.1:50051');
    insert(old, 'k');
    const fresh = new CountingEndpoint('10.0.0.9:50051', 'connecting');
    insert(fresh, 'k');
    expect(old.closeCalls).toBe(0);
    old.setReadiness('failed');
    expect(old.closeCalls).toBe(1);
    expect(balancer.counts()).toEqual({
      known: 1,
      ready: 0,
      connecting: 1,
      failed: 0,
      ejected: 0,
      closed: 0,
    });
  });

  test('a third insert while one is incoming discards the incoming one', () => {
    const { balancer, insert } = make();
    const old = new CountingEndpoint('10.0.0.1:50051');
    const second = new CountingEndpoint('10.0.0.2:50051', 'connecting');
    const third = new CountingEndpoint('10.0.0.3:50051', 'connecting');
    insert(old, 'k');
    insert(second, 'k');
    insert(third, 'k');
    expect(second.closeCalls).toBe(1);
    expect(old.closeCalls).toBe(0);
    third.setReadiness('ready');
    expect(old.closeCalls).toBe(1);
    expect(balancer.counts()).toEqual({
      known: 1,
      ready: 1,
      connecting: 0,
      failed: 0,
      ejected: 0,
      closed: 0,
    });
  });

  test('past replaceWaitMs the new endpoint takes over although it is not ready, and the old one drains', async () => {
    const { balancer, events, insert } = make('p2c', { replaceWaitMs: 30 });
    const old = new CountingEndpoint('10.0.0.1:50051');
    insert(old, 'k');
    const fresh = new CountingEndpoint('10.0.0.9:50051', 'connecting');
    insert(fresh, 'k');
    await sleep(10);
    expect(old.closeCalls).toBe(0);
    await expect(balancer.call('x', background)).resolves.toBe('10.0.0.1:50051:x');
    await sleep(60);
    expect(old.closeCalls).toBe(1);
    expect(events.find((e) => e.type === 'replace')).toMatchObject({
      key: 'k',
      address: fresh.address,
      previous: old.address,
    });
    expect(balancer.counts()).toMatchObject({ known: 1, ready: 0, connecting: 1 });
    // the new one serves once it connects
    const call = balancer.call('y', background);
    fresh.setReadiness('ready');
    await expect(call).resolves.toBe('10.0.0.9:50051:y');
  });

  test('replaceWaitMs 0 replaces at once', () => {
    const { balancer, insert } = make('p2c', { replaceWaitMs: 0 });
    const old = new CountingEndpoint('10.0.0.1:50051');
    insert(old, 'k');
    const fresh = new CountingEndpoint('10.0.0.9:50051', 'connecting');
    insert(fresh, 'k');
    expect(old.closeCalls).toBe(1);
    expect(balancer.stats().endpoints.map((e) => [e.address, e.role])).toEqual([
      [fresh.address, 'active'],
      [old.address, 'draining'],
    ]);
  });

  test('a wait that ends early (ready, replaced again, removed, closed) clears its timer', async () => {
    // fake timers only to count them: the wait's timer is unref'd, which the
    // leak check (process.getActiveResourcesInfo) does not see
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const { balancer, insert, remove } = make('p2c', { replaceWaitMs: 60_000 });
      const base = vi.getTimerCount();
      const a = new CountingEndpoint('10.0.0.2:50051');
      insert(a, 'k');
      const b = new CountingEndpoint('10.0.0.3:50051', 'connecting');
      insert(b, 'k');
      expect(vi.getTimerCount()).toBe(base + 1);
      b.setReadiness('ready'); // the new one is ready
      expect(vi.getTimerCount()).toBe(base);
      const c = new CountingEndpoint('10.0.0.4:50051', 'connecting');
      insert(c, 'k');
      const d = new CountingEndpoint('10.0.0.5:50051', 'connecting');
      insert(d, 'k'); // c is discarded, d waits
      expect(vi.getTimerCount()).toBe(base + 1);
      remove('k');
      expect(vi.getTimerCount()).toBe(base);
      insert(new CountingEndpoint('10.0.0.6:50051'), 'j');
      insert(new CountingEndpoint('10.0.0.7:50051', 'connecting'), 'j');
      expect(vi.getTimerCount()).toBe(base + 1);
      const closed = balancer.close();
      expect(vi.getTimerCount()).toBe(base);
      await closed;
      expect([a, b, c, d].map((e) => e.closeCalls)).toEqual([1, 1, 1, 1]);
    } finally {
      vi.useRealTimers();
    }
  });

  test('an endpoint already removed cannot come back under a key; the error is reported', () => {
    const { balancer, events, insert, remove } = make();
    const a = new CountingEndpoint('10.0.0.1:50051');
    insert(a);
    remove(a.address);
    insert(a);
    expect(balancer.counts().known).toBe(0);
    expect(events.at(-1)).toMatchObject({ type: 'discovery-error' });
  });
});

describe('churn', () => {
  test('1,000 inserts and removes while calls run: every call succeeds and every retired endpoint closes', async () => {
    const { balancer, insert, remove } = make('p2c', { failFastMs: 5000 });
    const random = seededRandom(99);
    const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);
    const all: CountingEndpoint[] = [];
    const present = new Set<string>();
    const calls: Promise<string>[] = [];
    let serial = 0;
    const fresh = (): CountingEndpoint => {
      serial++;
      const ep = new CountingEndpoint(`10.1.${serial >> 8}.${serial & 255}:50051`, 'connecting');
      ep.latencyMs = 1 + Math.floor(random() * 4);
      all.push(ep);
      // connects a moment later, like a real endpoint
      setTimeout(() => ep.setReadiness('ready'), Math.floor(random() * 3));
      return ep;
    };
    for (const k of keys.slice(0, 3)) {
      insert(fresh(), k);
      present.add(k);
    }
    for (let change = 0; change < 1000; change++) {
      const key = keys[Math.floor(random() * keys.length)] as string;
      if (present.has(key) && (present.size > 1 || random() < 0.1) && random() < 0.5) {
        remove(key);
        present.delete(key);
      } else {
        insert(fresh(), key); // new key, or a replacement of a known one
        present.add(key);
      }
      for (let c = 0; c < 3; c++) calls.push(balancer.call(`c${change}.${c}`, background));
      if (change % 10 === 9) await sleep(1);
    }
    const results = await Promise.allSettled(calls);
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(failures.map((f) => String(f.reason))).toEqual([]);
    expect(calls).toHaveLength(3000);
    // every endpoint not currently serving was closed after it drained
    const serving = new Set(
      balancer
        .stats()
        .endpoints.filter((e) => e.role !== 'draining')
        .map((e) => e.address),
    );
    await sleep(20);
    for (const ep of all) {
      if (serving.has(ep.address)) continue;
      expect(ep.closeCalls, ep.address).toBe(1);
      expect(ep.inFlight).toBe(0);
    }
    expect(balancer.counts().known).toBe(present.size);
    expect(all.reduce((n, e) => n + e.calls, 0)).toBe(3000);
  });
});

describe('stats and events', () => {
  test('stats lists each endpoint with address, state, pending, ewma, picks and failures', async () => {
    const discover = new Subject<Change<string, CountingEndpoint>>();
    const balancer = p2c(discover, { target: 'orders' });
    open.push(balancer);
    const a = new CountingEndpoint('10.0.0.1:50051');
    const b = new CountingEndpoint('10.0.0.2:50051', 'connecting');
    discover.next({ type: 'insert', key: 'a', endpoint: a });
    discover.next({ type: 'insert', key: 'b', endpoint: b });
    a.hold = true;
    const call = balancer.call('x', background);
    const s = balancer.stats();
    expect(s).toMatchObject({ target: 'orders', readiness: 'ready', waiting: 0 });
    expect(s.counts).toEqual({ known: 2, ready: 1, connecting: 1, failed: 0, ejected: 0, closed: 0 });
    expect(s.endpoints[0]).toMatchObject({
      key: 'a',
      address: a.address,
      state: 'ready',
      role: 'active',
      pending: 1,
      picks: 1,
      failures: 0,
    });
    expect(s.endpoints[0]?.ewmaMs).toBeGreaterThan(25); // the 30 ms seed
    expect(s.endpoints[0]?.cost).toBeGreaterThan(s.endpoints[0]?.ewmaMs as number); // × (pending + 1)
    expect(s.endpoints[1]).toMatchObject({ key: 'b', state: 'connecting', pending: 0, picks: 0 });
    a.release();
    await call;
    expect(balancer.metric).toBe('peak-ewma');
  });

  test('stats$ emits a snapshot on subscribe and after changes, and completes on close', async () => {
    const { balancer, insert } = make('p2c', { statsIntervalMs: 60_000 });
    const snapshots = firstValueFrom(balancer.stats$.pipe(take(2), toArray()));
    insert(new CountingEndpoint('10.0.0.1:50051'));
    const [first, second] = await snapshots;
    expect(first?.counts.known).toBe(0);
    expect(second?.counts.known).toBe(1);
    const done = firstValueFrom(balancer.stats$.pipe(toArray()));
    await balancer.close();
    const all = await done;
    expect(all.at(-1)?.readiness).toBe('closed');
  });

  test('discovery errors are reported and the known set is kept', async () => {
    const { balancer, discover, events, insert } = make();
    insert(new CountingEndpoint('10.0.0.1:50051'));
    discover.error(new Error('registry down'));
    expect(events.at(-1)).toMatchObject({ type: 'discovery-error' });
    await expect(balancer.call('x', background)).resolves.toBe('10.0.0.1:50051:x');
  });

  test('a completed discovery stream keeps its set (a static list completes)', async () => {
    const { balancer, discover, events, insert } = make();
    insert(new CountingEndpoint('10.0.0.1:50051'));
    discover.complete();
    expect(events.at(-1)).toEqual({ type: 'discovery-complete' });
    await expect(balancer.call('x', background)).resolves.toBe('10.0.0.1:50051:x');
  });
});

describe('close', () => {
  test('lets waiting calls wait within the grace, then drains and closes every endpoint, unsubscribes from discovery', async () => {
    const { balancer, discover, events, insert } = make();
    const a = new CountingEndpoint('10.0.0.1:50051');
    const b = new CountingEndpoint('10.0.0.2:50051', 'connecting');
    const incoming = new CountingEndpoint('10.0.0.3:50051', 'connecting');
    a.hold = true;
    b.closeError = new Error('b would not close');
    insert(a, 'a');
    insert(b, 'b');
    insert(incoming, 'a');
    const inFlight = balancer.call('x', background);
    a.setReadiness('connecting'); // incoming now replaces a; a drains
    const waiting = balancer.call('y', background).catch((e: unknown) => e);
    const closed = balancer.close({ graceMs: 100 });
    await expect(balancer.call('new', background)).rejects.toBeInstanceOf(ClosedError);
    // discovery is still followed while a call waits for an endpoint
    expect(discover.observed).toBe(true);
    expect(await waiting).toBeInstanceOf(GraceExpiredError);
    await tick();
    expect(discover.observed).toBe(false);
    a.release();
    await expect(inFlight).resolves.toBe('10.0.0.1:50051:x');
    await expect(closed).resolves.toBeUndefined();
    expect([a, b, incoming].map((e) => e.closeCalls)).toEqual([1, 1, 1]);
    expect(events.some((e) => e.type === 'close-error' && e.address === b.address)).toBe(true);
    await expect(balancer.call('z', background)).rejects.toBeInstanceOf(ClosedError);
    expect(balancer.close()).toBe(closed);
  });
});

describe('AvoidEndpoints while waiting', () => {
  test('a waiting call that avoids the only endpoint that turns ready still gets it', async () => {
    const { balancer, insert } = make();
    const a = new CountingEndpoint('10.0.0.1:50051', 'connecting');
    insert(a);
    const call = balancer.call('x', background.withValue(AvoidEndpoints, new Set([a.address])));
    a.setReadiness('ready');
    await expect(call).resolves.toBe('10.0.0.1:50051:x');
  });
});

describe('options', () => {
  const d = new Subject<Change<string, CountingEndpoint>>();
  test.each([
    ['failFastMs', { failFastMs: -1 }],
    ['failFastMs', { failFastMs: Number.NaN }],
    ['target', { target: '' }],
    ['random', { random: 3 as unknown as () => number }],
    ['drainGraceMs', { drainGraceMs: -5 }],
    ['replaceWaitMs', { replaceWaitMs: -1 }],
    ['replaceWaitMs', { replaceWaitMs: Number.NaN }],
    ['replaceWaitMs', { replaceWaitMs: 2 ** 31 }],
    ['statsIntervalMs', { statsIntervalMs: 0 }],
    ['waitForReady', { waitForReady: 'yes' as unknown as boolean }],
  ])('p2c rejects a bad %s with a ConfigError', (option, opts) => {
    expect(() => p2c(d, opts)).toThrow(ConfigError);
    expect(() => p2c(d, opts)).toThrow(`p2c: option "${option}"`);
    expect(() => roundRobin(d, opts)).toThrow(`roundRobin: option "${option}"`);
  });

  test('a discover that is not an Observable, and a bad load, are refused', () => {
    expect(() => p2c(null as unknown as typeof d)).toThrow('p2c: option "discover"');
    expect(() => p2c(d, { load: 7 as unknown as () => number })).toThrow('p2c: option "load"');
  });

  test('a change that is not an insert or remove is reported and ignored', () => {
    const { balancer, discover, events } = make();
    discover.next({ type: 'upsert' } as unknown as Change<string, CountingEndpoint>);
    discover.next({ type: 'insert', key: 'x', endpoint: {} } as unknown as Change<string, CountingEndpoint>);
    expect(events.filter((e) => e.type === 'discovery-error')).toHaveLength(2);
    expect(balancer.counts().known).toBe(0);
    expect(balancer.readiness).toBe('connecting');
  });
});

describe('close is graceful for the calls waiting for an endpoint', () => {
  test('new calls are refused at once; a waiting call goes on and reaches an endpoint discovered after close()', async () => {
    const { balancer, insert } = make('p2c', { failFastMs: 10_000 });
    const waiting = balancer.call('early', background);
    await tick();
    expect(balancer.stats().waiting).toBe(1);
    const closed = balancer.close({ graceMs: 5_000 });
    await expect(balancer.call('late', background)).rejects.toBeInstanceOf(ClosedError);
    const ep = new CountingEndpoint('10.0.0.1:50051');
    insert(ep);
    await expect(waiting).resolves.toBe('10.0.0.1:50051:early');
    await closed;
    expect(balancer.readiness).toBe('closed');
    expect(ep.closing).toBe(true);
  });

  test('when the grace time runs out the calls still waiting fail with GraceExpiredError; no timer is left', async () => {
    const before = activeHandles();
    const { balancer } = make('p2c', { failFastMs: 10_000 });
    const waiting = Array.from({ length: 3 }, () => balancer.call('w', background).catch((e: unknown) => e));
    await tick();
    await balancer.close({ graceMs: 100 });
    for (const err of await Promise.all(waiting)) {
      expect(err).toBeInstanceOf(GraceExpiredError);
      expect(err).toMatchObject({
        code: Status.UNAVAILABLE,
        retryable: false,
        message: 'balancer for target "echo.test" closed: the 100 ms grace time ran out',
      });
    }
    expect(balancer.stats().waiting).toBe(0);
    await expectNoLeaks(before, { settleMs: 500 });
  });
});
