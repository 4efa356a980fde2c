import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Readiness } from '@grpc-tower/core';
import { type GrpcEndpoint, grpcEndpoint } from '@grpc-tower/core/grpc';
import { Subject, firstValueFrom, filter } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DiscoveredAddress } from './address.js';
import type { Change } from './change.js';
import { type Closable, connect } from './connect.js';
import { EndpointCloseError, EndpointCreateError } from './errors.js';
import { staticList } from './static.js';
import { type Recording, record } from './test-support/record.js';

type C = Change<string, DiscoveredAddress>;
const ins = (address: string, weight?: number): C => ({
  type: 'insert',
  key: address,
  endpoint: weight === undefined ? { address } : { address, weight },
});

const servers: Server[] = [];
const addresses: string[] = [];

beforeAll(async () => {
  for (const host of ['127.0.0.21', '127.0.0.22']) {
    const server = new Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host}:0`, ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    servers.push(server);
    addresses.push(`${host}:${port}`);
  }
});

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.tryShutdown(() => resolve()))));
});

const open: Recording<unknown>[] = [];
const created: GrpcEndpoint[] = [];
afterEach(async () => {
  for (const r of open.splice(0)) r.stop();
  await Promise.all(created.splice(0).map((e) => e.close({ graceMs: 0 })));
});
function rec<V>(r: Recording<V>): Recording<V> {
  open.push(r as Recording<unknown>);
  return r;
}
const make = (a: DiscoveredAddress): GrpcEndpoint => {
  const ep = grpcEndpoint(a.address, { closeGraceMs: 100 });
  created.push(ep);
  return ep;
};
const readinessOf = (ep: GrpcEndpoint, want: Readiness) =>
  firstValueFrom(ep.readiness$.pipe(filter((r) => r === want)), { defaultValue: 'completed' as const });

describe('connect', () => {
  it('creates a connected endpoint for each discovered address of real servers', async () => {
    const r = rec(record(connect(staticList(addresses), make)));
    expect(r.keys()).toEqual([...addresses].sort());
    for (const ep of r.set.values()) expect(await readinessOf(ep, 'ready')).toBe('ready');
    expect([...r.set.values()].map((e) => e.address).sort()).toEqual([...addresses].sort());
  });

  it('replaces an endpoint whose value changed (new one first, the old one drains once the new one is ready) and ignores repeats', async () => {
    const up = new Subject<C>();
    const r = rec(record(connect(up, make)));
    const [a] = addresses as [string];
    up.next(ins(a, 1));
    const first = r.set.get(a)!;
    await readinessOf(first, 'ready');
    up.next(ins(a, 1));
    expect(r.changes).toHaveLength(1);
    up.next(ins(a, 2));
    expect(r.changes).toHaveLength(2);
    const second = r.set.get(a)!;
    expect(second).not.toBe(first);
    expect(second.readiness).not.toBe('ready'); // still connecting: the old one keeps serving
    expect(first.readiness).toBe('ready');
    await readinessOf(second, 'ready');
    await vi.waitFor(() => expect(first.readiness).toBe('closed'));
    expect(second.readiness).toBe('ready');
  });

  describe('holding a replaced endpoint', () => {
    // stand-ins whose readiness the test drives
    interface StandIn extends Closable {
      readonly address: string;
      readonly readiness$: Subject<Readiness>;
      closed: boolean;
    }
    const standIns = (): { made: StandIn[]; factory: (a: DiscoveredAddress) => StandIn } => {
      const made: StandIn[] = [];
      return {
        made,
        factory: (a) => {
          const s: StandIn = {
            address: a.address,
            readiness$: new Subject<Readiness>(),
            closed: false,
            close: async () => {
              s.closed = true;
            },
          };
          made.push(s);
          return s;
        },
      };
    };

    it('keeps the old endpoint open until the new one reports ready', () => {
      const up = new Subject<C>();
      const { made, factory } = standIns();
      rec(record(connect(up, factory)));
      up.next(ins('10.0.0.1:80', 1));
      up.next(ins('10.0.0.1:80', 2));
      const [old, successor] = made as [StandIn, StandIn];
      successor.readiness$.next('connecting');
      successor.readiness$.next('failed');
      expect(old.closed).toBe(false);
      successor.readiness$.next('ready');
      expect(old.closed).toBe(true);
      expect(successor.closed).toBe(false);
    });

    it('drains the old endpoint after replaceWaitMs when the new one never gets ready', async () => {
      const up = new Subject<C>();
      const { made, factory } = standIns();
      rec(record(connect(up, factory, { replaceWaitMs: 30 })));
      up.next(ins('10.0.0.1:80', 1));
      up.next(ins('10.0.0.1:80', 2));
      const [old] = made as [StandIn];
      expect(old.closed).toBe(false);
      await vi.waitFor(() => expect(old.closed).toBe(true), { timeout: 1000 });
    });

    it('drains a held endpoint at once when its key is removed or replaced again, or the subscription ends', () => {
      const up = new Subject<C>();
      const { made, factory } = standIns();
      const r = record(connect(up, factory));
      up.next(ins('10.0.0.1:80', 1));
      up.next(ins('10.0.0.1:80', 2)); // holds #0
      up.next(ins('10.0.0.1:80', 3)); // #0 drains now; holds #1
      expect(made.map((m) => m.closed)).toEqual([true, false, false]);
      up.next({ type: 'remove', key: '10.0.0.1:80' }); // #1 and #2 drain
      expect(made.map((m) => m.closed)).toEqual([true, true, true]);

      up.next(ins('10.0.0.2:80', 1));
      up.next(ins('10.0.0.2:80', 2)); // holds #3
      expect(made.map((m) => m.closed)).toEqual([true, true, true, false, false]);
      r.stop();
      expect(made.map((m) => m.closed)).toEqual([true, true, true, true, true]);
      // a late ready of a successor no longer watched changes nothing
      made[4]?.readiness$.next('ready');
      expect(r.problems).toEqual([]);
    });

    it('rejects a replaceWaitMs that is not a number of ms', () => {
      expect(() => connect(new Subject<C>(), make, { replaceWaitMs: -1 })).toThrow(/replaceWaitMs/);
      expect(() => connect(new Subject<C>(), make, { replaceWaitMs: Number.NaN })).toThrow(/replaceWaitMs/);
    });
  });

  it('emits the remove and then drains the endpoint; ignores a remove of an unknown key', async () => {
    const up = new Subject<C>();
    const r = rec(record(connect(up, make)));
    const [a, b] = addresses as [string, string];
    up.next(ins(a));
    up.next(ins(b));
    const epA = r.set.get(a)!;
    up.next({ type: 'remove', key: a });
    up.next({ type: 'remove', key: '127.0.0.99:1' });
    expect(r.keys()).toEqual([b]);
    expect(r.problems).toEqual([]);
    await vi.waitFor(() => expect(epA.readiness).toBe('closed'));
    expect(r.set.get(b)!.readiness).not.toBe('closed');
  });

  it('closes every endpoint it created when the subscription ends', async () => {
    const r = record(connect(staticList(addresses), make));
    const eps = [...r.set.values()];
    expect(eps).toHaveLength(2);
    r.stop();
    for (const ep of eps) await vi.waitFor(() => expect(ep.readiness).toBe('closed'));
  });

  it('reports a factory that throws, and keeps the previous endpoint for a failed replacement', () => {
    const up = new Subject<C>();
    const r = rec(
      record(
        connect(up, (a) => {
          if (a.weight === 7) throw new Error('cannot build');
          return make(a);
        }),
      ),
    );
    const [a] = addresses as [string];
    up.next(ins(a, 1));
    const kept = r.set.get(a);
    up.next(ins(a, 7));
    expect(r.set.get(a)).toBe(kept);
    const failure = r.of('create-failed')[0];
    expect(failure?.key).toBe(a);
    expect(failure?.error).toBeInstanceOf(EndpointCreateError);
    expect(failure?.error.message).toContain('cannot build');
    expect(r.errored).toBeUndefined();
  });

  it('reports a close() that rejects or throws as close-failed, never as a stream error', async () => {
    // A grpc endpoint's close never fails, so this uses minimal stand-ins whose close does.
    const up = new Subject<C>();
    const changesSeenAtClose: number[] = [];
    let seen: Recording<Closable> | undefined;
    const standIn = (mode: 'reject' | 'throw', address: string): Closable & { address: string } => ({
      address,
      close: () => {
        changesSeenAtClose.push(seen?.changes.length ?? -1);
        if (mode === 'throw') throw new Error('close threw');
        return Promise.reject(new Error('close rejected'));
      },
    });
    seen = rec(
      record(connect(up, (a) => standIn(a.weight === 1 ? 'throw' : 'reject', a.address), { graceMs: 5 })),
    );
    up.next(ins('10.0.0.1:80', 1));
    up.next(ins('10.0.0.1:80', 2));
    up.next({ type: 'remove', key: '10.0.0.1:80' });
    await vi.waitFor(() => expect(seen?.of('close-failed')).toHaveLength(2));
    // The replacement was emitted before the old endpoint closed, the remove before its endpoint closed.
    expect(changesSeenAtClose).toEqual([2, 3]);
    const errors = seen.of('close-failed').map((e) => e.error);
    expect(errors[0]).toBeInstanceOf(EndpointCloseError);
    expect(errors.map((e) => e.message).sort()).toEqual([
      'closing the endpoint for 10.0.0.1:80 failed: close rejected',
      'closing the endpoint for 10.0.0.1:80 failed: close threw',
    ]);
    expect(errors[0]?.endpoint).toBe('10.0.0.1:80');
    expect(seen.errored).toBeUndefined();
  });

  it('forwards the upstream source events and reports an upstream error', () => {
    const up = new Subject<C>();
    const r = rec(record(connect(up, make)));
    up.error(new Error('upstream broke'));
    expect(r.of('failed')[0]?.error.message).toBe('upstream broke');
    expect(r.errored).toBeUndefined();
    const fromStatic = rec(record(connect(staticList([addresses[0]!], { name: 'fixed' }), make)));
    expect(fromStatic.of('resolved')[0]?.source).toBe('fixed');
  });
});
