// The generic layers stacked together around an in-process service built
// with serviceFn (the layers are generic; no network peer is involved).
// Real timers here: the point is that no timer or listener outlives its call.
import { getEventListeners } from 'node:events';
import { describe, expect, test } from 'vitest';
import { background } from '../context/index.js';
import { CancelledError, DeadlineExceededError } from '../errors.js';
import { ServiceBuilder, serviceFn } from '../service.js';
import { concurrencyLimit } from './concurrency-limit/layer.js';
import { loadShed } from './load-shed/layer.js';
import { rateLimit } from './rate-limit/layer.js';
import { timeout } from './timeout/layer.js';

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('timeout + concurrencyLimit + rateLimit', () => {
  test('10,000 calls, some cancelled while waiting, leave no timer and no listener behind', async () => {
    const limited = concurrencyLimit({ max: 64, queue: 10_000 });
    const svc = new ServiceBuilder<number, number>()
      .layer(timeout({ ms: 30_000 }))
      .layer(limited)
      .layer(rateLimit({ perSecond: 200_000, burst: 100 }))
      .service(
        serviceFn(async (n: number) => {
          await turn();
          return n;
        }),
      );
    const before = timers();
    const controllers: AbortController[] = [];
    const calls = Array.from({ length: 10_000 }, (_, i) => {
      const controller = new AbortController();
      controllers.push(controller);
      return svc.call(i, background.withSignal(controller.signal)).then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      );
    });
    // the stack holds live timers while calls are under way
    expect(timers()).toBeGreaterThan(before);
    await turn();
    for (let i = 0; i < controllers.length; i += 10) controllers[i]?.abort();

    const results = await Promise.all(calls);
    const ok = results.filter((r) => r.ok);
    const failed = results.filter((r) => !r.ok);
    expect(ok.length + failed.length).toBe(10_000);
    // cancelled calls end as cancellations (or, if they were already running, they finished)
    expect(failed.length).toBeLessThanOrEqual(1_000);
    expect(failed.length).toBeGreaterThan(0);
    for (const r of failed) expect((r as { error: unknown }).error).toBeInstanceOf(CancelledError);
    for (const r of ok) expect(typeof r.value).toBe('number');

    // the runner's own timers may come and go; ours must all be gone
    expect(timers()).toBeLessThanOrEqual(before);
    expect(controllers.every((c) => getEventListeners(c.signal, 'abort').length === 0)).toBe(true);
  });

  test('calls stuck behind a concurrency limit time out and leave no timer', async () => {
    const never = serviceFn((_n: number) => new Promise<number>(() => undefined));
    const svc = new ServiceBuilder<number, number>()
      .layer(timeout({ ms: 20 }))
      .layer(concurrencyLimit({ max: 1 }))
      .layer(rateLimit({ perSecond: 1_000 }))
      .service(never);
    const before = timers();
    const results = await Promise.allSettled([svc.call(1, background), svc.call(2, background)]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(DeadlineExceededError);
    }
    expect(timers()).toBeLessThanOrEqual(before);
  });

  test('loadShed over the stack refuses instead of queueing', async () => {
    let release: () => void = () => undefined;
    const blocked = new Promise<void>((resolve) => {
      release = resolve;
    });
    const svc = new ServiceBuilder<number, number>()
      .layer(loadShed())
      .layer(timeout({ ms: 30_000 }))
      .layer(concurrencyLimit({ max: 1 }))
      .service(
        serviceFn(async (n: number) => {
          await blocked;
          return n;
        }),
      );
    const first = svc.call(1, background);
    const second = await Promise.allSettled([svc.call(2, background)]);
    expect((second[0] as PromiseRejectedResult).reason?.name).toBe('OverloadedError');
    release();
    await expect(first).resolves.toBe(1);
  });
});
