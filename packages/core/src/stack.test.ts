// The graceful close of a stack. The services are in-process: the stack's
// close is generic over requests and responses; the gRPC path over real
// servers is covered by the channel's tests.
import { describe, expect, test } from 'vitest';
import { type CallContext, background, sleep } from './context/index.js';
import { ClosedError, ConfigError, GraceExpiredError } from './errors.js';
import { activeHandles, expectNoLeaks } from '@grpc-tower/testing';
import { type Layer, ServiceBuilder } from './service.js';
import type { CloseOptions } from './stack.js';

/** A service that answers after `ms` (the request), on the caller's signal, and records its closes. */
function slowService() {
  const closes: (CloseOptions | undefined)[] = [];
  let open = true;
  return {
    closes,
    service: {
      async call(ms: number, ctx: CallContext): Promise<string> {
        if (!open) throw new ClosedError('inner is closed');
        await sleep(ms, ctx.signal);
        if (!open) throw new ClosedError('inner closed under the call');
        return `after ${ms}`;
      },
      close(options?: CloseOptions): void {
        open = false;
        closes.push(options);
      },
    },
  };
}

/** A layer that waits `ms` before the inner call, as a retry waits out its backoff. */
const backoff =
  (ms: number): Layer<number, string> =>
  (inner) => ({
    async call(req, ctx) {
      await sleep(ms, ctx.signal);
      return inner.call(req, ctx);
    },
  });

describe('Stack.close', () => {
  test('refuses new calls at once, lets the calls started finish, then closes the innermost service', async () => {
    const { service, closes } = slowService();
    const stack = new ServiceBuilder<number, string>().layer(backoff(100)).service(service);
    const inFlight = [stack.call(50, background), stack.call(200, background)];
    const closed = stack.close();
    await expect(stack.call(1, background)).rejects.toThrow(new ClosedError('stack is closing'));
    expect(closes).toEqual([]);
    expect(await Promise.all(inFlight)).toEqual(['after 50', 'after 200']);
    await closed;
    expect(closes).toHaveLength(1);
    // the innermost service gets what is left of the grace for what it still carries
    expect(closes[0]?.graceMs).toBeGreaterThan(0);
    expect(closes[0]?.graceMs).toBeLessThanOrEqual(30_000);
    await expect(stack.call(1, background)).rejects.toThrow(new ClosedError('stack is closed'));
  });

  test('when the grace time runs out, the calls left fail with GraceExpiredError and the service closes with no grace', async () => {
    const { service, closes } = slowService();
    const stack = new ServiceBuilder<number, string>().layer(backoff(0)).service(service);
    const quick = stack.call(20, background);
    const slow = stack.call(600, background).catch((e: unknown) => e);
    await stack.close({ graceMs: 150 });
    expect(await quick).toBe('after 20');
    expect(closes).toEqual([{ graceMs: 0 }]);
    const err = await slow;
    expect(err).toBeInstanceOf(GraceExpiredError);
    expect(err).toMatchObject({
      code: 14,
      retryable: false,
      message: 'stack closed: the 150 ms grace time ran out',
    });
    expect((err as Error).cause).toBeInstanceOf(ClosedError);
  });

  test('a second close shortens the grace; a bad one is refused with a named error; no timer is left', async () => {
    const before = activeHandles();
    const { service } = slowService();
    const stack = new ServiceBuilder<number, string>().layer(backoff(0)).service(service);
    const slow = stack.call(400, background).catch((e: unknown) => e);
    const first = stack.close({ graceMs: 60_000 });
    expect(() => stack.close({ graceMs: -1 })).toThrow(ConfigError);
    expect(stack.close({ graceMs: 50 })).toBe(first);
    await first;
    expect(await slow).toBeInstanceOf(GraceExpiredError);
    await expectNoLeaks(before, { settleMs: 1_000 });
  });
});
