// The concurrency limit is generic, so these tests wrap in-process services
// built with serviceFn; no network peer is involved.
import { getEventListeners } from 'node:events';
import { describe, expect, test } from 'vitest';
import { type CallContext, background } from '../../context/index.js';
import { CancelledError, ConfigError, ResourceExhaustedError } from '../../errors.js';
import { serviceFn } from '../../service.js';
import { concurrencyLimit } from './layer.js';

function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** An inner service whose calls each wait until the test lets them go. */
function gated() {
  const gates: Array<() => void> = [];
  const started: string[] = [];
  const svc = serviceFn(
    (req: string, _ctx: CallContext) =>
      new Promise<string>((resolve) => {
        started.push(req);
        gates.push(() => resolve(req));
      }),
  );
  const releaseNext = (): void => {
    const gate = gates.shift();
    if (gate === undefined) throw new Error('no call is running');
    gate();
  };
  return { svc, started, releaseNext };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('concurrencyLimit', () => {
  test('never runs more than max calls at once under 1,000 concurrent calls, and runs them all', async () => {
    let running = 0;
    let highest = 0;
    let seed = 7;
    const inner = serviceFn(async (n: number) => {
      running++;
      highest = Math.max(highest, running);
      // a few event-loop turns, varying per call (deterministic pseudo-random)
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      for (let i = seed % 4; i >= 0; i--) await turn();
      running--;
      return n * 2;
    });
    const svc = concurrencyLimit({ max: 7, queue: 1_000 })(inner);
    const calls = Array.from({ length: 1_000 }, (_, i) => svc.call(i, background));
    expect(svc.inFlight).toBe(7);
    expect(svc.queued).toBe(993);
    const results = await Promise.all(calls);
    expect(results).toEqual(Array.from({ length: 1_000 }, (_, i) => i * 2));
    expect(highest).toBe(7);
    expect(svc.inFlight).toBe(0);
    expect(svc.queued).toBe(0);
  });

  test('waiting calls start in arrival order', async () => {
    const { svc: inner, started, releaseNext } = gated();
    const svc = concurrencyLimit({ max: 1 })(inner);
    const calls = ['a', 'b', 'c', 'd'].map((r) => settle(svc.call(r, background)));
    for (let i = 0; i < 4; i++) {
      await turn();
      releaseNext();
    }
    await Promise.all(calls);
    expect(started).toEqual(['a', 'b', 'c', 'd']);
  });

  test('a full queue fails fast with ResourceExhaustedError naming the limit and the queue', async () => {
    const { svc: inner, releaseNext } = gated();
    const svc = concurrencyLimit({ max: 2, queue: 3 })(inner);
    const admitted = ['a', 'b', 'c', 'd', 'e'].map((r) => settle(svc.call(r, background)));
    expect(svc.inFlight).toBe(2);
    expect(svc.queued).toBe(3);
    const refused = await settle(svc.call('f', background));
    expect(refused.ok).toBe(false);
    const error = (refused as { error: unknown }).error;
    expect(error).toBeInstanceOf(ResourceExhaustedError);
    expect((error as Error).message).toBe(
      'concurrency limit: 2 calls in flight and the wait queue is full (3 waiting)',
    );
    expect(svc.queued).toBe(3);
    for (let i = 0; i < 5; i++) {
      await turn();
      releaseNext();
    }
    expect((await Promise.all(admitted)).every((r) => r.ok)).toBe(true);
    expect(svc.inFlight).toBe(0);
  });

  test('queue: 0 refuses any call that finds no free slot', async () => {
    const { svc: inner, releaseNext } = gated();
    const svc = concurrencyLimit({ max: 1, queue: 0 })(inner);
    const first = settle(svc.call('a', background));
    await expect(svc.call('b', background)).rejects.toBeInstanceOf(ResourceExhaustedError);
    releaseNext();
    expect((await first).ok).toBe(true);
  });

  test('a waiting call whose signal aborts leaves the queue at once and leaves no listener', async () => {
    const { svc: inner, started, releaseNext } = gated();
    const svc = concurrencyLimit({ max: 1, queue: 10 })(inner);
    const first = settle(svc.call('a', background));
    const controller = new AbortController();
    const waiting = settle(svc.call('b', background.withSignal(controller.signal)));
    const third = settle(svc.call('c', background));
    expect(svc.queued).toBe(2);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);

    controller.abort();
    const r = await waiting;
    expect((r as { error: unknown }).error).toBeInstanceOf(CancelledError);
    expect(svc.queued).toBe(1);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);

    releaseNext();
    await turn();
    releaseNext();
    expect(await first).toEqual({ ok: true, value: 'a' });
    expect(await third).toEqual({ ok: true, value: 'c' });
    expect(started).toEqual(['a', 'c']);
    expect(svc.inFlight).toBe(0);
  });

  test('a call handed a slot keeps no abort listener on its signal', async () => {
    const { svc: inner, releaseNext } = gated();
    const svc = concurrencyLimit({ max: 1 })(
      serviceFn((req: string, ctx: CallContext) => inner.call(req, ctx)),
    );
    const first = settle(svc.call('a', background));
    const controller = new AbortController();
    const second = settle(svc.call('b', background.withSignal(controller.signal)));
    releaseNext();
    await turn();
    expect(svc.queued).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    releaseNext();
    await Promise.all([first, second]);
  });

  test('an already aborted call neither takes a slot nor reaches the inner service', async () => {
    let calls = 0;
    const svc = concurrencyLimit({ max: 1 })(
      serviceFn(async () => {
        calls++;
      }),
    );
    await expect(svc.call(undefined, background.withSignal(AbortSignal.abort()))).rejects.toBeInstanceOf(
      CancelledError,
    );
    expect(calls).toBe(0);
    expect(svc.inFlight).toBe(0);
  });

  test('slots are released on every settle path: value, rejection, synchronous throw', async () => {
    const svc = concurrencyLimit({ max: 1, queue: 0 })<string, string>({
      call(req) {
        if (req === 'throw') throw new Error('sync throw');
        if (req === 'reject') return Promise.reject(new Error('rejected'));
        return Promise.resolve(req);
      },
    });
    await expect(svc.call('throw', background)).rejects.toThrow('sync throw');
    expect(svc.inFlight).toBe(0);
    await expect(svc.call('reject', background)).rejects.toThrow('rejected');
    expect(svc.inFlight).toBe(0);
    await expect(svc.call('value', background)).resolves.toBe('value');
    expect(svc.inFlight).toBe(0);
  });

  test('ready() is inFlight < max, and also asks the inner service when it can answer', async () => {
    const { svc: inner, releaseNext } = gated();
    const svc = concurrencyLimit({ max: 2 })(inner);
    expect(svc.ready()).toBe(true);
    const a = settle(svc.call('a', background));
    expect(svc.ready()).toBe(true);
    const b = settle(svc.call('b', background));
    expect(svc.ready()).toBe(false);
    releaseNext();
    await a;
    expect(svc.ready()).toBe(true);
    releaseNext();
    await b;

    let innerReady = false;
    const outer = concurrencyLimit({ max: 2 })(
      Object.assign(
        serviceFn(async (s: string) => s),
        { ready: () => innerReady },
      ),
    );
    expect(outer.ready()).toBe(false);
    innerReady = true;
    expect(outer.ready()).toBe(true);
  });

  test('each wrapped service gets its own limit', async () => {
    const layer = concurrencyLimit({ max: 1 });
    const one = gated();
    const two = gated();
    const s1 = layer(one.svc);
    const s2 = layer(two.svc);
    const a = settle(s1.call('a', background));
    const b = settle(s2.call('b', background));
    expect([s1.inFlight, s1.queued, s2.inFlight, s2.queued]).toEqual([1, 0, 1, 0]);
    one.releaseNext();
    two.releaseNext();
    await Promise.all([a, b]);
  });

  test('bad options throw a ConfigError naming the option', () => {
    const cases: Array<[unknown, string]> = [
      [{ max: 0 }, 'max'],
      [{ max: -3 }, 'max'],
      [{ max: 1.5 }, 'max'],
      [{ max: Number.NaN }, 'max'],
      [{ max: Number.POSITIVE_INFINITY }, 'max'],
      [{ max: '4' }, 'max'],
      [{}, 'max'],
      [{ max: 4, queue: -1 }, 'queue'],
      [{ max: 4, queue: 2.5 }, 'queue'],
      [{ max: 4, queue: Number.POSITIVE_INFINITY }, 'queue'],
      [{ max: 4, queue: Number.NaN }, 'queue'],
      [undefined, 'options'],
    ];
    for (const [options, option] of cases) {
      let thrown: unknown;
      try {
        concurrencyLimit(options as { max: number });
      } catch (err) {
        thrown = err;
      }
      expect(thrown, JSON.stringify(options)).toBeInstanceOf(ConfigError);
      expect((thrown as ConfigError).where).toBe('concurrencyLimit');
      expect((thrown as ConfigError).option).toBe(option);
    }
    expect(concurrencyLimit({ max: 1, queue: 0 })).toBeTypeOf('function');
  });
});
