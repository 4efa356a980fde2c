// Priority levels in the balancer, over counting endpoints: which level the
// picks land on as readiness changes (failover and failback), the threshold
// option, the decision as the balancer publishes it (event, stats, getter),
// and the shares within the level in use over 10,000 seeded picks (no
// network: the failover over real gRPC servers is in priorities.grpc.test.ts).
import { type Change, ConfigError, type EndpointMetadata, background } from '@grpc-tower/core';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import type { Balancer } from './balancer.js';
import type { BalancerEvent } from './events.js';
import { pendingRequests } from './load/pending.js';
import type { BalancerOptions } from './options.js';
import { p2c } from './p2c.js';
import { decidePriority } from './pick/priorities.js';
import { roundRobin } from './round-robin.js';
import { CountingEndpoint } from './test/counting-endpoint.js';
import { seededRandom } from './test/prng.js';

type TestBalancer = Balancer<string, string, string>;

const open: TestBalancer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

let hostCount = 0;

/** Each endpoint's priority and weight, as discovery says them on its insert. */
const placement = new WeakMap<CountingEndpoint, EndpointMetadata>();

function endpoint(priority: number | undefined, weight?: number): CountingEndpoint {
  hostCount++;
  const ep = new CountingEndpoint(`10.2.${hostCount >> 8}.${hostCount & 255}:50051`);
  ep.fixedPending = 0;
  placement.set(ep, { priority, weight });
  return ep;
}

/** The insert of `ep`, with its priority and weight as its metadata. */
function insertOf(ep: CountingEndpoint): Change<string, CountingEndpoint> {
  return { type: 'insert', key: ep.address, endpoint: ep, metadata: placement.get(ep) };
}

/** A p2c balancer over endpoints of the given priorities (one entry per endpoint). */
function pool(priorities: readonly (number | undefined)[], options: BalancerOptions = {}) {
  const discover = new Subject<Change<string, CountingEndpoint>>();
  const events: BalancerEvent<string>[] = [];
  const balancer: TestBalancer = p2c(discover, {
    load: pendingRequests(),
    random: seededRandom(11),
    ...options,
  });
  balancer.events$.subscribe((e) => events.push(e));
  open.push(balancer);
  const eps = priorities.map((p) => endpoint(p));
  for (const ep of eps) discover.next(insertOf(ep));
  return { balancer, events, eps, discover };
}

async function send(balancer: TestBalancer, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, () => balancer.call('x', background)));
}

const calls = (eps: readonly CountingEndpoint[]): number => eps.reduce((s, e) => s + e.calls, 0);
const reset = (eps: readonly CountingEndpoint[]): void => {
  for (const e of eps) e.calls = 0;
};
/** Sets `ep`'s readiness, then sends `n` calls counted from zero. */
async function turn(
  balancer: TestBalancer,
  eps: readonly CountingEndpoint[],
  ep: CountingEndpoint,
  readiness: 'ready' | 'failed' | 'connecting',
  n: number,
): Promise<void> {
  ep.setReadiness(readiness);
  reset(eps);
  await send(balancer, n);
}

const priorityEvents = (events: readonly BalancerEvent<string>[]) =>
  events.filter((e) => e.type === 'priority').map((e) => (e as { priority: number | undefined }).priority);

describe('priority levels in the balancer', () => {
  test('calls go to priority 0 while it has a ready endpoint, fail over to 1 when it has none, and fail back', async () => {
    const { balancer, events, eps } = pool([0, 0, 1, 1]);
    const [a0, b0, a1, b1] = eps as [CountingEndpoint, CountingEndpoint, CountingEndpoint, CountingEndpoint];
    await send(balancer, 1_000);
    expect(calls([a0, b0])).toBe(1_000);
    expect(balancer.priority).toBe(0);
    expect(balancer.stats().priority).toBe(0);

    // one of priority 0 fails: the default threshold (one ready endpoint) keeps the level
    await turn(balancer, eps, a0, 'failed', 1_000);
    expect(b0.calls).toBe(1_000);

    // none of priority 0 is ready: every call fails over
    await turn(balancer, eps, b0, 'connecting', 1_000);
    expect(calls([a1, b1])).toBe(1_000);
    expect(a1.calls).toBeGreaterThan(300);
    expect(balancer.priority).toBe(1);
    expect(balancer.counts().ready).toBe(2);

    // one comes back: every call fails back at once
    await turn(balancer, eps, a0, 'ready', 1_000);
    expect(a0.calls).toBe(1_000);
    expect(balancer.priority).toBe(0);
    expect(priorityEvents(events)).toEqual([0, 1, 0]);
    const failover = events.find((e) => e.type === 'priority' && e.priority === 1);
    expect(failover).toEqual({ type: 'priority', priority: 1, previous: 0, known: 2, ready: 2 });
  });

  test('priorityReadyPercent: a level below the share fails over, the next one that meets it takes the calls', async () => {
    const { balancer, eps } = pool([0, 0, 0, 0, 1, 1, 2, 2], { priorityReadyPercent: 72 });
    const level = (p: number) => eps.filter((e) => placement.get(e)?.priority === p);
    // 3 of 4 ready (75 %): still priority 0
    (level(0)[0] as CountingEndpoint).setReadiness('failed');
    await send(balancer, 500);
    expect(calls(level(0))).toBe(500);
    // 2 of 4 (50 %): priority 1, which has all its endpoints
    await turn(balancer, eps, level(0)[1] as CountingEndpoint, 'failed', 500);
    expect(calls(level(1))).toBe(500);
    // priority 1 at 50 % too: priority 2 meets the share
    await turn(balancer, eps, level(1)[0] as CountingEndpoint, 'failed', 500);
    expect(calls(level(2))).toBe(500);
    // none meets it: the highest level with a ready endpoint serves rather than none
    await turn(balancer, eps, level(2)[0] as CountingEndpoint, 'failed', 500);
    expect(calls(level(0))).toBe(500);
    expect(balancer.priority).toBe(0);
  });

  test('an endpoint without a priority is at 0; endpoints of one level change nothing', async () => {
    const { balancer, events, eps } = pool([undefined, undefined]);
    await send(balancer, 100);
    expect(calls(eps)).toBe(100);
    expect(balancer.priority).toBeUndefined();
    expect(balancer.stats().priority).toBeUndefined();
    expect(priorityEvents(events)).toEqual([]);
    expect(balancer.stats().endpoints.map((e) => e.priority)).toEqual([0, 0]);

    const mixed = pool([undefined, 1]);
    await send(mixed.balancer, 100);
    expect((mixed.eps[0] as CountingEndpoint).calls).toBe(100);
    expect(mixed.balancer.priority).toBe(0);
  });

  test('panic mode works within the level in use', async () => {
    // priority 0: 1 of 3 ready (33 % < 50 %), yet it is the level in use (threshold 0): panic there
    const { balancer, events, eps } = pool([0, 0, 0, 1]);
    const [a, b, c] = eps as [CountingEndpoint, CountingEndpoint, CountingEndpoint];
    b.connectedOverride = true; // held out while connected (a health check): panic may use it
    b.setReadiness('failed');
    c.setReadiness('failed');
    expect(balancer.priority).toBe(0);
    expect(balancer.panicking).toBe(true);
    await send(balancer, 1_000);
    expect(a.calls + b.calls).toBe(1_000);
    expect(b.calls).toBeGreaterThan(300);
    expect(events.filter((e) => e.type === 'panic').at(-1)).toEqual({
      type: 'panic',
      active: true,
      known: 3,
      ready: 1,
    });
  });

  test('10,000 seeded picks: weights share the level in use within ±2 pp, the other level gets none', async () => {
    const discover = new Subject<Change<string, CountingEndpoint>>();
    const balancer: TestBalancer = p2c(discover, { load: pendingRequests(), random: seededRandom(3) });
    open.push(balancer);
    const eps = [endpoint(0, 1), endpoint(0, 3), endpoint(1, 1), endpoint(1, 1)];
    for (const ep of eps) discover.next(insertOf(ep));
    await send(balancer, 10_000);
    const [w1, w3, p1a, p1b] = eps as [
      CountingEndpoint,
      CountingEndpoint,
      CountingEndpoint,
      CountingEndpoint,
    ];
    console.log(`priority 0, weights 1 and 3: ${w1.calls} and ${w3.calls} of 10000`);
    expect(p1a.calls + p1b.calls).toBe(0);
    expect(Math.abs(w1.calls / 10_000 - 0.25)).toBeLessThanOrEqual(0.02);
    expect(Math.abs(w3.calls / 10_000 - 0.75)).toBeLessThanOrEqual(0.02);

    // failed over: priority 1's two share evenly
    w1.setReadiness('failed');
    await turn(balancer, eps, w3, 'failed', 10_000);
    console.log(`failed over to priority 1: ${p1a.calls} and ${p1b.calls} of 10000`);
    expect(Math.abs(p1a.calls / 10_000 - 0.5)).toBeLessThanOrEqual(0.02);
  });

  test('round robin follows the level in use too', async () => {
    const discover = new Subject<Change<string, CountingEndpoint>>();
    const balancer: TestBalancer = roundRobin(discover, {});
    open.push(balancer);
    const eps = [endpoint(0), endpoint(1)];
    for (const ep of eps) discover.next(insertOf(ep));
    await send(balancer, 10);
    expect((eps[0] as CountingEndpoint).calls).toBe(10);
    (eps[0] as CountingEndpoint).setReadiness('failed');
    await send(balancer, 10);
    expect((eps[1] as CountingEndpoint).calls).toBe(10);
  });

  test('a removed level leaves the decision; priorityReadyPercent is checked', async () => {
    const { balancer, eps, discover } = pool([0, 1]);
    discover.next({ type: 'remove', key: (eps[0] as CountingEndpoint).address });
    expect(balancer.priority).toBeUndefined();
    await send(balancer, 10);
    expect((eps[1] as CountingEndpoint).calls).toBe(10);
    expect(() => p2c(new Subject<Change<string, CountingEndpoint>>(), { priorityReadyPercent: 101 })).toThrow(
      ConfigError,
    );
    expect(() => p2c(new Subject<Change<string, CountingEndpoint>>(), { priorityReadyPercent: -1 })).toThrow(
      /priorityReadyPercent/,
    );
  });
});

describe('decidePriority', () => {
  const m = (priority: number, readiness: 'ready' | 'failed' | 'closed') => ({
    priority,
    readiness,
    readyIndex: -1,
    address: `a${priority}${readiness}${Math.random()}`,
    weight: 1,
    load: pendingRequests().create({ address: 'x', pending: 0 }, 0),
    readySince: 0,
    pass: 0,
  });
  test('closed endpoints are not counted; one level is no decision', () => {
    expect(decidePriority([m(0, 'ready'), m(1, 'closed')], 0)).toEqual({ level: undefined, levels: 1 });
    expect(decidePriority([], 0)).toEqual({ level: undefined, levels: 0 });
    const d = decidePriority([m(2, 'ready'), m(0, 'failed'), m(5, 'ready')], 0);
    expect(d.levels).toBe(3);
    expect(d.level?.priority).toBe(2);
    expect(decidePriority([m(0, 'failed'), m(1, 'failed')], 0).level).toBeUndefined();
  });
});
