// Snippets of docs/guides/writing-a-layer.md.
import {
  type CallContext,
  ConfigError,
  type Layer,
  ResourceExhaustedError,
  type Service,
  ServiceBuilder,
  background,
  concurrencyLimit,
  contextKey,
  mapRequest,
  mapResponse,
  rateLimit,
  serviceFn,
  timeout,
  toGrpcTowerError,
} from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';

declare const balancer: Service<GrpcRequest, GrpcResponse>;

// #region generic
/** Options of {@link measured}. */
export interface MeasuredOptions {
  /** Receives each call's outcome. */
  readonly record: (outcome: { ok: boolean; code: number; ms: number }) => void;
  /** Only every n-th call is recorded; default 1 (all). */
  readonly sampleEvery?: number;
}

/** Records the time and status of the calls that pass through; works for any request type. */
export function measured(
  options: MeasuredOptions,
): <Req, Res>(inner: Service<Req, Res>) => Service<Req, Res> {
  // check the options when the layer is built, never inside a call
  const every = options.sampleEvery ?? 1;
  if (!Number.isInteger(every) || every < 1) {
    throw new ConfigError('measured', 'sampleEvery', every, 'an integer >= 1');
  }
  let n = 0;
  return (inner) => ({
    async call(req, ctx) {
      if (n++ % every !== 0) return inner.call(req, ctx);
      const started = performance.now();
      try {
        const res = await inner.call(req, ctx);
        options.record({ ok: true, code: 0, ms: performance.now() - started });
        return res;
      } catch (err) {
        // every error a layer sees can be read as a GrpcTowerError: a status code and, often, an endpoint
        options.record({ ok: false, code: toGrpcTowerError(err).code, ms: performance.now() - started });
        throw err;
      }
    },
  });
}
// #endregion generic

// #region context-value
// request-scoped values travel in the context: a layer sets one, the layers below read it
export const TenantKey = contextKey<string>('tenant');

export function tenantQuota(maxPerTenant: number): <Req, Res>(inner: Service<Req, Res>) => Service<Req, Res> {
  const inFlight = new Map<string, number>();
  return (inner) => ({
    async call(req, ctx: CallContext) {
      const tenant = ctx.get(TenantKey) ?? 'anonymous';
      const now = inFlight.get(tenant) ?? 0;
      if (now >= maxPerTenant) {
        throw new ResourceExhaustedError(
          `tenant ${tenant} has ${now} calls in flight (limit ${maxPerTenant})`,
        );
      }
      inFlight.set(tenant, now + 1);
      try {
        return await inner.call(req, ctx);
      } finally {
        const left = (inFlight.get(tenant) ?? 1) - 1;
        if (left === 0) inFlight.delete(tenant);
        else inFlight.set(tenant, left);
      }
    },
  });
}
// #endregion context-value

export async function composing(): Promise<void> {
  // #region compose
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(measured({ record: (o) => console.log(o) })) // sees every call, as the caller does
    .layer(timeout({ ms: 2_000 }))
    .layer(rateLimit({ perSecond: 500, burst: 50 })) // a token bucket
    .layer(concurrencyLimit({ max: 64, queue: 128 })) // at most 64 in flight, 128 waiting
    .layer(tenantQuota(16))
    .service(balancer);
  // #endregion compose
  void stack;

  // #region types
  // a layer may change the types: this stack takes and returns strings around a service of numbers.
  // mapRequest/mapResponse are generic in the side they keep, so bind them with their types
  const format: Layer<string, number, string, string> = mapResponse((n: number) => n.toFixed(1));
  const parse: Layer<number, number, string, number> = mapRequest((s: string) => Number(s));
  const double = serviceFn(async (n: number) => n * 2);
  const stack2 = new ServiceBuilder<string, string>()
    .layer(format) // string → string outside, string → number inside
    .layer(parse) //  string → number outside, number → number inside
    .layer(timeout({ ms: 100 })) // generic layers take the types where they stand
    .service(double);
  await stack2.call('21', background); // '42.0'
  // #endregion types

  // #region test
  // a layer is a function: test it with a service made from a function and a real context
  const seen: { ok: boolean; code: number }[] = [];
  const failing = serviceFn(async (_: string): Promise<string> => {
    throw new ResourceExhaustedError('full');
  });
  const svc = measured({ record: (o) => seen.push(o) })(failing);
  await svc.call('x', background).catch(() => undefined);
  console.assert(seen[0]?.ok === false && seen[0]?.code === 8); // RESOURCE_EXHAUSTED
  // #endregion test
}
