// Compile-time checks: the retry and hedging layers compose in a ServiceBuilder.
import { type Service, ServiceBuilder, type Stack } from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import { expectTypeOf, test } from 'vitest';
import { hedge, retry, retryBudget } from './index.js';

declare const balancer: Service<GrpcRequest, GrpcResponse>;

test('retry and hedge are layers over the gRPC request and response', () => {
  const budget = retryBudget();
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(retry({ maxAttempts: 3, budget }))
    .layer(hedge({ maxAttempts: 2, hedgingDelayMs: 10, budget }))
    .service(balancer);
  expectTypeOf(stack).toEqualTypeOf<Stack<GrpcRequest, GrpcResponse>>();
  expectTypeOf(retry()(balancer).stats().budgetLevel).toEqualTypeOf<number | undefined>();
});

test('a layer for other request types is refused', () => {
  // @ts-expect-error retry() wraps Service<GrpcRequest, GrpcResponse> only
  new ServiceBuilder<string, string>().layer(retry());
});
