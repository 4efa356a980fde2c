// Panic threshold and slow start, over counting endpoints (the point is the
// pick arithmetic; real servers with health checks are in
// @grpc-tower/health's tests).
import { ConfigError, background, type Change } from '@grpc-tower/core';
import fc from 'fast-check';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import type { Balancer } from './balancer.js';
import type { BalancerEvent } from './events.js';
import { pendingRequests } from './load/pending.js';
import { type P2cOptions, p2c } from './p2c.js';
import { belowPanicThreshold } from './pick/panic.js';
import { CountingEndpoint } from './test/counting-endpoint.js';
import { seededRandom } from './test/prng.js';

const open: Balancer<string, string, string>[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

function pool(n: number, options: P2cOptions = {}) {
  const discover = new Subject<Change<string, CountingEndpoint>>();
  const events: BalancerEvent<string>[] = [];
  const balancer = p2c(discover, { load: pendingRequests(), random: seededRandom(7), ...options });
  balancer.events$.subscribe((e) => events.push(e));
  open.push(balancer);
  const endpoints = Array.from({ length: n }, (_, i) => {
    const ep = new CountingEndpoint(`10.0.1.${i + 1}:50051`);
    ep.fixedPending = 0;
    discover.next({ type: 'insert', key: ep.address, endpoint: ep });
    return ep;
  });
  return { balancer, endpoints, events };
}

async function send(balancer: Balancer<string, string, string>, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, () => balancer.call('x', background)));
}

/** Three of four held out (connected but not ready), as a health check would. */
function holdOut(endpoints: CountingEndpoint[], count: number): void {
  for (const ep of endpoints.slice(0, count)) {
    ep.connectedOverride = true;
    ep.setReadiness('failed');
  }
}

describe('panic threshold', () => {
  test('below the threshold, calls spread over every connected endpoint', async () => {
    const { balancer, endpoints, events } = pool(4);
    holdOut(endpoints, 3); // 1 of 4 ready: 25 % < 50 %
    await send(balancer, 8_000);
    for (const ep of endpoints) expect(ep.calls / 8_000).toBeGreaterThan(0.2);
    expect(events.filter((e) => e.type === 'panic')).toEqual([
      { type: 'panic', active: true, known: 4, ready: 1 },
    ]);
  });

  test('at the threshold there is no panic: only ready endpoints get calls', async () => {
    const { balancer, endpoints, events } = pool(4);
    holdOut(endpoints, 2); // 2 of 4 ready: exactly 50 %
    await send(balancer, 2_000);
    expect(endpoints.map((e) => e.calls)).toEqual([0, 0, expect.any(Number), expect.any(Number)]);
    expect(events.some((e) => e.type === 'panic')).toBe(false);
  });

  test('0 disables it', async () => {
    const { balancer, endpoints } = pool(4, { panicThresholdPercent: 0 });
    holdOut(endpoints, 3);
    await send(balancer, 1_000);
    expect(endpoints.map((e) => e.calls)).toEqual([0, 0, 0, 1_000]);
  });

  test('endpoints whose connection is down are not picked in panic', async () => {
    const { balancer, endpoints } = pool(4);
    holdOut(endpoints, 3);
    endpoints[0]!.connectedOverride = false;
    await send(balancer, 3_000);
    expect(endpoints[0]!.calls).toBe(0);
    expect(endpoints[1]!.calls).toBeGreaterThan(0);
  });

  test('panic ends when enough endpoints are ready again', async () => {
    const { balancer, endpoints, events } = pool(4);
    holdOut(endpoints, 3);
    for (const ep of endpoints.slice(0, 2)) ep.setReadiness('ready');
    await send(balancer, 2_000);
    expect(endpoints[2]!.calls).toBe(0);
    expect(events.filter((e) => e.type === 'panic').map((e) => (e as { active: boolean }).active)).toEqual([
      true,
      false,
    ]);
  });

  test('a bad threshold is named', () => {
    expect(() =>
      p2c(new Subject<Change<string, CountingEndpoint>>(), { panicThresholdPercent: 150 }),
    ).toThrow(/panicThresholdPercent/);
  });

  test.each([-1, 101, Number.NaN, '50'])('threshold %j throws ConfigError', (p) => {
    expect(() =>
      p2c(new Subject<Change<string, CountingEndpoint>>(), { panicThresholdPercent: p as number }),
    ).toThrow(ConfigError);
  });
});

describe('the panic decision (whole set and local zone)', () => {
  test('below the share of ready endpoints: panic', () => {
    expect(belowPanicThreshold(4, 4, 50)).toBe(false);
    expect(belowPanicThreshold(4, 2, 50)).toBe(false); // exactly 50 %
    expect(belowPanicThreshold(4, 1, 50)).toBe(true);
    expect(belowPanicThreshold(4, 0, 50)).toBe(true);
    expect(belowPanicThreshold(0, 0, 50)).toBe(false); // nothing known: nothing to balance over
    expect(belowPanicThreshold(10, 9, 100)).toBe(true);
  });

  test('0 disables it', () => {
    fc.assert(fc.property(fc.nat(1000), fc.nat(1000), (k, r) => !belowPanicThreshold(k, Math.min(k, r), 0)));
  });

  test('fewer ready never leaves panic; all ready is never panic', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 100, noNaN: true }), fc.nat(500), fc.nat(500), (p, k, r0) => {
        const r = Math.min(k, r0);
        if (belowPanicThreshold(k, r, p) && r > 0) expect(belowPanicThreshold(k, r - 1, p)).toBe(true);
        expect(belowPanicThreshold(k, k, p)).toBe(false);
      }),
    );
  });
});

describe('slow start', () => {
  test('a warming endpoint takes a share in proportion to its weight', async () => {
    // weight 1 for endpoints ready before `cut`, 0.25 for the newer one
    let cut = 0;
    const { balancer, endpoints } = pool(2, {
      slowStart: (since) => (since <= cut ? 1 : 0.25),
    });
    cut = performance.now();
    await send(balancer, 4_000);
    const even = endpoints.map((e) => e.calls / 4_000);
    expect(even[0]! + even[1]!).toBeCloseTo(1, 5);
    // now make endpoint 1 the warming one by taking it out and back in
    endpoints[1]!.setReadiness('connecting');
    endpoints[1]!.setReadiness('ready');
    const before = endpoints.map((e) => e.calls);
    await send(balancer, 20_000);
    const warm = (endpoints[1]!.calls - before[1]!) / 20_000;
    const old = (endpoints[0]!.calls - before[0]!) / 20_000;
    // kept with probability 0.25 per draw (up to 8 redraws): well under half
    expect(warm).toBeLessThan(0.35);
    expect(old).toBeGreaterThan(0.65);
  });

  test('without slow start, a newly ready endpoint takes its even share at once', async () => {
    const { balancer, endpoints } = pool(2);
    endpoints[1]!.setReadiness('connecting');
    endpoints[1]!.setReadiness('ready');
    await send(balancer, 20_000);
    expect(Math.abs(endpoints[1]!.calls / 20_000 - 0.5)).toBeLessThan(0.02);
  });
});
