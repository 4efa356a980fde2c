import { describe, expectTypeOf, test } from 'vitest';
import { type Service, ServiceBuilder, serviceFn } from '../service.js';
import type { Stack } from '../stack.js';
import { type ConcurrencyLimitService, concurrencyLimit } from './concurrency-limit/index.js';
import { loadShed } from './load-shed/index.js';
import { type RateLimitService, rateLimit } from './rate-limit/index.js';
import type { Ready } from './ready.js';
import { attemptTimeout, timeout } from './timeout/index.js';

const inner = serviceFn(async (s: string) => s.length);

describe('generic layer types', () => {
  test('each layer keeps the request and response types of the service it wraps', () => {
    expectTypeOf(timeout({ ms: 1 })(inner)).toEqualTypeOf<Service<string, number>>();
    expectTypeOf(attemptTimeout({ ms: 1 })(inner)).toEqualTypeOf<Service<string, number>>();
    expectTypeOf(loadShed({ isReady: () => true })(inner)).toEqualTypeOf<Service<string, number>>();
    expectTypeOf(concurrencyLimit({ max: 1 })(inner)).toEqualTypeOf<
      ConcurrencyLimitService<string, number>
    >();
    expectTypeOf(rateLimit({ perSecond: 1 })(inner)).toEqualTypeOf<RateLimitService<string, number>>();
  });

  test('the limits report their state and readiness', () => {
    const limited = concurrencyLimit({ max: 1 })(inner);
    expectTypeOf(limited.inFlight).toEqualTypeOf<number>();
    expectTypeOf(limited.queued).toEqualTypeOf<number>();
    expectTypeOf(limited).toMatchTypeOf<Ready>();
    expectTypeOf(rateLimit({ perSecond: 1 })(inner)).toMatchTypeOf<Ready>();
  });

  test('they stack in a typed builder', () => {
    const svc = new ServiceBuilder<string, number>()
      .layer(loadShed())
      .layer(timeout({ ms: 500 }))
      .layer(concurrencyLimit({ max: 8 }))
      .layer(rateLimit({ perSecond: 100 }))
      .layer(attemptTimeout({ ms: 100 }))
      .service(inner);
    expectTypeOf(svc).toEqualTypeOf<Stack<string, number>>();
  });

  test('options are typed', () => {
    // @ts-expect-error ms is required
    timeout({});
    // @ts-expect-error max must be a number
    concurrencyLimit({ max: '4' });
    // @ts-expect-error wait is a boolean
    rateLimit({ perSecond: 1, wait: 'no' });
  });
});
