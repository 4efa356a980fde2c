// A minimal stand-in for a balancer, for the core tests: round-robin over a
// fixed list of endpoints, taking only ready ones, and waiting (bounded by
// the call's signal) while none is ready. The real balancer is
// @grpc-tower/balance; core cannot depend on it.
import { type Observable, merge } from 'rxjs';
import { abortReason } from '../../context/index.js';
import type { CallContext } from '../../context/index.js';
import type { Endpoint, Readiness } from '../../endpoint.js';
import type { Service } from '../../service.js';

export interface Picker<Req, Res> extends Service<Req, Res> {
  readonly readiness: Readiness;
  readonly readiness$: Observable<Readiness>;
  close(): Promise<void>;
}

export function readyRoundRobin<Req, Res>(endpoints: readonly Endpoint<Req, Res>[]): Picker<Req, Res> {
  let next = 0;
  const pick = (): Endpoint<Req, Res> | undefined => {
    for (let i = 0; i < endpoints.length; i++) {
      const ep = endpoints[(next + i) % endpoints.length]!;
      if (ep.readiness === 'ready') {
        next = (next + i + 1) % endpoints.length;
        return ep;
      }
    }
    return undefined;
  };
  const waitForOne = (ctx: CallContext): Promise<Endpoint<Req, Res>> =>
    new Promise((resolve, reject) => {
      const sub = merge(...endpoints.map((e) => e.readiness$)).subscribe(() => {
        const ep = pick();
        if (ep !== undefined) {
          cleanup();
          resolve(ep);
        }
      });
      const onAbort = (): void => {
        cleanup();
        reject(abortReason(ctx.signal));
      };
      const cleanup = (): void => {
        sub.unsubscribe();
        ctx.signal.removeEventListener('abort', onAbort);
      };
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
      const ep = pick() ?? (await waitForOne(ctx));
      return ep.call(req, ctx);
    },
    get readiness() {
      return aggregate();
    },
    readiness$: merge(...endpoints.map((e) => e.readiness$)) as Observable<Readiness>,
    async close() {
      await Promise.all(endpoints.map((e) => e.close()));
    },
  };
}
