// A rolling restart under load, the way a deployment does it: each server in
// turn is removed from the registry, drained (the client finishes its calls
// there and closes the endpoint), stopped, started again on the same
// address and put back in the registry. The ledger must show no failed call,
// over both transports (draining is meant to be the same on each).
import type { RetryPolicy } from '@grpc-tower/retry';
import { TRANSPORTS, insecure } from '@grpc-tower/testing';
import { filter, firstValueFrom } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import { Ledger } from './ledger.js';
import { Fleet, Registry } from './support/fleet.js';
import { startLoad } from './support/load.js';
import { fullStack } from './support/stack.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

describe.each(TRANSPORTS)('over the %s transport', (transport) => {
  test.each<[string, RetryPolicy]>([
    ['with retries', {}],
    // the drain alone must be enough: a removed endpoint finishes what it holds and takes nothing new
    ['with no retry at all', { maxAttempts: 1, transparentRetry: false }],
  ])(
    'every server restarted one by one under load (removed, drained, stopped, started, added back), %s: no call fails',
    async (_, retry) => {
      const fleet = await Fleet.start(3);
      cleanup.push(() => fleet.close());
      const registry = new Registry(fleet.addresses());
      const ledger = new Ledger();
      const stack = fullStack({
        source: registry.source(50),
        ledger,
        retry,
        endpoint: { credentials: insecure, transport },
      });
      cleanup.push(() => stack.close());
      const { balancer } = stack;
      await expect.poll(() => balancer.counts().ready, { timeout: 15_000 }).toBe(3);

      const load = startLoad(ledger, stack.client, {
        concurrency: 12,
        streamEvery: 4,
        streamCount: 10,
        streamDelayMs: 10,
      });
      await load.more(200);
      const steps: string[] = [];
      for (const name of fleet.names()) {
        const address = fleet.address(name);
        const closed = firstValueFrom(
          balancer.events$.pipe(filter((e) => e.type === 'closed' && e.address === address)),
        );
        registry.remove(address);
        await closed;
        steps.push(`${name} drained`);
        // nothing is in flight there any more: the stop finds no call to wait for
        await fleet.stop(name, 5_000);
        await fleet.restart(name);
        registry.add(address);
        await expect
          .poll(() => balancer.stats().endpoints.some((e) => e.address === address && e.state === 'ready'), {
            timeout: 15_000,
          })
          .toBe(true);
        const answered = ledger.report().byServer[name] ?? 0;
        await expect
          .poll(() => ledger.report().byServer[name] ?? 0, { timeout: 15_000 })
          .toBeGreaterThan(answered);
        steps.push(`${name} back`);
      }
      await load.more(200);
      await load.stop();

      expect(steps).toEqual(['s0 drained', 's0 back', 's1 drained', 's1 back', 's2 drained', 's2 back']);
      const report = await ledger.check({ allowed: ['OK'], servers: fleet.names() });
      expect(Object.keys(report.byServer).sort()).toEqual(['s0', 's1', 's2']);
      expect(report.byLabel.ServerStream?.OK ?? 0).toBeGreaterThan(0);
      if (retry.maxAttempts === 1) expect(stack.retries.stats().attempts).toBe(stack.retries.stats().calls);
    },
  );
});
