// The zone-aware routing decision as a pure function, over plain candidate
// objects (no endpoint, no network: the point is the arithmetic of Envoy's
// algorithm and kube-proxy's hint rule), and the alias draw behind spill mode.
import type { Readiness } from '@grpc-tower/core';
import { describe, expect, test } from 'vitest';
import { pendingRequests } from '../load/pending.js';
import type { ResolvedZones } from '../options.js';
import { seededRandom } from '../test/prng.js';
import { aliasDraw, decideZones, type ZoneCandidate } from './zones.js';

let n = 0;
function member(
  zone: string | undefined,
  readiness: Readiness = 'ready',
  extra: { weight?: number; forZones?: readonly string[] } = {},
): ZoneCandidate {
  n++;
  const address = `10.0.${n >> 8}.${n & 255}:50051`;
  return {
    readyIndex: -1,
    address,
    load: pendingRequests().create({ address, pending: 0 }, 0),
    readySince: 0,
    weight: extra.weight ?? 1,
    pass: 0,
    readiness,
    zone,
    forZones: extra.forZones,
  };
}

/** `count` members of `zone`, the first `ready` of them ready, the others failed. */
function zone(name: string | undefined, count: number, ready = count): ZoneCandidate[] {
  return Array.from({ length: count }, (_, i) => member(name, i < ready ? 'ready' : 'failed'));
}

const options = (o: Partial<ResolvedZones> = {}): ResolvedZones => ({
  local: 'a',
  minEndpoints: 6,
  clientShares: undefined,
  hints: true,
  ...o,
});

const decide = (known: ZoneCandidate[], o: Partial<ResolvedZones> = {}, threshold = 50, panicking = false) =>
  decideZones(known, options(o), threshold, panicking);

describe('decideZones', () => {
  test('a healthy local zone takes every call', () => {
    const local = zone('a', 2);
    const d = decide([...local, ...zone('b', 2), ...zone('c', 2)]);
    expect(d.routing).toEqual({ mode: 'local', localShare: 1, shares: { a: 1 } });
    expect(d.targets).toEqual([{ zone: 'a', members: local, probability: 1 }]);
  });

  test("below its clients' share, the local zone keeps u/c of the calls and the rest spills by residual capacity", () => {
    // a: 1 of 3 ready, b: 3, c: 3, equal client shares: u_a = 1/7, c_a = 1/3
    const d = decide([...zone('a', 3, 1), ...zone('b', 3), ...zone('c', 3)], {}, 30);
    const stay = 1 / 7 / (1 / 3);
    expect(d.routing.mode).toBe('spill');
    expect(d.routing.localShare).toBeCloseTo(stay, 12);
    // both residuals are 3/7 − 1/3: an even split of the rest
    expect(d.routing.shares.b).toBeCloseTo((1 - stay) / 2, 12);
    expect(d.routing.shares.c).toBeCloseTo((1 - stay) / 2, 12);
    expect(d.targets.map((t) => [t.zone, t.members.length])).toEqual([
      ['a', 1],
      ['b', 3],
      ['c', 3],
    ]);
    expect(d.targets.reduce((s, t) => s + t.probability, 0)).toBeCloseTo(1, 12);
  });

  test('the spill goes where capacity is spare, not where it is needed', () => {
    // client shares a 1/2, b 1/4, c 1/4; capacity a 2, b 2, c 6 (of 10): only c has a residual
    const d = decide([...zone('a', 2), ...zone('b', 2), ...zone('c', 6)], {
      clientShares: new Map([
        ['a', 0.5],
        ['b', 0.25],
        ['c', 0.25],
      ]),
    });
    expect(d.routing.mode).toBe('spill');
    expect(d.routing.localShare).toBeCloseTo(0.2 / 0.5, 12);
    expect(d.routing.shares).toEqual({ a: d.routing.localShare, c: expect.closeTo(0.6, 12) });
    expect(d.targets.map((t) => t.zone)).toEqual(['a', 'c']);
  });

  test('zones without clients take the spill in proportion to their capacity', () => {
    // clients only in a (the share of b and c is 0): u_a = 1/6 < 1
    const d = decide([...zone('a', 1), ...zone('b', 2), ...zone('c', 3)], {
      clientShares: new Map([['a', 1]]),
      minEndpoints: 0,
    });
    const stay = 1 / 6;
    expect(d.routing.localShare).toBeCloseTo(stay, 12);
    // residuals: b 2/6, c 3/6, in proportion 2:3
    expect(d.routing.shares.b).toBeCloseTo(((1 - stay) * 2) / 5, 12);
    expect(d.routing.shares.c).toBeCloseTo(((1 - stay) * 3) / 5, 12);
  });

  test('weights are capacity', () => {
    const heavy = [member('a', 'ready', { weight: 3 })];
    const d = decide([...heavy, ...zone('b', 3), member('a', 'failed'), member('c')], { minEndpoints: 0 });
    // u_a = 3/7 ≥ 1/3
    expect(d.routing.mode).toBe('local');
  });

  test('every zone when too few are known, when the local zone has none ready, or is in panic', () => {
    expect(decide([...zone('a', 2), ...zone('b', 2), ...zone('c', 1)]).routing).toMatchObject({
      mode: 'all',
      reason: 'too-few-endpoints',
    });
    expect(decide([...zone('a', 2, 0), ...zone('b', 2), ...zone('c', 2)]).routing).toMatchObject({
      mode: 'all',
      reason: 'no-local-endpoint',
    });
    expect(decide([...zone('b', 3), ...zone('c', 3)]).routing).toMatchObject({
      mode: 'all',
      reason: 'no-local-endpoint',
    });
    const panicky = [...zone('a', 3, 1), ...zone('b', 3), ...zone('c', 3)];
    expect(decide(panicky).routing).toEqual({
      mode: 'all',
      reason: 'local-panic',
      localShare: 1 / 7,
      shares: { a: 1 / 7, b: 3 / 7, c: 3 / 7 },
    });
    expect(decide(panicky, {}, 0).routing.mode).toBe('spill'); // threshold 0: no local panic
    expect(decide([...zone('a', 2), ...zone('b', 2), ...zone('c', 2)], {}, 50, true).routing).toMatchObject({
      mode: 'all',
      reason: 'panic',
    });
  });

  test('endpoints without a zone count as known and in the all-zones shares only; closed ones not at all', () => {
    const none = zone(undefined, 4);
    const d = decide([...zone('a', 1), ...zone('b', 1), ...none]);
    // 6 known; shares over the zoned capacity: a 1/2 = its clients' 1/2
    expect(d.routing).toEqual({ mode: 'local', localShare: 1, shares: { a: 1 } });
    expect(
      decide([...zone('a', 1), ...zone('b', 1), ...zone(undefined, 3), member('a', 'closed')]).routing,
    ).toMatchObject({
      mode: 'all',
      reason: 'too-few-endpoints',
      localShare: 1 / 5,
      shares: { a: 0.2, b: 0.2 },
    });
  });

  test('an unknown local zone, or none of its endpoints known: every zone', () => {
    expect(decide([...zone('b', 3), ...zone('c', 3)], { local: 'x' }).routing.reason).toBe(
      'no-local-endpoint',
    );
  });

  test('hints: when every ready endpoint has them, only those hinted for the local zone get calls', () => {
    const forA = [member('a', 'ready', { forZones: ['a'] }), member('b', 'ready', { forZones: ['a', 'b'] })];
    const others = [member('b', 'ready', { forZones: ['b'] }), member('c', 'ready', { forZones: ['c'] })];
    // a not-ready endpoint without hints does not matter (kube-proxy reads the serving ones)
    const d = decide([...forA, ...others, member('c', 'failed')]);
    expect(d.routing).toEqual({ mode: 'hints', localShare: 0.5, shares: { a: 0.5, b: 0.5 } });
    expect(d.targets).toEqual([{ zone: undefined, members: forA, probability: 1 }]);
    // hints win over minEndpoints: the controller that set them decided
    expect(decide(forA).routing.mode).toBe('hints');
  });

  test('hints are ignored when one ready endpoint lacks them, when none names the local zone, or when off', () => {
    const hinted = ['a', 'a', 'b', 'b', 'c', 'c'].map((z) => member(z, 'ready', { forZones: [z] }));
    expect(decide([...hinted, member('a')]).routing.mode).toBe('local');
    expect(decide(hinted, { local: 'x' }).routing.reason).toBe('no-local-endpoint');
    expect(decide(hinted.slice(2), { minEndpoints: 0 }).routing.reason).toBe('no-local-endpoint');
    expect(decide(hinted, { hints: false }).routing.mode).toBe('local');
    // global panic wins over hints too
    expect(decide(hinted, {}, 50, true).routing.reason).toBe('panic');
  });

  test('a zone named like an Object property is a zone like any other', () => {
    const d = decide([...zone('__proto__', 2), ...zone('b', 2), ...zone('c', 2)], { local: '__proto__' });
    expect(Object.keys(d.routing.shares)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(d.routing.shares)).toBe(Object.prototype);
  });
});

describe('aliasDraw', () => {
  test('draws in proportion to the weights', () => {
    const weights = [3, 0.5, 0, 1.5, 5];
    const draw = aliasDraw(weights);
    const random = seededRandom(11);
    const counts = weights.map(() => 0);
    const N = 200_000;
    for (let i = 0; i < N; i++) counts[draw(random)]!++;
    const total = weights.reduce((a, b) => a + b, 0);
    expect(counts.map((c) => c / N)).toEqual(weights.map((w) => expect.closeTo(w / total, 2)));
    expect(counts[2]).toBe(0);
  });

  test('one outcome, edge randoms and NaN stay in range', () => {
    expect(aliasDraw([1])(Math.random)).toBe(0);
    const draw = aliasDraw([1, 1]);
    expect([draw(() => 0), draw(() => 0.999_999_999), draw(() => 1), draw(() => Number.NaN)]).toEqual([
      0, 1, 1, 0,
    ]);
  });
});
