// The split across groups in the balancer (an xDS route's weighted_clusters),
// over counting endpoints: the shares of 10,000 seeded picks by group weight ×
// endpoint weight within ±2 pp, a group with no ready endpoint giving its
// share to the others, priorities within a group, and the decision as the
// balancer publishes it (no network: the shares over real gRPC servers are in
// groups.grpc.test.ts).
import { type Change, background } from '@grpc-tower/core';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import type { Balancer } from './balancer.js';
import type { BalancerEvent } from './events.js';
import { AvoidEndpoints } from './hints.js';
import { pendingRequests } from './load/pending.js';
import { p2c } from './p2c.js';
import { CountingEndpoint } from './test/counting-endpoint.js';
import { seededRandom } from './test/prng.js';

type TestBalancer = Balancer<string, string, string>;

const open: TestBalancer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

interface Spec {
  readonly group?: string;
  readonly groupWeight?: number;
  readonly weight?: number;
  readonly priority?: number;
}

let hostCount = 0;

function grouped(specs: readonly Spec[], seed = 17) {
  const discover = new Subject<Change<string, CountingEndpoint>>();
  const events: BalancerEvent<string>[] = [];
  const balancer: TestBalancer = p2c(discover, { load: pendingRequests(), random: seededRandom(seed) });
  balancer.events$.subscribe((e) => events.push(e));
  open.push(balancer);
  const eps = specs.map((s) => {
    hostCount++;
    const ep = new CountingEndpoint(`10.3.${hostCount >> 8}.${hostCount & 255}:50051`);
    ep.fixedPending = 0;
    const { group, groupWeight, weight, priority } = s;
    discover.next({
      type: 'insert',
      key: ep.address,
      endpoint: ep,
      metadata: { group, groupWeight, weight, priority },
    });
    return ep;
  });
  return { balancer, events, eps };
}

async function shares(
  balancer: TestBalancer,
  eps: readonly CountingEndpoint[],
  n: number,
): Promise<number[]> {
  for (const e of eps) e.calls = 0;
  await Promise.all(Array.from({ length: n }, () => balancer.call('x', background)));
  return eps.map((e) => e.calls / n);
}

const within2pp = (measured: readonly number[], expected: readonly number[]) => {
  expected.forEach((want, i) => {
    expect(
      Math.abs((measured[i] as number) - want),
      `endpoint ${i}: ${measured[i]} vs ${want}`,
    ).toBeLessThanOrEqual(0.02);
  });
};

const pct = (xs: readonly number[]) => xs.map((x) => `${(x * 100).toFixed(1)} %`).join(', ');

describe('groups in the balancer', () => {
  test('10,000 seeded picks: group weight × endpoint weight within ±2 pp; stats and event say the shares', async () => {
    const { balancer, events, eps } = grouped([
      { group: 'blue', groupWeight: 3 },
      { group: 'blue', groupWeight: 3 },
      { group: 'green', groupWeight: 1, weight: 1 },
      { group: 'green', groupWeight: 1, weight: 3 },
    ]);
    const expected = [0.375, 0.375, 0.0625, 0.1875];
    const measured = await shares(balancer, eps, 10_000);
    console.log(`groups 3:1, green weights 1:3: expected ${pct(expected)}; measured ${pct(measured)}`);
    within2pp(measured, expected);
    expect(balancer.stats().groups).toEqual({ blue: 0.75, green: 0.25 });
    expect(events.filter((e) => e.type === 'groups').at(-1)).toEqual({
      type: 'groups',
      shares: { blue: 0.75, green: 0.25 },
    });
    expect(balancer.stats().endpoints.map((e) => e.group)).toEqual(['blue', 'blue', 'green', 'green']);
  });

  test('a canary of 10 %: 10,000 picks within ±2 pp, whatever the group sizes', async () => {
    const specs: Spec[] = [
      ...Array.from({ length: 5 }, () => ({ group: 'stable', groupWeight: 90 })),
      { group: 'canary', groupWeight: 10 },
    ];
    const { balancer, eps } = grouped(specs);
    const measured = await shares(balancer, eps, 10_000);
    const canary = measured[5] as number;
    console.log(`canary 10 %: measured ${(canary * 100).toFixed(1)} %`);
    within2pp([canary], [0.1]);
    within2pp(measured.slice(0, 5), [0.18, 0.18, 0.18, 0.18, 0.18]);
  });

  test('a group with no ready endpoint gives its share to the others; it takes it back when one is ready', async () => {
    const { balancer, eps } = grouped([
      { group: 'a', groupWeight: 1 },
      { group: 'b', groupWeight: 1 },
      { group: 'c', groupWeight: 2 },
    ]);
    const [, , c] = eps as [CountingEndpoint, CountingEndpoint, CountingEndpoint];
    c.setReadiness('failed');
    within2pp(await shares(balancer, eps, 10_000), [0.5, 0.5, 0]);
    expect(balancer.stats().groups).toEqual({ a: 0.5, b: 0.5 });
    c.setReadiness('ready');
    within2pp(await shares(balancer, eps, 10_000), [0.25, 0.25, 0.5]);
  });

  test('priorities within a group: its standby takes the group’s share only when its primary has none ready', async () => {
    const { balancer, eps } = grouped([
      { group: 'blue', groupWeight: 1, priority: 0 },
      { group: 'blue', groupWeight: 1, priority: 1 },
      { group: 'green', groupWeight: 1 },
    ]);
    within2pp(await shares(balancer, eps, 10_000), [0.5, 0, 0.5]);
    (eps[0] as CountingEndpoint).setReadiness('failed');
    within2pp(await shares(balancer, eps, 10_000), [0, 0.5, 0.5]);
  });

  test('a retry that avoids every endpoint of the group drawn goes to another ready one', async () => {
    const { balancer, eps } = grouped([
      { group: 'a', groupWeight: 1 },
      { group: 'b', groupWeight: 1000 },
    ]);
    const [a, b] = eps as [CountingEndpoint, CountingEndpoint];
    const ctx = background.withValue(AvoidEndpoints, new Set([b.address]));
    await Promise.all(Array.from({ length: 50 }, () => balancer.call('x', ctx)));
    expect(a.calls).toBe(50);
  });

  test('one group, or none, changes nothing: no shares published', async () => {
    const { balancer, events, eps } = grouped([{ group: 'only' }, { group: 'only' }]);
    await shares(balancer, eps, 100);
    expect(balancer.stats().groups).toBeUndefined();
    expect(events.filter((e) => e.type === 'groups')).toEqual([]);
  });
});
