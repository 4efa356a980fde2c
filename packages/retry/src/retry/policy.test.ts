// Policy checks happen when a layer is built; no call and no peer is needed.
import { ConfigError, Status } from '@grpc-tower/core';
import { describe, expect, test } from 'vitest';
import { retryBudget } from '../budget/budget.js';
import { retryThrottling } from '../budget/throttling.js';
import { hedge } from '../hedge/layer.js';
import { RetryPolicyError } from './errors.js';
import { retry } from './layer.js';

function thrown(fn: () => unknown): RetryPolicyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RetryPolicyError);
    expect(err).toBeInstanceOf(ConfigError);
    return err as RetryPolicyError;
  }
  throw new Error('expected a RetryPolicyError');
}

const bad = (value: unknown) => value as never;

describe('bad policy input fails at construction, naming the field', () => {
  test.each([
    ['maxAttempts', { maxAttempts: 0 }, 0],
    ['maxAttempts', { maxAttempts: -1 }, -1],
    ['maxAttempts', { maxAttempts: 1.5 }, 1.5],
    ['maxAttempts', { maxAttempts: Number.NaN }, Number.NaN],
    ['maxAttempts', { maxAttempts: bad('3') }, '3'],
    ['maxAttemptsLimit', { maxAttemptsLimit: 0 }, 0],
    ['initialBackoffMs', { initialBackoffMs: -1 }, -1],
    ['maxBackoffMs', { maxBackoffMs: -5 }, -5],
    ['maxBackoffMs', { initialBackoffMs: 100, maxBackoffMs: 50 }, 50],
    ['backoffMultiplier', { backoffMultiplier: 0.5 }, 0.5],
    ['perAttemptTimeoutMs', { perAttemptTimeoutMs: 0 }, 0],
    ['perAttemptTimeoutMs', { perAttemptTimeoutMs: -10 }, -10],
    ['perAttemptTimeoutMs', { perAttemptTimeoutMs: Number.POSITIVE_INFINITY }, Number.POSITIVE_INFINITY],
    [
      'retryableStatusCodes[1]',
      { retryableStatusCodes: bad(['UNAVAILABLE', 'NOT_A_STATUS']) },
      'NOT_A_STATUS',
    ],
    ['retryableStatusCodes[0]', { retryableStatusCodes: bad(['OK']) }, 'OK'],
    ['retryableStatusCodes[0]', { retryableStatusCodes: bad([17]) }, 17],
    ['retryableStatusCodes', { retryableStatusCodes: bad('UNAVAILABLE') }, 'UNAVAILABLE'],
    ['shouldRetry', { shouldRetry: bad('yes') }, 'yes'],
    ['budget', { budget: bad({}) }, {}],
    ['transparentRetry', { transparentRetry: bad('no') }, 'no'],
    ['maxAttempt', bad({ maxAttempt: 3 }), 3],
    ['overrides["pkg.Svc/M"].maxAttempts', { overrides: { 'pkg.Svc/M': { maxAttempts: 0 } } }, 0],
    [
      'overrides["pkg.Svc"].retryableStatusCodes[0]',
      { overrides: { 'pkg.Svc': { retryableStatusCodes: bad(['nope']) } } },
      'nope',
    ],
    ['overrides', { overrides: { 'not a key': {} } }, 'not a key'],
    ['overrides', { overrides: { 'pkg.Svc/M': {}, '/pkg.Svc/M': {} } }, '/pkg.Svc/M'],
  ])('retry: %s', (option, policy, value) => {
    const err = thrown(() => retry(policy));
    expect(err.where).toBe('retry');
    expect(err.option).toBe(option);
    expect(Object.is(err.value, value) || JSON.stringify(err.value) === JSON.stringify(value)).toBe(true);
    expect(err.message).toContain(`"${option}"`);
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
  });

  test.each([
    ['hedgingDelayMs', { hedgingDelayMs: -1 }],
    ['maxAttempts', { maxAttempts: 0 }],
    ['nonFatalStatusCodes[0]', { nonFatalStatusCodes: bad(['UNAVAILABLE!']) }],
    ['overrides["a.B"].hedgingDelayMs', { overrides: { 'a.B': { hedgingDelayMs: -2 } } }],
    ['perAttemptTimeoutMs', bad({ perAttemptTimeoutMs: 10 })],
  ])('hedge: %s', (option, policy) => {
    const err = thrown(() => hedge(policy));
    expect(err.where).toBe('hedge');
    expect(err.option).toBe(option);
  });

  test.each([
    ['ttlMs', { ttlMs: 10 }],
    ['ttlMs', { ttlMs: 120_000 }],
    ['minPerSec', { minPerSec: -1 }],
    ['percent', { percent: -0.1 }],
    ['percent', { percent: Number.NaN }],
  ])('retryBudget: %s', (option, options) => {
    const err = thrown(() => retryBudget(options));
    expect(err.where).toBe('retryBudget');
    expect(err.option).toBe(option);
  });

  test.each([
    ['maxTokens', { maxTokens: 0, tokenRatio: 0.1 }],
    ['maxTokens', { maxTokens: 1001, tokenRatio: 0.1 }],
    ['tokenRatio', { maxTokens: 10, tokenRatio: 0 }],
    ['tokenRatio', { maxTokens: 10, tokenRatio: 0.0001 }],
  ])('retryThrottling: %s', (option, options) => {
    const err = thrown(() => retryThrottling(options));
    expect(err.where).toBe('retryThrottling');
    expect(err.option).toBe(option);
  });
});

describe('policy values', () => {
  test('defaults: 5 attempts, UNAVAILABLE, 25 ms × 2 up to 250 ms', () => {
    const d = retry().policy.defaults;
    expect(d.maxAttempts).toBe(5);
    expect([...d.retryableStatusCodes]).toEqual([Status.UNAVAILABLE]);
    expect(d.backoff).toEqual({ initialBackoffMs: 25, maxBackoffMs: 250, backoffMultiplier: 2 });
    expect(d.perAttemptTimeoutMs).toBeUndefined();
  });

  test('status codes by name in any case, or by number', () => {
    const d = retry({ retryableStatusCodes: bad(['unavailable', 'Resource_Exhausted', 10]) }).policy.defaults;
    expect([...d.retryableStatusCodes].sort()).toEqual(
      [Status.RESOURCE_EXHAUSTED, Status.ABORTED, Status.UNAVAILABLE].sort(),
    );
  });

  test('overrides: a method wins over its service, which wins over the policy; unset fields are kept', () => {
    const p = retry({
      maxAttempts: 4,
      perAttemptTimeoutMs: 100,
      overrides: {
        'pkg.Svc': { maxAttempts: 2 },
        '/pkg.Svc/Slow': { maxAttempts: 3, initialBackoffMs: 500 },
      },
    }).policy;
    expect(p.forMethod('/pkg.Svc/Fast')).toMatchObject({ maxAttempts: 2, perAttemptTimeoutMs: 100 });
    const slow = p.forMethod('/pkg.Svc/Slow');
    expect(slow).toMatchObject({ maxAttempts: 3, perAttemptTimeoutMs: 100 });
    expect(slow.backoff).toEqual({ initialBackoffMs: 500, maxBackoffMs: 500, backoffMultiplier: 2 });
    expect(p.forMethod('/other.Svc/M').maxAttempts).toBe(4);
    // an override is capped by the policy's limit too
    expect(retry({ overrides: { 'a.B': { maxAttempts: 9 } } }).policy.forMethod('/a.B/C').maxAttempts).toBe(
      5,
    );
  });
});
