// A small picker for the retry tests. It stands in for a balancer (the real
// one is @grpc-tower/balance, which this package does not depend on): it
// holds a fixed list of endpoints, skips the addresses in AvoidEndpoints
// when another candidate exists, reports its pick through EndpointPicked,
// and waits (bounded by the call's signal) while no candidate is ready.
//
// Modes:
// - 'round-robin' (default): round robin over the ready endpoints;
// - 'first-ready': always the first ready endpoint in list order, so that
//   only AvoidEndpoints moves a call elsewhere;
// - 'any': round robin over every endpoint that is not closed, ready or
//   not, like a balancer that has not yet seen an endpoint fail.
import { type CallContext, type Endpoint, type Readiness, abortReason } from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import { type Observable, map, merge } from 'rxjs';
import { AvoidEndpoints, EndpointPicked } from '@grpc-tower/balance';

export type PickMode = 'round-robin' | 'first-ready' | 'any';

export interface TestPicker<Req = GrpcRequest, Res = GrpcResponse> {
  call(req: Req, ctx: CallContext): Promise<Res>;
  readonly readiness: Readiness;
  readonly readiness$: Observable<Readiness>;
  /** Addresses picked, in order. */
  readonly picks: string[];
  close(): Promise<void>;
}

export function testPicker<Req = GrpcRequest, Res = GrpcResponse>(
  endpoints: readonly Endpoint<Req, Res>[],
  mode: PickMode = 'round-robin',
): TestPicker<Req, Res> {
  let next = 0;
  const picks: string[] = [];
  const eligible = (ep: Endpoint<Req, Res>): boolean =>
    mode === 'any' ? ep.readiness !== 'closed' : ep.readiness === 'ready';

  const pick = (avoid: ReadonlySet<string> | undefined): Endpoint<Req, Res> | undefined => {
    const n = endpoints.length;
    const order =
      mode === 'first-ready'
        ? endpoints
        : Array.from({ length: n }, (_, i) => endpoints[(next + i) % n] as Endpoint<Req, Res>);
    const candidates = order.filter(eligible);
    const chosen = candidates.find((ep) => !(avoid?.has(ep.address) ?? false)) ?? candidates[0];
    if (chosen !== undefined && mode !== 'first-ready') next = (endpoints.indexOf(chosen) + 1) % n;
    return chosen;
  };

  const waitForOne = (ctx: CallContext): Promise<Endpoint<Req, Res>> =>
    new Promise((resolve, reject) => {
      const onAbort = (): void => {
        cleanup();
        reject(abortReason(ctx.signal));
      };
      const sub = merge(...endpoints.map((e) => e.readiness$)).subscribe(() => {
        const ep = pick(ctx.get(AvoidEndpoints));
        if (ep !== undefined) {
          cleanup();
          resolve(ep);
        }
      });
      function cleanup(): void {
        sub.unsubscribe();
        ctx.signal.removeEventListener('abort', onAbort);
      }
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener('abort', onAbort, { once: true });
    });

  const aggregate = (): Readiness =>
    endpoints.some((e) => e.readiness === 'ready')
      ? 'ready'
      : endpoints.some((e) => e.readiness === 'connecting')
        ? 'connecting'
        : 'failed';

  return {
    async call(req, ctx) {
      const ep = pick(ctx.get(AvoidEndpoints)) ?? (await waitForOne(ctx));
      picks.push(ep.address);
      ctx.get(EndpointPicked)?.(ep.address);
      return ep.call(req, ctx);
    },
    get readiness() {
      return aggregate();
    },
    readiness$: merge(...endpoints.map((e) => e.readiness$)).pipe(map(() => aggregate())),
    picks,
    async close() {
      await Promise.all(endpoints.map((e) => e.close({ graceMs: 0 })));
    },
  };
}
