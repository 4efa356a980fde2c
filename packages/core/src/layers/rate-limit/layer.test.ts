// The rate limit is generic, so these tests wrap in-process services built
// with serviceFn; no network peer is involved. Time is faked (vi.useFakeTimers
// fakes both timers and Date.now), so counts are exact and no test depends on
// wall-clock speed.
import { getEventListeners, setMaxListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { background, withTimeout } from '../../context/index.js';
import { CancelledError, ConfigError, ResourceExhaustedError } from '../../errors.js';
import { serviceFn } from '../../service.js';
import { RateLimitedError } from './errors.js';
import { rateLimit } from './layer.js';

function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

function counting() {
  const admitted: number[] = [];
  const svc = serviceFn(async (n: number) => {
    admitted.push(n);
    return n;
  });
  return { svc, admitted };
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('rateLimit', () => {
  test('admits perSecond calls a second plus the burst, in arrival order', async () => {
    const { svc: inner, admitted } = counting();
    const svc = rateLimit({ perSecond: 100, burst: 1 })(inner);
    const controller = new AbortController();
    // every waiting call listens on this one signal
    setMaxListeners(2_000, controller.signal);
    const ctx = background.withSignal(controller.signal);
    const calls = Array.from({ length: 1_000 }, (_, i) => settle(svc.call(i, ctx)));
    await vi.advanceTimersByTimeAsync(0);
    expect(admitted).toHaveLength(1);

    await vi.advanceTimersByTimeAsync(500);
    expect(admitted.length).toBeGreaterThanOrEqual(50);
    expect(admitted.length).toBeLessThanOrEqual(52);
    await vi.advanceTimersByTimeAsync(500);
    // one from the full bucket, then one every 10 ms for 1 s
    expect(admitted.length).toBeGreaterThanOrEqual(100);
    expect(admitted.length).toBeLessThanOrEqual(102);
    expect(admitted).toEqual(Array.from({ length: admitted.length }, (_, i) => i));
    expect(svc.waiting).toBe(1_000 - admitted.length);

    controller.abort();
    const results = await Promise.all(calls);
    const cancelled = results.filter((r) => !r.ok);
    expect(cancelled).toHaveLength(1_000 - admitted.length);
    expect(cancelled.every((r) => (r as { error: unknown }).error instanceof CancelledError)).toBe(true);
    expect(svc.waiting).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  test('a full bucket lets a burst through at once, then paces', async () => {
    const { svc: inner, admitted } = counting();
    const svc = rateLimit({ perSecond: 10, burst: 5 })(inner);
    const calls = Array.from({ length: 8 }, (_, i) => svc.call(i, background));
    await vi.advanceTimersByTimeAsync(0);
    expect(admitted).toHaveLength(5);
    expect(svc.waiting).toBe(3);
    await vi.advanceTimersByTimeAsync(300);
    expect(admitted).toHaveLength(8);
    await Promise.all(calls);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('the default burst is one second of tokens', async () => {
    const { svc: inner, admitted } = counting();
    const svc = rateLimit({ perSecond: 20, wait: false })(inner);
    const results = await Promise.all(Array.from({ length: 25 }, (_, i) => settle(svc.call(i, background))));
    expect(results.filter((r) => r.ok)).toHaveLength(20);
    expect(admitted).toHaveLength(20);
  });

  test('wait: false fails fast with RateLimitedError saying when the next token comes', async () => {
    const { svc: inner, admitted } = counting();
    const svc = rateLimit({ perSecond: 100, burst: 3, wait: false })(inner);
    for (let i = 0; i < 3; i++) await expect(svc.call(i, background)).resolves.toBe(i);
    const refused = await settle(svc.call(3, background));
    const error = (refused as { error: unknown }).error;
    expect(error).toBeInstanceOf(RateLimitedError);
    expect(error).toBeInstanceOf(ResourceExhaustedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(10);
    expect((error as Error).message).toBe('rate limit: 100 calls/s (burst 3) reached, next token in 10 ms');
    expect(vi.getTimerCount()).toBe(0);
    expect(admitted).toEqual([0, 1, 2]);

    vi.advanceTimersByTime(10);
    await expect(svc.call(4, background)).resolves.toBe(4);
  });

  test("fails at once when the token would come after the call's deadline", async () => {
    const { svc: inner } = counting();
    const svc = rateLimit({ perSecond: 1, burst: 1 })(inner);
    await svc.call(0, background);

    const short = withTimeout(background, 100);
    try {
      const error = (await settle(svc.call(1, short.context))) as { error: unknown };
      expect(error.error).toBeInstanceOf(RateLimitedError);
      expect((error.error as Error).message).toMatch(/after the call's deadline \(100 ms left\)/);
      expect(svc.waiting).toBe(0);
    } finally {
      short.release();
    }

    const long = withTimeout(background, 2_000);
    try {
      const result = settle(svc.call(2, long.context));
      expect(svc.waiting).toBe(1);
      await vi.advanceTimersByTimeAsync(1_000);
      expect(await result).toEqual({ ok: true, value: 2 });
    } finally {
      long.release();
    }
    expect(vi.getTimerCount()).toBe(0);
  });

  test("a waiting call that aborts leaves the queue and the queue's timer goes with the last waiter", async () => {
    const { svc: inner, admitted } = counting();
    const svc = rateLimit({ perSecond: 10, burst: 1 })(inner);
    await svc.call(0, background);
    const c1 = new AbortController();
    const c2 = new AbortController();
    const w1 = settle(svc.call(1, background.withSignal(c1.signal)));
    const w2 = settle(svc.call(2, background.withSignal(c2.signal)));
    expect(svc.waiting).toBe(2);
    expect(vi.getTimerCount()).toBe(1);

    c1.abort();
    expect(((await w1) as { error: unknown }).error).toBeInstanceOf(CancelledError);
    expect(svc.waiting).toBe(1);
    expect(vi.getTimerCount()).toBe(1);
    // the next token goes to the remaining waiter
    await vi.advanceTimersByTimeAsync(100);
    expect(await w2).toEqual({ ok: true, value: 2 });
    expect(admitted).toEqual([0, 2]);

    const c3 = new AbortController();
    const w3 = settle(svc.call(3, background.withSignal(c3.signal)));
    expect(vi.getTimerCount()).toBe(1);
    c3.abort();
    await w3;
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(c1.signal, 'abort')).toHaveLength(0);
    expect(getEventListeners(c2.signal, 'abort')).toHaveLength(0);
    expect(getEventListeners(c3.signal, 'abort')).toHaveLength(0);
  });

  test('an already aborted call spends no token', async () => {
    const { svc: inner, admitted } = counting();
    const svc = rateLimit({ perSecond: 1, burst: 1 })(inner);
    await expect(svc.call(0, background.withSignal(AbortSignal.abort()))).rejects.toBeInstanceOf(
      CancelledError,
    );
    await expect(svc.call(1, background)).resolves.toBe(1);
    expect(admitted).toEqual([1]);
  });

  test('ready() is true when a token is there and nobody waits', async () => {
    const { svc: inner } = counting();
    const svc = rateLimit({ perSecond: 4, burst: 1 })(inner);
    expect(svc.ready()).toBe(true);
    await svc.call(0, background);
    expect(svc.ready()).toBe(false);
    expect(svc.tokens).toBe(0);
    vi.advanceTimersByTime(125);
    expect(svc.tokens).toBeCloseTo(0.5);
    expect(svc.ready()).toBe(false);
    vi.advanceTimersByTime(125);
    expect(svc.ready()).toBe(true);
  });

  test('fractional rates work: 0.5 per second is one call every 2 s', async () => {
    const { svc: inner, admitted } = counting();
    const svc = rateLimit({ perSecond: 0.5 })(inner);
    const calls = [0, 1, 2].map((i) => svc.call(i, background));
    await vi.advanceTimersByTimeAsync(0);
    expect(admitted).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1_999);
    expect(admitted).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1);
    expect(admitted).toEqual([0, 1]);
    await vi.advanceTimersByTimeAsync(2_000);
    await Promise.all(calls);
    expect(admitted).toEqual([0, 1, 2]);
  });

  test('bad options throw a ConfigError naming the option', () => {
    const cases: Array<[unknown, string]> = [
      [{ perSecond: 0 }, 'perSecond'],
      [{ perSecond: -1 }, 'perSecond'],
      [{ perSecond: Number.NaN }, 'perSecond'],
      [{ perSecond: Number.POSITIVE_INFINITY }, 'perSecond'],
      [{ perSecond: '10' }, 'perSecond'],
      [{}, 'perSecond'],
      [{ perSecond: 10, burst: 0.5 }, 'burst'],
      [{ perSecond: 10, burst: -1 }, 'burst'],
      [{ perSecond: 10, burst: Number.NaN }, 'burst'],
      [{ perSecond: 10, burst: Number.POSITIVE_INFINITY }, 'burst'],
      [{ perSecond: 10, wait: 'no' }, 'wait'],
      [null, 'options'],
    ];
    for (const [options, option] of cases) {
      let thrown: unknown;
      try {
        rateLimit(options as { perSecond: number });
      } catch (err) {
        thrown = err;
      }
      expect(thrown, JSON.stringify(options)).toBeInstanceOf(ConfigError);
      expect((thrown as ConfigError).where).toBe('rateLimit');
      expect((thrown as ConfigError).option).toBe(option);
    }
  });
});
