// slowStart: Envoy's formula, its bounds, and the share a new endpoint
// gets from a P2C pick that draws by weight (the arithmetic needs no
// server, so the endpoints here are plain objects that answer with their
// address).
import { ConfigError, type Endpoint, type Readiness } from '@grpc-tower/core';
import fc from 'fast-check';
import { of } from 'rxjs';
import { describe, expect, test } from 'vitest';
import { type SlowStartOptions, slowStart } from './slow-start.js';
import { testPicker } from '../test/slow-start-picker.js';
import { seededRandom } from '../test/prng.js';
import { background } from '@grpc-tower/core';

describe('slowStart weight', () => {
  test('the examples of Envoy’s formula', () => {
    const w = slowStart({ windowMs: 10_000 });
    expect(w(0, 0)).toBe(0.1); // the minimum weight
    expect(w(0, 500)).toBe(0.1);
    expect(w(0, 2_500)).toBe(0.25);
    expect(w(0, 5_000)).toBe(0.5);
    expect(w(0, 10_000)).toBe(1);
    expect(w(0, 1e9)).toBe(1);
    expect(w(1_000, 6_000)).toBe(0.5); // measured from readySinceMs
    const aggressive = slowStart({ windowMs: 10_000, aggression: 2 });
    expect(aggressive(0, 2_500)).toBeCloseTo(0.5); // 0.25 ^ (1/2)
    const gentle = slowStart({ windowMs: 10_000, aggression: 0.5, minWeightPercent: 1 });
    expect(gentle(0, 5_000)).toBeCloseTo(0.25); // 0.5 ^ 2
  });

  test('always in (0, 1], never below the minimum, never decreasing with time', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.double({ min: 0.1, max: 10, noNaN: true }),
        fc.double({ min: 0.1, max: 100, noNaN: true }),
        fc.integer({ min: -10_000, max: 200_000 }),
        fc.integer({ min: 0, max: 50_000 }),
        (windowMs, aggression, minWeightPercent, t, dt) => {
          const w = slowStart({ windowMs, aggression, minWeightPercent });
          const a = w(0, t);
          const b = w(0, t + dt);
          expect(a).toBeGreaterThan(0);
          expect(a).toBeLessThanOrEqual(1);
          expect(a).toBeGreaterThanOrEqual(Math.min(1, minWeightPercent / 100));
          expect(b).toBeGreaterThanOrEqual(a);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('a window of 0 turns it off', () => {
    expect(slowStart({ windowMs: 0 })(0, 0)).toBe(1);
  });

  test.each([
    [{}, 'windowMs'],
    [{ windowMs: -1 }, 'windowMs'],
    [{ windowMs: 1000, aggression: 0 }, 'aggression'],
    [{ windowMs: 1000, minWeightPercent: 0 }, 'minWeightPercent'],
    [{ windowMs: 1000, minWeightPercent: 120 }, 'minWeightPercent'],
  ])('%j throws ConfigError naming %s', (options, option) => {
    let caught: unknown;
    try {
      slowStart(options as SlowStartOptions);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).option).toBe(option);
  });
});

describe('slowStart in a P2C pick', () => {
  const endpoint = (address: string): Endpoint<string, string> => ({
    address,
    readiness: 'ready',
    readiness$: of<Readiness>('ready'),
    pending: 0,
    call: async () => address,
    close: async () => {},
  });

  test('a new endpoint takes a growing share over the window, then its full share', async () => {
    const eps = ['old-1', 'old-2', 'old-3', 'new'].map(endpoint);
    let now = 0;
    const picker = testPicker(eps, {
      weight: slowStart({ windowMs: 10_000 }),
      readySince: (ep) => (ep.address === 'new' ? 0 : Number.NEGATIVE_INFINITY),
      now: () => now,
      random: seededRandom(7),
    });
    const share = async (at: number): Promise<number> => {
      now = at;
      let hits = 0;
      for (let i = 0; i < 4000; i++) if ((await picker.call('x', background)) === 'new') hits++;
      return hits / 4000;
    };
    const shares = [await share(0), await share(2_500), await share(5_000), await share(10_000)];
    expect(shares[0]).toBeLessThan(0.06);
    for (let i = 1; i < shares.length; i++) expect(shares[i]).toBeGreaterThan(shares[i - 1]!);
    expect(shares[3]).toBeGreaterThan(0.22);
    expect(shares[3]).toBeLessThan(0.28);
  });
});
