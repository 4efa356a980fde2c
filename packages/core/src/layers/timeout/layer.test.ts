// The timeout layers are generic, so these tests wrap in-process services
// built with serviceFn; no network peer is involved.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { type CallContext, background, withTimeout } from '../../context/index.js';
import { CancelledError, ConfigError, DeadlineExceededError } from '../../errors.js';
import { type Service, ServiceBuilder, serviceFn } from '../../service.js';
import { concurrencyLimit } from '../concurrency-limit/layer.js';
import { AttemptTimeoutError } from './errors.js';
import { attemptTimeout, timeout } from './layer.js';

/** Settles `p` into a value that can be inspected later, so no rejection goes unhandled. */
function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** A service that never answers on its own and rejects with the abort reason. */
function hanging(seen: CallContext[] = []): Service<string, string> {
  return serviceFn(
    (_req: string, ctx: CallContext) =>
      new Promise<string>((_resolve, reject) => {
        seen.push(ctx);
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
      }),
  );
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('timeout', () => {
  test('fails with DeadlineExceededError naming its limit, and the inner call sees the deadline', async () => {
    const seen: CallContext[] = [];
    const svc = timeout({ ms: 200 })(hanging(seen));
    const start = Date.now();
    const result = settle(svc.call('x', background));
    expect(seen).toHaveLength(1);
    const inner = seen[0] as CallContext;
    expect(inner.deadline).toBe(start + 200);
    expect(inner.signal.aborted).toBe(false);

    await vi.advanceTimersByTimeAsync(199);
    expect(inner.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const r = await result;
    expect(r.ok).toBe(false);
    const error = (r as { error: unknown }).error;
    expect(error).toBeInstanceOf(DeadlineExceededError);
    expect(error).not.toBeInstanceOf(AttemptTimeoutError);
    expect((error as Error).message).toBe('timeout layer: 200 ms passed');
    expect(inner.signal.aborted).toBe(true);
    expect(inner.signal.reason).toBe(error);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('fails on time even when the inner service ignores its signal', async () => {
    const ignoring = serviceFn((_req: string) => new Promise<string>(() => undefined));
    const result = settle(timeout({ ms: 50 })(ignoring).call('x', background));
    await vi.advanceTimersByTimeAsync(50);
    const r = await result;
    expect(r.ok).toBe(false);
    expect((r as { error: unknown }).error).toBeInstanceOf(DeadlineExceededError);
  });

  test('a call that finishes in time returns its value and leaves no timer', async () => {
    const svc = timeout({ ms: 1_000 })(serviceFn(async (s: string) => s.toUpperCase()));
    await expect(svc.call('ok', background)).resolves.toBe('OK');
    expect(vi.getTimerCount()).toBe(0);

    const failing = timeout({ ms: 1_000 })(
      serviceFn(async (): Promise<string> => {
        throw new Error('inner failed');
      }),
    );
    await expect(failing.call('x', background)).rejects.toThrow('inner failed');
    expect(vi.getTimerCount()).toBe(0);
  });

  test("a caller's sooner deadline wins and no second timer is armed", async () => {
    const seen: CallContext[] = [];
    const svc = timeout({ ms: 1_000 })(hanging(seen));
    const caller = withTimeout(background, 30, () => new DeadlineExceededError('caller deadline'));
    try {
      const result = settle(svc.call('x', caller.context));
      expect(vi.getTimerCount()).toBe(1);
      expect((seen[0] as CallContext).deadline).toBe(caller.context.deadline);
      await vi.advanceTimersByTimeAsync(30);
      const r = await result;
      expect((r as { error: Error }).error.message).toBe('caller deadline');
    } finally {
      caller.release();
    }
    expect(vi.getTimerCount()).toBe(0);
  });

  test('caller cancellation passes through; an already cancelled call never reaches the inner service', async () => {
    const seen: CallContext[] = [];
    const svc = timeout({ ms: 1_000 })(hanging(seen));
    const controller = new AbortController();
    const ctx = background.withSignal(controller.signal);
    const result = settle(svc.call('x', ctx));
    controller.abort();
    const r = await result;
    expect((r as { error: unknown }).error).toBeInstanceOf(CancelledError);
    expect(vi.getTimerCount()).toBe(0);

    await expect(svc.call('y', ctx)).rejects.toBeInstanceOf(CancelledError);
    expect(seen).toHaveLength(1);
  });

  test('a queued call in a concurrency limit leaves the queue when the timeout fires', async () => {
    const limited = concurrencyLimit({ max: 1 })(hanging());
    const svc = timeout({ ms: 100 })(limited);
    const first = settle(svc.call('a', background));
    const second = settle(svc.call('b', background));
    expect(limited.queued).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    for (const r of [await first, await second]) {
      expect((r as { error: unknown }).error).toBeInstanceOf(DeadlineExceededError);
    }
    expect(limited.queued).toBe(0);
    expect(limited.inFlight).toBe(0);
  });

  test('ms: 0 fails the call on the next timer turn', async () => {
    const result = settle(timeout({ ms: 0 })(hanging()).call('x', background));
    await vi.advanceTimersByTimeAsync(0);
    expect((await result).ok).toBe(false);
  });

  test('ready() is passed through only when the inner service has it', () => {
    const limited = concurrencyLimit({ max: 1 })(hanging());
    const withReady = timeout({ ms: 10 })(limited) as Service<string, string> & { ready?: () => boolean };
    expect(withReady.ready?.()).toBe(true);
    const plain = timeout({ ms: 10 })(hanging()) as Service<string, string> & { ready?: () => boolean };
    expect(plain.ready).toBeUndefined();
  });
});

describe('attemptTimeout', () => {
  test('fails with AttemptTimeoutError, a DeadlineExceededError carrying the limit', async () => {
    const result = settle(attemptTimeout({ ms: 40 })(hanging()).call('x', background));
    await vi.advanceTimersByTimeAsync(40);
    const error = ((await result) as { error: unknown }).error;
    expect(error).toBeInstanceOf(AttemptTimeoutError);
    expect(error).toBeInstanceOf(DeadlineExceededError);
    expect((error as AttemptTimeoutError).limitMs).toBe(40);
    expect((error as Error).message).toBe('attempt timeout layer: 40 ms passed');
    expect((error as AttemptTimeoutError).codeName).toBe('DEADLINE_EXCEEDED');
  });

  test('inside a retry loop each attempt gets its own limit, and the outer timeout bounds them all', async () => {
    // A minimal retry layer: retries attempt timeouts while the call itself is alive.
    let attempts = 0;
    const retryAttemptTimeouts =
      () =>
      <Req, Res>(inner: Service<Req, Res>): Service<Req, Res> => ({
        async call(req, ctx) {
          for (;;) {
            attempts++;
            try {
              return await inner.call(req, ctx);
            } catch (err) {
              if (!(err instanceof AttemptTimeoutError) || ctx.signal.aborted) throw err;
            }
          }
        },
      });
    const svc = new ServiceBuilder<string, string>()
      .layer(timeout({ ms: 100 }))
      .layer(retryAttemptTimeouts())
      .layer(attemptTimeout({ ms: 30 }))
      .service(hanging());
    const result = settle(svc.call('x', background));
    await vi.advanceTimersByTimeAsync(100);
    const error = ((await result) as { error: unknown }).error;
    expect(error).toBeInstanceOf(DeadlineExceededError);
    expect(error).not.toBeInstanceOf(AttemptTimeoutError);
    expect((error as Error).message).toBe('timeout layer: 100 ms passed');
    // attempts started at 0, 30, 60 and 90 ms
    expect(attempts).toBe(4);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('options', () => {
  test.each([
    ['timeout', timeout],
    ['attemptTimeout', attemptTimeout],
  ] as const)('%s refuses a bad ms with a ConfigError naming it', (where, make) => {
    for (const ms of [-1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, '100', undefined, null]) {
      let thrown: unknown;
      try {
        make({ ms } as unknown as { ms: number });
      } catch (err) {
        thrown = err;
      }
      expect(thrown, `ms = ${String(ms)}`).toBeInstanceOf(ConfigError);
      expect((thrown as ConfigError).where).toBe(where);
      expect((thrown as ConfigError).option).toBe('ms');
      expect(Object.is((thrown as ConfigError).value, ms)).toBe(true);
    }
    expect(() => make(undefined as unknown as { ms: number })).toThrow(ConfigError);
    expect(() => make({ ms: 2 ** 31 - 1 })).not.toThrow();
    expect(() => make({ ms: 0.5 })).not.toThrow();
  });
});
