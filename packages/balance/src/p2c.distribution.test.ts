// Pick distributions in the style of Envoy's least-request load-balancer
// simulation: many picks over endpoints whose loads are held fixed, and the
// share each endpoint receives compared with the share the arithmetic
// predicts. The endpoints are counting endpoints (no network) and the
// random source is seeded, so every run draws the same sequence.
import { background, type CallContext, type Change } from '@grpc-tower/core';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import type { Balancer } from './balancer.js';
import type { LoadMetric } from './load/metric.js';
import { pendingRequests } from './load/pending.js';
import { p2c } from './p2c.js';
import { roundRobin } from './round-robin.js';
import { AvoidEndpoints } from './hints.js';
import { CountingEndpoint } from './test/counting-endpoint.js';
import { seededRandom } from './test/prng.js';

const PICKS = 100_000;
const TOLERANCE = 0.01; // ±1 percentage point

const open: Balancer<string, string, string>[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

function setup(
  loads: readonly number[],
  make: (d: Subject<Change<string, CountingEndpoint>>) => Balancer<string, string, string>,
  weights?: readonly number[],
) {
  const discover = new Subject<Change<string, CountingEndpoint>>();
  const balancer = make(discover);
  open.push(balancer);
  const endpoints = loads.map((load, i) => {
    const ep = new CountingEndpoint(`10.0.0.${i + 1}:50051`);
    ep.fixedPending = load;
    // the weight travels on the insert, as discovery gives it
    discover.next({ type: 'insert', key: ep.address, endpoint: ep, metadata: { weight: weights?.[i] } });
    return ep;
  });
  return { balancer, endpoints, discover };
}

async function shares(
  balancer: Balancer<string, string, string>,
  endpoints: readonly CountingEndpoint[],
  ctx: CallContext = background,
  picks = PICKS,
): Promise<number[]> {
  const before = endpoints.map((e) => e.calls);
  const calls: Promise<string>[] = [];
  for (let i = 0; i < picks; i++) calls.push(balancer.call('x', ctx));
  await Promise.all(calls);
  return endpoints.map((e, i) => (e.calls - (before[i] ?? 0)) / picks);
}

function expectShares(actual: readonly number[], expected: readonly number[]): void {
  expect(actual).toHaveLength(expected.length);
  for (const [i, want] of expected.entries()) {
    const got = actual[i] as number;
    expect(
      Math.abs(got - want),
      `endpoint ${i}: share ${(got * 100).toFixed(2)} %, expected ${want * 100} %`,
    ).toBeLessThanOrEqual(TOLERANCE);
  }
}

const cases: [string, number[], number[]][] = [
  ['3 equal loads → 33.3 % each', [0, 0, 0], [1 / 3, 1 / 3, 1 / 3]],
  ['loads [0, 0, 10] → 50 / 50 / 0', [0, 0, 10], [0.5, 0.5, 0]],
  ['loads [0, 5, 10] → 66.7 / 33.3 / 0', [0, 5, 10], [2 / 3, 1 / 3, 0]],
  ['10 equal loads → 10 % each', new Array(10).fill(3), new Array(10).fill(0.1)],
];

describe('p2c pick distribution over fixed loads (100,000 picks)', () => {
  test.each(cases)('pending requests: %s', async (_name, loads, expected) => {
    const { balancer, endpoints } = setup(loads, (d) =>
      p2c(d, { load: pendingRequests(), random: seededRandom(7) }),
    );
    expectShares(await shares(balancer, endpoints), expected);
  });

  test.each(cases)('a plain load function: %s', async (_name, loads, expected) => {
    const { balancer, endpoints } = setup(loads, (d) =>
      p2c(d, { load: (ep) => ep.pending * 2 + 1, random: seededRandom(11) }),
    );
    expectShares(await shares(balancer, endpoints), expected);
  });

  test('a different seed gives the same shares', async () => {
    const { balancer, endpoints } = setup([0, 5, 10], (d) =>
      p2c(d, { load: pendingRequests(), random: seededRandom(12345) }),
    );
    expectShares(await shares(balancer, endpoints), [2 / 3, 1 / 3, 0]);
  });

  test('endpoints that are not ready get no picks, and return to the split when ready', async () => {
    const { balancer, endpoints } = setup([0, 0, 0, 0], (d) =>
      p2c(d, { load: pendingRequests(), random: seededRandom(3) }),
    );
    endpoints[1]?.setReadiness('connecting');
    endpoints[3]?.setReadiness('failed');
    expectShares(await shares(balancer, endpoints, background, 20_000), [0.5, 0, 0.5, 0]);
    endpoints[1]?.setReadiness('ready');
    endpoints[3]?.setReadiness('ready');
    expectShares(await shares(balancer, endpoints, background, 20_000), [0.25, 0.25, 0.25, 0.25]);
  });

  test('one ready endpoint takes every call', async () => {
    const { balancer, endpoints } = setup([5, 0], (d) =>
      p2c(d, { load: pendingRequests(), random: seededRandom(3) }),
    );
    endpoints[1]?.setReadiness('connecting');
    expect(await shares(balancer, endpoints, background, 1000)).toEqual([1, 0]);
  });
});

/**
 * A metric with a fixed latency estimate per endpoint (the address's last
 * number picks it), costing estimate × (calls in flight + 1) as PeakEWMA
 * does, and reporting the calls in flight it counted.
 */
const estimates = (ms: readonly number[]): LoadMetric => ({
  name: 'fixed-estimates',
  create: (ep) => {
    const estimate = ms[Number(ep.address.split('.')[3]?.split(':')[0]) - 1] ?? 1;
    const load = {
      pendingAtCost: 0,
      cost: () => {
        load.pendingAtCost = ep.pending;
        return estimate * (ep.pending + 1);
      },
      observe: () => undefined,
      estimateMs: () => estimate,
    };
    return load;
  },
});

describe('even shares: costs within the tie tolerance take turns (100,000 picks)', () => {
  test('estimates 1.00 / 1.05 / 1.10 ms with no call in flight: a third each', async () => {
    const { balancer, endpoints } = setup([0, 0, 0], (d) =>
      p2c(d, { load: estimates([1, 1.05, 1.1]), random: seededRandom(21) }),
    );
    expectShares(await shares(balancer, endpoints), [1 / 3, 1 / 3, 1 / 3]);
  });

  test('the same estimates with tieTolerance 0 (classic P2C): the lowest wins every pair it is in', async () => {
    const { balancer, endpoints } = setup([0, 0, 0], (d) =>
      p2c(d, { load: estimates([1, 1.05, 1.1]), random: seededRandom(21), tieTolerance: 0 }),
    );
    expectShares(await shares(balancer, endpoints), [2 / 3, 1 / 3, 0]);
  });

  test('a server clearly slower than the tolerance still loses: 1 / 1 / 3 ms → 50 / 50 / 0', async () => {
    const { balancer, endpoints } = setup([0, 0, 0], (d) =>
      p2c(d, { load: estimates([1, 1, 3]), random: seededRandom(22) }),
    );
    expectShares(await shares(balancer, endpoints), [0.5, 0.5, 0]);
  });

  test('ten endpoints with estimates spread over 20 %: 10 % each', async () => {
    const ms = Array.from({ length: 10 }, (_, i) => 1 + i * 0.02);
    const { balancer, endpoints } = setup(new Array(10).fill(0), (d) =>
      p2c(d, { load: estimates(ms), random: seededRandom(23) }),
    );
    expectShares(await shares(balancer, endpoints), new Array(10).fill(0.1));
  });

  test('a bad tieTolerance is a ConfigError naming it', () => {
    const d = new Subject<Change<string, CountingEndpoint>>();
    expect(() => p2c(d, { tieTolerance: -0.1 })).toThrow('p2c: option "tieTolerance"');
    expect(() => p2c(d, { tieTolerance: Number.NaN })).toThrow('p2c: option "tieTolerance"');
  });
});

describe('weights: shares in proportion among equally loaded endpoints (100,000 picks)', () => {
  test.each([
    ['1 / 2 / 3', [1, 2, 3], [1 / 6, 2 / 6, 3 / 6]],
    ['1 / 1 / 10', [1, 1, 10], [1 / 12, 1 / 12, 10 / 12]],
    ['5 / 5 / 5 / 5 (all equal, not 1)', [5, 5, 5, 5], [0.25, 0.25, 0.25, 0.25]],
    ['0.5 / 1.5', [0.5, 1.5], [0.25, 0.75]],
    ['0 / 1 / 1 (an SRV weight 0: a very small chance)', [0, 1, 1], [0.01 / 2.01, 1 / 2.01, 1 / 2.01]],
    ['0 / 0 (all 0: equal)', [0, 0], [0.5, 0.5]],
  ])('weights %s', async (_name, weights, expected) => {
    const { balancer, endpoints } = setup(
      weights.map(() => 0),
      (d) => p2c(d, { load: pendingRequests(), random: seededRandom(31) }),
      weights,
    );
    expectShares(await shares(balancer, endpoints), expected);
  });

  test('weights with PeakEWMA-like estimates that differ by noise', async () => {
    const { balancer, endpoints } = setup(
      [0, 0, 0],
      (d) => p2c(d, { load: estimates([1.02, 1, 1.08]), random: seededRandom(32) }),
      [1, 2, 1],
    );
    expectShares(await shares(balancer, endpoints), [0.25, 0.5, 0.25]);
  });

  test('calls in flight count per unit of weight: weight 2 with 4 in flight is as loaded as weight 1 with 2', async () => {
    const { balancer, endpoints } = setup(
      [2, 4, 2],
      (d) => p2c(d, { load: pendingRequests(), random: seededRandom(36) }),
      [1, 2, 1],
    );
    expectShares(await shares(balancer, endpoints), [0.25, 0.5, 0.25]);
  });

  test('load wins over weight: a heavy endpoint that is ten times slower gets nothing', async () => {
    const { balancer, endpoints } = setup(
      [0, 0, 0],
      (d) => p2c(d, { load: estimates([1, 1, 10]), random: seededRandom(33) }),
      [1, 1, 3],
    );
    expectShares(await shares(balancer, endpoints), [0.5, 0.5, 0]);
  });

  test('an invalid weight counts as 1', async () => {
    const { balancer, endpoints } = setup(
      [0, 0, 0],
      (d) => p2c(d, { load: pendingRequests(), random: seededRandom(34) }),
      [Number.NaN, -2, 2],
    );
    expectShares(await shares(balancer, endpoints), [0.25, 0.25, 0.5]);
  });

  test('slow start composes with weights: weight 2 at half warmth shares like weight 1', async () => {
    let cut = Number.POSITIVE_INFINITY;
    const { balancer, endpoints } = setup(
      [0, 0, 0],
      (d) =>
        p2c(d, {
          load: pendingRequests(),
          random: seededRandom(35),
          slowStart: (since) => (since >= cut ? 0.5 : 1),
        }),
      [1, 1, 2],
    );
    // make the heavy one the warming one: out and back in after the cut
    cut = performance.now();
    endpoints[2]?.setReadiness('connecting');
    endpoints[2]?.setReadiness('ready');
    expectShares(await shares(balancer, endpoints), [1 / 3, 1 / 3, 1 / 3]);
  });
});

describe('AvoidEndpoints', () => {
  const avoiding = (...addresses: string[]) => background.withValue(AvoidEndpoints, new Set(addresses));

  test('p2c skips avoided addresses when another endpoint is ready', async () => {
    const { balancer, endpoints } = setup([0, 0, 0], (d) =>
      p2c(d, { load: pendingRequests(), random: seededRandom(5) }),
    );
    expectShares(await shares(balancer, endpoints, avoiding('10.0.0.1:50051'), 20_000), [0, 0.5, 0.5]);
    expectShares(
      await shares(balancer, endpoints, avoiding('10.0.0.1:50051', '10.0.0.3:50051'), 5_000),
      [0, 1, 0],
    );
  });

  test('p2c still compares loads among the endpoints not avoided', async () => {
    const { balancer, endpoints } = setup([0, 0, 5, 10], (d) =>
      p2c(d, { load: pendingRequests(), random: seededRandom(5) }),
    );
    // among [0, 5, 10]: the same 66.7 / 33.3 / 0 split
    expectShares(await shares(balancer, endpoints, avoiding('10.0.0.1:50051'), 30_000), [0, 2 / 3, 1 / 3, 0]);
  });

  test('when every ready endpoint is avoided, the set is ignored', async () => {
    const { balancer, endpoints } = setup([0, 0, 0], (d) =>
      p2c(d, { load: pendingRequests(), random: seededRandom(5) }),
    );
    const all = avoiding('10.0.0.1:50051', '10.0.0.2:50051', '10.0.0.3:50051');
    expectShares(await shares(balancer, endpoints, all, 30_000), [1 / 3, 1 / 3, 1 / 3]);
    // an avoided endpoint that is not ready does not count
    endpoints[2]?.setReadiness('failed');
    expectShares(
      await shares(balancer, endpoints, avoiding('10.0.0.1:50051', '10.0.0.2:50051'), 20_000),
      [0.5, 0.5, 0],
    );
  });

  test('round robin skips avoided addresses', async () => {
    const { balancer, endpoints } = setup([0, 0, 0], (d) => roundRobin(d));
    expect(await shares(balancer, endpoints, avoiding('10.0.0.2:50051'), 1000)).toEqual([0.5, 0, 0.5]);
  });
});

describe('round robin', () => {
  test('every ready endpoint gets the same share whatever its load', async () => {
    const { balancer, endpoints } = setup([0, 5, 10], (d) => roundRobin(d));
    expect(await shares(balancer, endpoints, background, 30_000)).toEqual([1 / 3, 1 / 3, 1 / 3]);
  });
});

describe('the cost of a pick does not depend on the number of endpoints', () => {
  test('a p2c pick looks at exactly two endpoints out of 10,000', async () => {
    let costs = 0;
    const counted: LoadMetric = {
      name: 'counted',
      create: (ep) => ({
        cost: () => {
          costs++;
          return ep.pending;
        },
        observe: () => undefined,
        estimateMs: () => undefined,
      }),
    };
    const { balancer, endpoints } = setup(new Array(10_000).fill(0), (d) =>
      p2c(d, { load: counted, random: seededRandom(1) }),
    );
    for (const e of endpoints) e.reads = 0;
    await shares(balancer, endpoints, background, 1000);
    expect(costs).toBe(2000);
    // cost() read `pending` twice per pick; nothing else was read from any endpoint
    expect(endpoints.reduce((n, e) => n + e.reads, 0)).toBe(2000);
  });

  test('readiness changes update the ready set without touching other endpoints', async () => {
    const { balancer, endpoints } = setup(new Array(10_000).fill(0), (d) =>
      p2c(d, { load: pendingRequests(), random: seededRandom(1) }),
    );
    for (const e of endpoints) e.reads = 0;
    for (const e of endpoints.slice(0, 5000)) e.setReadiness('failed');
    expect(balancer.counts()).toEqual({
      known: 10_000,
      ready: 5000,
      connecting: 0,
      failed: 5000,
      ejected: 0,
      closed: 0,
    });
    expect(endpoints.reduce((n, e) => n + e.reads, 0)).toBe(0);
    const got = await shares(balancer, endpoints, background, 2000);
    expect(got.slice(0, 5000).every((s) => s === 0)).toBe(true);
  });
});
