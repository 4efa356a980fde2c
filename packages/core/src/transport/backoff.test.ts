import { describe, expect, test } from 'vitest';
import { ReconnectBackoff } from './backoff.js';

describe('ReconnectBackoff', () => {
  test("gRPC's schedule: 1 s, then × 1.6 up to 120 s", () => {
    const backoff = new ReconnectBackoff({ random: () => 0.5 });
    const waits = Array.from({ length: 13 }, () => backoff.next());
    expect(waits).toEqual([
      1_000, 1_600, 2_560, 4_096, 6_554, 10_486, 16_777, 26_844, 42_950, 68_719, 109_951, 120_000, 120_000,
    ]);
    backoff.reset();
    expect(backoff.next()).toBe(1_000);
  });

  test('each wait moves by at most ±20 %', () => {
    expect(new ReconnectBackoff({ random: () => 0 }).next()).toBe(800);
    expect(new ReconnectBackoff({ random: () => 0.999_999 }).next()).toBe(1_200);
  });

  test('the initial and maximum waits are honoured; a maximum below the initial wait is raised to it', () => {
    const backoff = new ReconnectBackoff({ initialMs: 100, maxMs: 200, random: () => 0.5 });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([100, 160, 200]);
    const raised = new ReconnectBackoff({ initialMs: 500, maxMs: 100, random: () => 0.5 });
    expect([raised.next(), raised.next()]).toEqual([500, 500]);
  });

  test('another multiplier: each wait twice the one before', () => {
    const backoff = new ReconnectBackoff({ initialMs: 100, maxMs: 1_000, multiplier: 2, random: () => 0.5 });
    expect(Array.from({ length: 6 }, () => backoff.next())).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });
});
