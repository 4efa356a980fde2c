// A minimal P2C pick over a fixed list of ready endpoints that applies a
// slowStart weight the way its module documentation describes (a uniform
// draw kept with probability `weight`), for the test of that weight's
// arithmetic. The production balancer is p2c in @grpc-tower/balance.
import { type CallContext, type Endpoint, UnavailableError } from '@grpc-tower/core';
import type { SlowStartWeight } from '@grpc-tower/balance';

export interface TestPicker<Req, Res> {
  call(req: Req, ctx: CallContext): Promise<Res>;
}

export interface TestPickerOptions<Req, Res> {
  readonly weight?: SlowStartWeight;
  readonly readySince?: (ep: Endpoint<Req, Res>) => number;
  readonly now?: () => number;
  readonly random?: () => number;
}

export function testPicker<Req, Res>(
  endpoints: readonly Endpoint<Req, Res>[],
  options: TestPickerOptions<Req, Res>,
): TestPicker<Req, Res> {
  const random = options.random ?? Math.random;
  const weightOf = (ep: Endpoint<Req, Res>): number =>
    options.weight === undefined || options.readySince === undefined
      ? 1
      : options.weight(options.readySince(ep), options.now?.() ?? performance.now());
  // slow start: a uniform draw is kept with probability `weight`, else drawn again (8 tries at most)
  const draw = (from: readonly Endpoint<Req, Res>[], not?: Endpoint<Req, Res>): Endpoint<Req, Res> => {
    const pool = not === undefined ? from : from.filter((e) => e !== not);
    let c = pool[Math.floor(random() * pool.length)]!;
    for (let i = 0; i < 8 && random() >= weightOf(c); i++) c = pool[Math.floor(random() * pool.length)]!;
    return c;
  };
  const pick = (): Endpoint<Req, Res> => {
    const candidates = endpoints.filter((e) => e.readiness === 'ready');
    if (candidates.length === 0) throw new UnavailableError('no endpoint to pick');
    const a = draw(candidates);
    if (candidates.length === 1) return a;
    const b = draw(candidates, a);
    return b.pending < a.pending ? b : a;
  };
  return { call: async (req, ctx) => pick().call(req, ctx) };
}
