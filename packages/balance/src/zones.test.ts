// Zone-aware routing in the balancer, over counting endpoints: the options,
// the decision as the balancer publishes it (event, stats, getter), and
// where the picks land (no network: the point is the routing arithmetic
// and bookkeeping; the shares over real gRPC servers are in
// zones.grpc.test.ts).
import { type Change, ConfigError, type EndpointMetadata, background } from '@grpc-tower/core';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import type { Balancer } from './balancer.js';
import type { BalancerEvent } from './events.js';
import { pendingRequests } from './load/pending.js';
import type { BalancerOptions, ZoneRoutingOptions } from './options.js';
import { type P2cOptions, p2c } from './p2c.js';
import { roundRobin } from './round-robin.js';
import { AvoidEndpoints } from './hints.js';
import { CountingEndpoint } from './test/counting-endpoint.js';
import { seededRandom } from './test/prng.js';

type TestBalancer = Balancer<string, string, string>;
type Discovery = Subject<Change<string, CountingEndpoint>>;

const open: TestBalancer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

let hostCount = 0;

/** Where each endpoint runs, as discovery says it on the endpoint's insert. */
const placement = new WeakMap<CountingEndpoint, EndpointMetadata>();

/** A zoned endpoint; `zone` undefined for one without a zone. */
function endpoint(zone: string | undefined, forZones?: readonly string[]): CountingEndpoint {
  hostCount++;
  const ep = new CountingEndpoint(`10.1.${hostCount >> 8}.${hostCount & 255}:50051`);
  ep.fixedPending = 0;
  placement.set(ep, { zone, forZones });
  return ep;
}

/** The insert of `ep`, with its zone and hints as its metadata. */
function insertOf(ep: CountingEndpoint): Change<string, CountingEndpoint> {
  return { type: 'insert', key: ep.address, endpoint: ep, metadata: placement.get(ep) };
}

function pool(
  zones: Readonly<Record<string, number>>,
  options: BalancerOptions & { zones?: ZoneRoutingOptions } = { zones: { local: 'a' } },
  make: (d: Discovery, o: P2cOptions) => TestBalancer = (d, o) => p2c(d, o),
) {
  const discover: Discovery = new Subject();
  const events: BalancerEvent<string>[] = [];
  const balancer = make(discover, { load: pendingRequests(), random: seededRandom(7), ...options });
  balancer.events$.subscribe((e) => events.push(e));
  open.push(balancer);
  const byZone = new Map<string, CountingEndpoint[]>();
  const insert = (ep: CountingEndpoint): CountingEndpoint => {
    discover.next(insertOf(ep));
    return ep;
  };
  for (const [zone, count] of Object.entries(zones)) {
    byZone.set(
      zone,
      Array.from({ length: count }, () => insert(endpoint(zone))),
    );
  }
  const zone = (name: string): CountingEndpoint[] => byZone.get(name) ?? [];
  return { balancer, events, zone, insert, discover };
}

async function send(balancer: TestBalancer, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, () => balancer.call('x', background)));
}

const calls = (eps: readonly CountingEndpoint[]): number => eps.reduce((s, e) => s + e.calls, 0);
const zoneEvents = (events: readonly BalancerEvent<string>[]) => events.filter((e) => e.type === 'zones');

describe('zone-aware routing in the balancer', () => {
  test('a healthy local zone takes every call; the decision is an event, in stats() and the getter', async () => {
    const { balancer, events, zone } = pool({ a: 2, b: 2, c: 2 });
    await send(balancer, 1_000);
    expect(calls(zone('a'))).toBe(1_000);
    // both local endpoints take calls
    for (const ep of zone('a')) expect(ep.calls).toBeGreaterThan(300);
    const local = { mode: 'local', localShare: 1, shares: { a: 1 } };
    expect(zoneEvents(events).at(-1)).toEqual({ type: 'zones', ...local });
    expect(balancer.stats().zones).toEqual(local);
    expect(balancer.zoneRouting).toEqual(local);
    // while fewer than 6 were known, every zone
    expect(zoneEvents(events)[0]).toMatchObject({ mode: 'all', reason: 'too-few-endpoints' });
    expect(balancer.stats().endpoints.map((e) => e.zone)).toEqual(['a', 'a', 'b', 'b', 'c', 'c']);
  });

  test('an event only when the decision changes', async () => {
    const { events, zone } = pool({ a: 2, b: 2, c: 2 });
    const before = zoneEvents(events).length;
    // b's endpoint failing and coming back changes nothing of where calls go
    zone('b')[0]!.setReadiness('failed');
    zone('b')[0]!.setReadiness('ready');
    expect(zoneEvents(events).length).toBe(before);
    zone('a')[0]!.setReadiness('failed');
    zone('a')[1]!.setReadiness('failed');
    expect(zoneEvents(events).slice(before)).toEqual([
      // one of two ready is not below the 50 % of local panic: 1/5 of the capacity for a third of the clients
      {
        type: 'zones',
        mode: 'spill',
        localShare: expect.closeTo(0.6, 12),
        shares: { a: expect.closeTo(0.6, 12), b: expect.closeTo(0.2, 12), c: expect.closeTo(0.2, 12) },
      },
      {
        type: 'zones',
        mode: 'all',
        reason: 'no-local-endpoint',
        localShare: 0,
        shares: { b: 0.5, c: 0.5 },
      },
    ]);
  });

  test('no local endpoint ready: calls go to every other zone, and come back when one is', async () => {
    const { balancer, zone } = pool({ a: 2, b: 2, c: 2 });
    for (const ep of zone('a')) ep.setReadiness('connecting');
    await send(balancer, 1_000);
    expect(calls(zone('a'))).toBe(0);
    expect(calls(zone('b'))).toBeGreaterThan(400);
    expect(calls(zone('c'))).toBeGreaterThan(400);
    for (const ep of zone('a')) ep.setReadiness('ready');
    const b = calls(zone('b'));
    await send(balancer, 500);
    expect(calls(zone('b'))).toBe(b);
    expect(balancer.zoneRouting?.mode).toBe('local');
  });

  test('spill: the local share and the split follow the formula; each zone is balanced by its own picker (round robin)', async () => {
    // a: 2 of 3 ready, b: 3, c: 3, equal client shares
    const { balancer, zone } = pool({ a: 3, b: 3, c: 3 }, { zones: { local: 'a' } }, (d, o) =>
      roundRobin(d, o),
    );
    zone('a')[2]!.setReadiness('failed');
    const u = 2 / 8;
    const stay = u / (1 / 3);
    const N = 20_000;
    await send(balancer, N);
    const split = expect.closeTo((1 - stay) / 2, 12);
    expect(balancer.zoneRouting).toEqual({
      mode: 'spill',
      localShare: expect.closeTo(stay, 12),
      shares: { a: expect.closeTo(stay, 12), b: split, c: split },
    });
    expect(Math.abs(calls(zone('a')) / N - stay)).toBeLessThan(0.01);
    expect(Math.abs(calls(zone('b')) / N - (1 - stay) / 2)).toBeLessThan(0.01);
    // round robin within b: even thirds, whatever the other zones' picks
    const b = calls(zone('b'));
    for (const ep of zone('b')) expect(Math.abs(ep.calls - b / 3)).toBeLessThanOrEqual(1);
    for (const ep of zone('a').slice(0, 2))
      expect(Math.abs(ep.calls - calls(zone('a')) / 2)).toBeLessThanOrEqual(1);
  });

  test('fewer known endpoints than minEndpoints: every zone', async () => {
    const { balancer, zone } = pool({ a: 2, b: 2, c: 2 }, { zones: { local: 'a', minEndpoints: 7 } });
    await send(balancer, 3_000);
    for (const z of ['a', 'b', 'c']) expect(calls(zone(z)) / 3_000).toBeGreaterThan(0.28);
    expect(balancer.zoneRouting).toMatchObject({ mode: 'all', reason: 'too-few-endpoints' });
  });

  test('the local zone in panic: every zone; the balancer in panic: its own rule wins', async () => {
    const { balancer, zone, events } = pool({ a: 3, b: 3, c: 3 });
    zone('a')[0]!.setReadiness('failed');
    zone('a')[1]!.setReadiness('failed'); // 1 of 3 in a
    await send(balancer, 3_000);
    expect(balancer.zoneRouting).toMatchObject({ mode: 'all', reason: 'local-panic' });
    expect(calls(zone('a').slice(2)) / 3_000).toBeCloseTo(1 / 7, 1);
    for (const ep of [...zone('b'), ...zone('c')]) {
      ep.connectedOverride = true;
      ep.setReadiness('failed'); // held out while connected: 1 of 9 ready
    }
    expect(balancer.panicking).toBe(true);
    expect(balancer.zoneRouting).toMatchObject({ mode: 'all', reason: 'panic' });
    const before = calls(zone('b'));
    await send(balancer, 1_000);
    expect(calls(zone('b')) - before).toBeGreaterThan(200); // panic mode picks the connected ones
    // the same change that starts panic mode publishes the zone decision it implies
    const panicAt = events.findIndex((e) => e.type === 'panic');
    expect(events[panicAt + 1]).toMatchObject({ type: 'zones', mode: 'all', reason: 'panic' });
  });

  test('topology hints: only the endpoints hinted for the local zone, until one ready endpoint has none', async () => {
    const { balancer, insert } = pool({});
    const forA = [insert(endpoint('a', ['a'])), insert(endpoint('b', ['a', 'b']))];
    const rest = [insert(endpoint('b', ['b'])), insert(endpoint('c', ['c']))];
    await send(balancer, 1_000);
    expect(calls(forA)).toBe(1_000);
    expect(calls(rest)).toBe(0);
    expect(balancer.zoneRouting).toEqual({ mode: 'hints', localShare: 0.5, shares: { a: 0.5, b: 0.5 } });
    // an endpoint without hints: kube-proxy ignores them all; 5 known is below minEndpoints
    insert(endpoint('c'));
    await send(balancer, 1_000);
    expect(calls(rest)).toBeGreaterThan(0);
    expect(balancer.zoneRouting).toMatchObject({ mode: 'all', reason: 'too-few-endpoints' });
  });

  test('hints: false ignores them', async () => {
    const { balancer, insert } = pool({}, { zones: { local: 'a', hints: false, minEndpoints: 0 } });
    const a = insert(endpoint('a', ['b']));
    insert(endpoint('b', ['a']));
    await send(balancer, 100);
    expect(a.calls).toBe(100);
  });

  test('endpoints without a zone count as known, and get calls only when routing is over every zone', async () => {
    const { balancer, zone, insert } = pool({ a: 1, b: 1 });
    const none = Array.from({ length: 4 }, () => insert(endpoint(undefined)));
    await send(balancer, 500);
    expect(calls(zone('a'))).toBe(500);
    zone('a')[0]!.setReadiness('failed');
    await send(balancer, 1_000);
    expect(calls(none)).toBeGreaterThan(600);
    expect(balancer.zoneRouting).toEqual({
      mode: 'all',
      reason: 'no-local-endpoint',
      localShare: 0,
      shares: { b: 0.2 },
    });
  });

  test('a call that avoids every endpoint of the zone drawn goes to another ready one', async () => {
    const { balancer, zone } = pool({ a: 2, b: 2, c: 2 });
    const avoid = background.withValue(AvoidEndpoints, new Set(zone('a').map((e) => e.address)));
    const replies = await Promise.all(Array.from({ length: 100 }, () => balancer.call('x', avoid)));
    expect(calls(zone('a'))).toBe(0);
    expect(replies).toHaveLength(100);
    // avoiding one of the two stays local
    const one = background.withValue(AvoidEndpoints, new Set([zone('a')[0]!.address]));
    await Promise.all(Array.from({ length: 100 }, () => balancer.call('x', one)));
    expect(zone('a')[1]!.calls).toBe(100);
  });

  test('a call that waited for an endpoint is routed by zone too', async () => {
    const discover: Discovery = new Subject();
    const balancer = p2c(discover, {
      zones: { local: 'a' },
      load: pendingRequests(),
      random: seededRandom(3),
    });
    open.push(balancer);
    const eps = ['a', 'a', 'b', 'b', 'c', 'c'].map((z) => {
      const ep = endpoint(z);
      ep.setReadiness('connecting');
      discover.next(insertOf(ep));
      return ep;
    });
    const waiting = Array.from({ length: 20 }, () => balancer.call('x', background));
    expect(balancer.stats().waiting).toBe(20);
    for (const ep of eps) ep.setReadiness('ready');
    await Promise.all(waiting);
    expect(calls(eps.slice(0, 2))).toBe(20);
  });

  test('bad metadata on an insert: a discovery-error naming the key and member; the endpoint serves with the defaults', async () => {
    const { balancer, events, discover } = pool({ a: 2, b: 2, c: 2 });
    const ep = endpoint(undefined);
    discover.next({ type: 'insert', key: ep.address, endpoint: ep, metadata: { weight: -1, zone: 'a' } });
    const bad = events.filter((e) => e.type === 'discovery-error');
    expect(bad).toHaveLength(1);
    const error = (bad[0] as { error: unknown }).error;
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(
      `insert of key ${ep.address}: option "metadata.weight" must be a finite number >= 0, got -1`,
    );
    // weight 1 for the bad weight; the valid zone is kept
    expect(balancer.stats().endpoints.find((e) => e.address === ep.address)).toMatchObject({
      zone: 'a',
      state: 'ready',
    });
    discover.next({ type: 'insert', key: 'x', endpoint: endpoint('b'), metadata: 'b' as never });
    expect(events.filter((e) => e.type === 'discovery-error')).toHaveLength(2);
  });

  test('off by default: no zones in stats, no getter value, no event, zones ignored', async () => {
    const { balancer, events, zone } = pool({ a: 2, b: 2, c: 2 }, {});
    await send(balancer, 600);
    expect('zones' in balancer.stats()).toBe(false);
    expect(balancer.zoneRouting).toBeUndefined();
    expect(zoneEvents(events)).toEqual([]);
    expect(calls(zone('b'))).toBeGreaterThan(100);
  });

  test.each<[unknown, string]>([
    [null, 'zones'],
    [[], 'zones'],
    [{}, 'zones.local'],
    [{ local: '' }, 'zones.local'],
    [{ local: 'a', minEndpoints: -1 }, 'zones.minEndpoints'],
    [{ local: 'a', minEndpoints: 1.5 }, 'zones.minEndpoints'],
    [{ local: 'a', clientShares: [1] }, 'zones.clientShares'],
    [{ local: 'a', clientShares: { a: 0 } }, 'zones.clientShares.a'],
    [{ local: 'a', clientShares: { a: 1, b: Number.POSITIVE_INFINITY } }, 'zones.clientShares.b'],
    [{ local: 'a', clientShares: { a: 1, b: '1' } }, 'zones.clientShares.b'],
    [{ local: 'a', clientShares: { a: 1, '': 1 } }, 'zones.clientShares'],
    [{ local: 'a', clientShares: { b: 1 } }, 'zones.clientShares'],
    [{ local: 'a', hints: 'yes' }, 'zones.hints'],
  ])('zones %j is a ConfigError naming %s', (zones, option) => {
    for (const make of [p2c, roundRobin]) {
      let caught: unknown;
      try {
        make(new Subject<Change<string, CountingEndpoint>>(), { zones: zones as ZoneRoutingOptions });
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).option).toBe(option);
    }
  });

  test('client shares are normalised: twice the clients in a need twice the capacity', async () => {
    // a has 2 of 6 (a third), its clients are half of them: stay (1/3) / (1/2)
    const { balancer } = pool(
      { a: 2, b: 2, c: 2 },
      { zones: { local: 'a', clientShares: { a: 2, b: 1, c: 1 } } },
    );
    expect(balancer.zoneRouting?.mode).toBe('spill');
    expect(balancer.zoneRouting?.localShare).toBeCloseTo(2 / 3, 12);
    // b and c have 1/3 − 1/4 spare each
    expect(balancer.zoneRouting?.shares.b).toBeCloseTo(1 / 6, 12);
  });
});
