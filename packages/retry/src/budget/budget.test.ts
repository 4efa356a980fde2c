// The budget's and the throttle's arithmetic, with a clock the test moves.
// Their effect on real calls is tested in retry/layer.test.ts.
import { describe, expect, test } from 'vitest';
import { RetryBudget } from './budget.js';
import { RetryThrottling } from './throttling.js';

describe('RetryBudget', () => {
  test('retries ≤ reserve + percent × calls within the window', () => {
    const now = 0;
    const budget = new RetryBudget({ ttlMs: 1_000, minPerSec: 3, percent: 0.2 }, () => now);
    expect(budget.reserve).toBe(3);
    expect(budget.level).toBe(3);
    for (let i = 0; i < 10; i++) budget.onCall();
    expect(budget.level).toBe(5);
    let granted = 0;
    for (let i = 0; i < 20; i++) if (budget.tryAcquire()) granted++;
    expect(granted).toBe(5);
    expect(budget.level).toBe(0);
    // four more calls are 0.8 of a retry: not enough
    for (let i = 0; i < 4; i++) budget.onCall();
    expect(budget.tryAcquire()).toBe(false);
    budget.onCall();
    expect(budget.tryAcquire()).toBe(true);
    expect(budget.tryAcquire()).toBe(false);
  });

  test('deposits and withdrawals expire after ttlMs; the reserve stays', () => {
    let now = 50_000;
    const budget = new RetryBudget({ ttlMs: 1_000, minPerSec: 1, percent: 1 }, () => now);
    for (let i = 0; i < 4; i++) budget.onCall();
    expect(budget.level).toBe(5);
    for (let i = 0; i < 5; i++) expect(budget.tryAcquire()).toBe(true);
    expect(budget.tryAcquire()).toBe(false);
    now += 500;
    expect(budget.tryAcquire()).toBe(false);
    now += 600; // past the window: the spent retries and the deposits are gone
    expect(budget.level).toBe(1);
    expect(budget.tryAcquire()).toBe(true);
    expect(budget.tryAcquire()).toBe(false);
    now += 10_000_000; // a long idle time clears everything at once
    expect(budget.level).toBe(1);
  });

  test('outcomes do not change a budget', () => {
    const budget = new RetryBudget({ minPerSec: 0, percent: 0 }, () => 0);
    budget.onOutcome('success');
    budget.onOutcome('failure');
    expect(budget.tryAcquire()).toBe(false);
  });
});

describe('RetryThrottling (gRPC A6)', () => {
  test('starts full, loses 1 per failure, gains tokenRatio per success, retries only above half', () => {
    const t = new RetryThrottling({ maxTokens: 4, tokenRatio: 0.25 });
    expect(t.level).toBe(4);
    expect(t.tryAcquire()).toBe(true);
    t.onOutcome('failure');
    expect(t.tryAcquire()).toBe(true); // 3 > 2
    t.onOutcome('failure');
    expect(t.tryAcquire()).toBe(false); // 2 is not above 2
    t.onOutcome('success');
    expect(t.level).toBe(2.25);
    expect(t.tryAcquire()).toBe(true);
    expect(t.level).toBe(2.25); // asking takes nothing
    for (let i = 0; i < 10; i++) t.onOutcome('success');
    expect(t.level).toBe(4); // never above maxTokens
    for (let i = 0; i < 10; i++) t.onOutcome('failure');
    expect(t.level).toBe(0); // never below 0
  });

  test('tokenRatio is kept to three decimal places, so sums stay exact', () => {
    const t = new RetryThrottling({ maxTokens: 10, tokenRatio: 0.1 });
    for (let i = 0; i < 10; i++) t.onOutcome('failure');
    for (let i = 0; i < 30; i++) t.onOutcome('success');
    expect(t.level).toBe(3);
  });
});
