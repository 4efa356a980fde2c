// A minimal P2C picker over a fixed list of endpoints that applies
// panicThreshold and slowStart the way their module docs describe, for the
// tests of those pieces. The production balancer is p2c in
// @grpc-tower/balance, which has no panic or slow start option yet.
import { type CallContext, type Endpoint, UnavailableError } from '@grpc-tower/core';
import { connectedOf } from '../pick/connected.js';
import type { PanicDecision } from '../pick/panic.js';
import type { SlowStartWeight } from '../pick/slow-start.js';

export interface TestPicker<Req, Res> {
  call(req: Req, ctx: CallContext): Promise<Res>;
  /** Picks made while in panic. */
  readonly panicPicks: number;
}

export interface TestPickerOptions<Req, Res> {
  readonly panic: PanicDecision;
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
  let panicPicks = 0;
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
    const known = endpoints.filter((e) => e.readiness !== 'closed');
    const ready = known.filter((e) => e.readiness === 'ready');
    let candidates = ready;
    if (options.panic(known.length, ready.length)) {
      panicPicks++;
      const connected = known.filter(connectedOf);
      candidates = connected.length > 0 ? connected : known;
    }
    if (candidates.length === 0) throw new UnavailableError('no endpoint to pick');
    const a = draw(candidates);
    if (candidates.length === 1) return a;
    const b = draw(candidates, a);
    return b.pending < a.pending ? b : a;
  };
  return {
    call: async (req, ctx) => pick().call(req, ctx),
    get panicPicks() {
      return panicPicks;
    },
  };
}
