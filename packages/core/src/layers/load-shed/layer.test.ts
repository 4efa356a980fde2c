// Load shedding is generic, so these tests wrap in-process services built
// with serviceFn; no network peer is involved.
import { describe, expect, test } from 'vitest';
import { type CallContext, background } from '../../context/index.js';
import { ConfigError, OverloadedError } from '../../errors.js';
import { ServiceBuilder, serviceFn } from '../../service.js';
import { concurrencyLimit } from '../concurrency-limit/layer.js';
import { rateLimit } from '../rate-limit/layer.js';
import { timeout } from '../timeout/layer.js';
import { type LoadShedOptions, loadShed } from './layer.js';

function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** An inner service whose calls each wait until the test lets them go. */
function gated() {
  const gates: Array<() => void> = [];
  let calls = 0;
  const svc = serviceFn(
    (req: string, _ctx: CallContext) =>
      new Promise<string>((resolve) => {
        calls++;
        gates.push(() => resolve(req));
      }),
  );
  return {
    svc,
    calls: () => calls,
    releaseAll: () => {
      for (const gate of gates.splice(0)) gate();
    },
  };
}

describe('loadShed', () => {
  test('refuses at once with OverloadedError while the concurrency limit is full, instead of queueing', async () => {
    const inner = gated();
    const limited = concurrencyLimit({ max: 2 })(inner.svc);
    const svc = loadShed()(limited);
    const a = settle(svc.call('a', background));
    const b = settle(svc.call('b', background));
    const refused = await settle(svc.call('c', background));
    expect(refused.ok).toBe(false);
    const error = (refused as { error: unknown }).error;
    expect(error).toBeInstanceOf(OverloadedError);
    expect((error as OverloadedError).codeName).toBe('UNAVAILABLE');
    expect(limited.queued).toBe(0);
    expect(inner.calls()).toBe(2);

    inner.releaseAll();
    expect(await a).toEqual({ ok: true, value: 'a' });
    expect(await b).toEqual({ ok: true, value: 'b' });
    const d = settle(svc.call('d', background));
    inner.releaseAll();
    expect(await d).toEqual({ ok: true, value: 'd' });
  });

  test('sees through layers that pass ready() on, in a builder', async () => {
    const inner = gated();
    const svc = new ServiceBuilder<string, string>()
      .layer(loadShed())
      .layer(timeout({ ms: 60_000 }))
      .layer(concurrencyLimit({ max: 1 }))
      .service(inner.svc);
    const a = settle(svc.call('a', background));
    await expect(svc.call('b', background)).rejects.toBeInstanceOf(OverloadedError);
    inner.releaseAll();
    expect((await a).ok).toBe(true);
  });

  test('refuses while a rate limit has no token, without waiting', async () => {
    const svc = loadShed()(rateLimit({ perSecond: 0.001, burst: 1 })(serviceFn(async (s: string) => s)));
    await expect(svc.call('a', background)).resolves.toBe('a');
    await expect(svc.call('b', background)).rejects.toBeInstanceOf(OverloadedError);
  });

  test('an isReady callback decides, and wins over the inner ready()', async () => {
    let open = false;
    let calls = 0;
    const inner = serviceFn(async (s: string) => {
      calls++;
      return s;
    });
    const svc = loadShed({ isReady: () => open })(inner);
    await expect(svc.call('a', background)).rejects.toBeInstanceOf(OverloadedError);
    expect(calls).toBe(0);
    open = true;
    await expect(svc.call('b', background)).resolves.toBe('b');

    const overridden = loadShed({ isReady: () => false })(concurrencyLimit({ max: 5 })(inner));
    await expect(overridden.call('c', background)).rejects.toBeInstanceOf(OverloadedError);
  });

  test('a refusal is a rejected promise, never a synchronous throw', () => {
    const svc = loadShed({ isReady: () => false })(serviceFn(async (s: string) => s));
    let p: Promise<string> | undefined;
    expect(() => {
      p = svc.call('a', background);
    }).not.toThrow();
    return expect(p).rejects.toBeInstanceOf(OverloadedError);
  });

  test('bad options throw a ConfigError naming the option', () => {
    const inner = serviceFn(async (s: string) => s);
    const notAFunction = () => loadShed({ isReady: true } as unknown as { isReady: () => boolean });
    expect(notAFunction).toThrow(ConfigError);
    expect(() => loadShed(null as unknown as LoadShedOptions)).toThrow(ConfigError);
    // nothing to ask: neither isReady nor an inner ready()
    let thrown: unknown;
    try {
      loadShed()(inner);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).where).toBe('loadShed');
    expect((thrown as ConfigError).option).toBe('isReady');
  });
});
