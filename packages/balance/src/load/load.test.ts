import { ConfigError } from '@grpc-tower/core';
import { describe, expect, test } from 'vitest';
import { loadFunction } from './load-function.js';
import { peakEwma } from './peak-ewma.js';
import { pendingRequests } from './pending.js';

const subject = (pending = 0) => ({ address: '10.0.0.1:50051', pending });

describe('peakEwma', () => {
  test('a new endpoint starts at the seed round-trip time, times pending + 1', () => {
    const ep = subject(0);
    const load = peakEwma({ defaultRttMs: 30 }).create(ep, 1000);
    expect(load.cost(1000)).toBe(30);
    expect(load.estimateMs(1000)).toBe(30);
    ep.pending = 3;
    expect(load.cost(1000)).toBe(120);
  });

  test('the first successful sample replaces the seed, whatever its size', () => {
    const load = peakEwma({ defaultRttMs: 30 }).create(subject(), 0);
    load.observe(0.5, 300, true); // a fast failure is not a sample of the round-trip time
    expect(load.estimateMs(0)).toBe(30);
    load.observe(2, 300, false);
    expect(load.estimateMs(300)).toBe(2);
    const slow = peakEwma({ defaultRttMs: 30 }).create(subject(), 0);
    slow.observe(80, 1, false);
    expect(slow.estimateMs(1)).toBe(80);
  });

  test('a sample above the estimate replaces it at once (peak)', () => {
    const load = peakEwma({ defaultRttMs: 30 }).create(subject(), 0);
    load.observe(5, 1, false);
    load.observe(250, 2, false);
    expect(load.estimateMs(2)).toBe(250);
  });

  test('samples below the estimate pull it down with weight 1 - exp(-elapsed / decay)', () => {
    const load = peakEwma({ defaultRttMs: 30, decayMs: 1000 }).create(subject(), 0);
    load.observe(100, 0, false);
    // 1000 ms after the last sample, the sample (10) mixes in with weight 1 - e⁻¹
    load.observe(10, 1000, false);
    const keep = Math.exp(-1);
    expect(load.estimateMs(1000)).toBeCloseTo(100 * keep + 10 * (1 - keep), 9);
    // a burst of samples a moment apart barely moves it: the weight is time-based
    const before = load.estimateMs(1000) as number;
    for (let i = 1; i <= 100; i++) load.observe(1, 1000 + i * 0.01, false);
    expect(load.estimateMs(1001)).toBeGreaterThan(before * 0.99);
  });

  test('a steady stream of samples converges to them, not below them', () => {
    const load = peakEwma({ defaultRttMs: 30, decayMs: 1000 }).create(subject(), 0);
    load.observe(30, 0, false);
    for (let t = 1; t <= 5000; t++) load.observe(2, t, false);
    expect(load.estimateMs(5000)).toBeGreaterThan(2);
    expect(load.estimateMs(5000)).toBeLessThan(2.3);
    for (let t = 5001; t <= 20_000; t++) load.observe(2, t, false);
    expect(load.estimateMs(20_000)).toBeCloseTo(2, 4);
  });

  test('between samples the estimate decays toward zero, so an idle slow endpoint is tried again', () => {
    const load = peakEwma({ defaultRttMs: 30, decayMs: 10_000 }).create(subject(), 0);
    load.observe(500, 0, false);
    expect(load.estimateMs(10_000)).toBeCloseTo(500 * Math.exp(-1), 9);
    expect(load.cost(60_000)).toBeLessThan(2);
  });

  test('the cost never goes below the floor times pending + 1', () => {
    const ep = subject(1);
    const load = peakEwma({ defaultRttMs: 0.01, floorMs: 1 }).create(ep, 0);
    expect(load.cost(0)).toBe(2);
    const noFloor = peakEwma({ defaultRttMs: 0.01, floorMs: 0 }).create(ep, 0);
    expect(noFloor.cost(0)).toBeCloseTo(0.02, 9);
  });

  test('a failed call can raise the estimate but never lower it', () => {
    const load = peakEwma({ defaultRttMs: 30, decayMs: 1000 }).create(subject(), 0);
    load.observe(30, 0, false);
    load.observe(0.1, 5000, true); // fast failure: ignored
    expect(load.estimateMs(0)).toBe(30);
    load.observe(400, 10, true); // a timeout is still slow
    expect(load.estimateMs(10)).toBe(400);
  });

  test('defaults are 30 ms seed, 10 s decay of the average, 1 s decay of a peak, 1 ms floor', () => {
    const ep = subject(0);
    const load = peakEwma().create(ep, 0);
    expect(load.cost(0)).toBe(30);
    // the seed holds until the endpoint (or a peer) answers
    expect(load.estimateMs(10_000)).toBe(30);
    load.observe(30, 0, false);
    expect(load.estimateMs(10_000)).toBeCloseTo(30 * Math.exp(-1), 9);
    expect(load.cost(1_000_000)).toBe(1);
    // a peak above a 5 ms average is back near it after a few seconds
    const peaked = peakEwma().create(ep, 0);
    peaked.observe(5, 0, false);
    peaked.observe(5, 10, false);
    peaked.observe(50, 20, false);
    expect(peaked.estimateMs(20)).toBe(50);
    expect(peaked.estimateMs(1_020)).toBeCloseTo(Math.max(50 * Math.exp(-1), 5), 1);
    expect(peaked.estimateMs(5_020)).toBeLessThan(6);
    expect(peakEwma().name).toBe('peak-ewma');
  });

  test('an endpoint that has not answered is estimated at its peers’ running average', () => {
    const metric = peakEwma();
    const first = metric.create(subject(), 0);
    const second = metric.create(subject(), 0);
    expect(second.estimateMs(0)).toBe(30);
    first.observe(2, 1, false);
    // the endpoint connected with the first is not stuck at the 30 ms seed
    expect(second.estimateMs(2)).toBe(2);
    expect(second.cost(2)).toBeCloseTo(first.cost(2), 2);
    second.observe(4, 3, false);
    expect(second.estimateMs(3)).toBe(4);
  });

  test('the classic form: a peak that decays with the average', () => {
    const classic = peakEwma({ peakDecayMs: 10_000 }).create(subject(), 0);
    classic.observe(5, 0, false);
    classic.observe(50, 10, false);
    expect(classic.estimateMs(10_010)).toBeCloseTo(50 * Math.exp(-1), 1);
  });

  test.each([
    ['defaultRttMs', { defaultRttMs: -1 }],
    ['decayMs', { decayMs: 0 }],
    ['decayMs', { decayMs: Number.POSITIVE_INFINITY }],
    ['peakDecayMs', { peakDecayMs: 0 }],
    ['peakDecayMs', { decayMs: 1_000, peakDecayMs: 2_000 }],
    ['floorMs', { floorMs: Number.NaN }],
    ['deadlineMinMs', { deadlineMinMs: -1 }],
    ['deadlineLatencyFactor', { deadlineLatencyFactor: 0.5 }],
  ])('rejects a bad %s with a ConfigError', (option, opts) => {
    expect(() => peakEwma(opts)).toThrow(ConfigError);
    expect(() => peakEwma(opts)).toThrow(`peakEwma: option "${option}"`);
  });

  test("a failure at the caller's deadline does not raise the estimate when the endpoint had no fair chance", () => {
    const metric = peakEwma({ defaultRttMs: 30 });
    const load = metric.create(subject(), 0);
    const twin = metric.create(subject(), 0);
    load.observe(20, 1, false);
    twin.observe(20, 1, false);
    // 2 ms and 150 ms deadlines for a 20 ms server: under 1 s and under 10 × 20 ms
    for (let t = 2; t < 200; t++) load.observe(t % 2 === 0 ? 2 : 150, t, true, true);
    expect(load.estimateMs(200)).toBe(twin.estimateMs(200));
    expect(load.estimateMs(200)).toBeCloseTo(20, 0);
    // a deadline after 10 × its estimate, or after 1 s, is the server's slowness
    load.observe(200, 201, true, true);
    expect(load.estimateMs(201)).toBe(200);
    const seeded = peakEwma({ defaultRttMs: 30 }).create(subject(), 0);
    seeded.observe(900, 1, true, true); // no answer yet: only deadlineMinMs applies
    expect(seeded.estimateMs(1)).toBeCloseTo(30, 1);
    seeded.observe(1_000, 2, true, true);
    expect(seeded.estimateMs(2)).toBe(1_000);
  });

  test('other failures still raise the estimate as before, and the deadline rule is configurable', () => {
    const load = peakEwma({ defaultRttMs: 30 }).create(subject(), 0);
    load.observe(20, 1, false);
    load.observe(150, 2, true);
    expect(load.estimateMs(2)).toBe(150);
    const strict = peakEwma({ deadlineMinMs: 100, deadlineLatencyFactor: 2 }).create(subject(), 0);
    strict.observe(20, 1, false);
    strict.observe(30, 2, true, true); // below 2 × max(20, 10) = 40
    expect(strict.estimateMs(2)).toBeCloseTo(20, 2);
    strict.observe(45, 3, true, true);
    expect(strict.estimateMs(3)).toBe(45);
  });
});

describe('pendingRequests and loadFunction', () => {
  test('pendingRequests costs the calls in flight and keeps no estimate', () => {
    const ep = subject(4);
    const load = pendingRequests().create(ep, 0);
    expect(load.cost(0)).toBe(4);
    ep.pending = 0;
    load.observe(100, 1, false);
    expect(load.cost(1)).toBe(0);
    expect(load.estimateMs(1)).toBeUndefined();
  });

  test('loadFunction wraps a function of the endpoint', () => {
    const ep = subject(3);
    const metric = loadFunction((e) => e.pending * 10, 'tenfold');
    expect(metric.name).toBe('tenfold');
    expect(metric.create(ep, 0).cost(0)).toBe(30);
    expect(() => loadFunction(42 as unknown as () => number)).toThrow(ConfigError);
  });
});

describe('peakEwma seeding', () => {
  test('a new endpoint starts at its peers’ recent round-trip time, not the fixed seed', () => {
    const metric = peakEwma({ defaultRttMs: 30 });
    const a = metric.create({ address: 'a:1', pending: 0 }, 0);
    expect(a.cost(0)).toBe(30); // nothing answered yet: the fixed seed
    for (let t = 1; t <= 50; t++) a.observe(2, t, false);
    const b = metric.create({ address: 'a:1', pending: 0 }, 50);
    expect(b.cost(50)).toBeCloseTo(2, 5);
    b.observe(5, 51, false); // its own first sample replaces the seed
    expect(b.cost(51)).toBeCloseTo(5, 5);
  });

  test('failed calls do not move the peers’ average', () => {
    const metric = peakEwma({ defaultRttMs: 30 });
    const a = metric.create({ address: 'a:1', pending: 0 }, 0);
    a.observe(0.1, 1, true);
    expect(metric.create({ address: 'a:1', pending: 0 }, 1).cost(1)).toBe(30);
  });
});
