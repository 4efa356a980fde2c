// 10,000 concurrent calls through the full stack, three times: every call
// succeeds, and after the measured rounds the heap and the active handles
// are back at the baseline taken after the first (warm-up) round. Over the
// default (native) transport, the one the stack runs on unless told; the
// grpc-js endpoint's release of what 10,000 calls used is checked by core's
// channel suite (10,000 calls over each transport, then the leak check).
import { activeHandles, createEchoClient, expectNoLeaks } from '@grpc-tower/testing';
import { afterEach, expect, test } from 'vitest';
import { Ledger, type LedgerReport } from './ledger.js';
import { Fleet, Registry } from './support/fleet.js';
import { collect, gcFunction, mib } from './support/heap.js';
import { type FullStack, fullStack } from './support/stack.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

const CONCURRENT = 10_000;

/** One round: CONCURRENT calls at once, on a fresh client and ledger (both dropped afterwards). */
async function round(stack: FullStack, fleet: Fleet, n: number): Promise<LedgerReport> {
  const ledger = new Ledger();
  const client = createEchoClient(stack.channel.getTarget(), {
    channelOverride: stack.channel,
    interceptors: [ledger.interceptor],
  });
  await Promise.all(
    Array.from({ length: CONCURRENT }, (_, i) => ledger.unary(client, `r${n}-${i}`, { deadlineMs: 60_000 })),
  );
  return ledger.check({ allowed: ['OK'], servers: fleet.names() });
}

test('10,000 concurrent calls succeed, and heap and handles return to their baseline', async () => {
  expect(gcFunction()).toBeTypeOf('function');
  const fleet = await Fleet.start(3);
  cleanup.push(() => fleet.close());
  const registry = new Registry(fleet.addresses());
  const stack = fullStack({ source: registry.source(1_000), timeoutMs: 60_000 });
  cleanup.push(() => stack.close());
  await expect.poll(() => stack.balancer.counts().ready, { timeout: 15_000 }).toBe(3);

  const warm = await round(stack, fleet, 0);
  expect(warm.byStatus).toEqual({ OK: CONCURRENT });
  const baseHeap = await collect();
  const baseHandles = activeHandles();

  const figures: string[] = [`baseline ${mib(baseHeap)}`];
  for (let n = 1; n <= 2; n++) {
    const report = await round(stack, fleet, n);
    expect(report.byStatus).toEqual({ OK: CONCURRENT });
    expect(Object.keys(report.byServer).sort()).toEqual(['s0', 's1', 's2']);
    figures.push(`after round ${n}: ${mib(await collect())}`);
  }
  expect(stack.channel.activeCalls).toBe(0);
  expect(stack.channel.replayBytes).toBe(0);
  await expectNoLeaks(baseHandles, { settleMs: 5_000 });
  const heap = await collect();
  console.log(`heap with ${CONCURRENT} concurrent calls per round: ${figures.join(', ')}`);
  // flat within 10 % (20,000 calls later; a leak of 120 bytes per call would break it)
  expect(heap).toBeLessThanOrEqual(baseHeap * 1.1);
});
