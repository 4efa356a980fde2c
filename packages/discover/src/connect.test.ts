import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Endpoint, Readiness } from '@grpc-tower/core';
import { type NativeGrpcEndpoint, grpcEndpoint } from '@grpc-tower/core/grpc';
import { insecure } from '@grpc-tower/testing';
import { BehaviorSubject, Subject, type Subscription, filter, firstValueFrom } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DiscoveredAddress } from './address.js';
import type { Change } from './change.js';
import { type Closable, connect } from './connect.js';
import { EndpointCloseError, EndpointCreateError } from './errors.js';
import type { DiscoveryEvent } from './events.js';
import { staticList } from './static.js';
import { type Recording, record } from './test/record.js';

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
const created: NativeGrpcEndpoint[] = [];
afterEach(async () => {
  for (const r of open.splice(0)) r.stop();
  await Promise.all(created.splice(0).map((e) => e.close({ graceMs: 0 })));
});
function rec<V>(r: Recording<V>): Recording<V> {
  open.push(r as Recording<unknown>);
  return r;
}
const make = (a: DiscoveredAddress): NativeGrpcEndpoint => {
  const ep = grpcEndpoint(a.address, { credentials: insecure, closeGraceMs: 100 });
  created.push(ep);
  return ep;
};
const readinessOf = (ep: NativeGrpcEndpoint, want: Readiness) =>
  firstValueFrom(ep.readiness$.pipe(filter((r) => r === want)), { defaultValue: 'completed' as const });

describe('connect', () => {
  it('creates a connected endpoint for each discovered address of real servers', async () => {
    const r = rec(record(connect(staticList(addresses), make)));
    expect(r.keys()).toEqual([...addresses].sort());
    for (const ep of r.set.values()) expect(await readinessOf(ep, 'ready')).toBe('ready');
    expect([...r.set.values()].map((e) => e.address).sort()).toEqual([...addresses].sort());
  });

  it("hands on each address's weight, zone, hints, priority and group as the insert's metadata, and an upstream insert's own metadata first", async () => {
    const up = new Subject<C>();
    const r = rec(record(connect(up, make)));
    const [a, b] = addresses as [string, string];
    up.next({
      type: 'insert',
      key: a,
      endpoint: { address: a, weight: 3, zone: 'eu-1a', forZones: ['eu-1a'], metadata: { rack: 7 } },
    });
    up.next({
      type: 'insert',
      key: 'd',
      endpoint: { address: b, priority: 1, group: 'canary', groupWeight: 10 },
    });
    up.next(ins(b));
    up.next({ type: 'insert', key: 'c', endpoint: { address: a, weight: 5 }, metadata: { zone: 'eu-1b' } });
    const inserts = r.changes.filter((c) => c.type === 'insert');
    expect(inserts.map((c) => [c.key, c.metadata])).toEqual([
      [a, { weight: 3, zone: 'eu-1a', forZones: ['eu-1a'] }],
      ['d', { priority: 1, group: 'canary', groupWeight: 10 }],
      [b, undefined],
      ['c', { zone: 'eu-1b' }],
    ]);
    // the endpoint is made from the address alone
    expect(inserts.map((c) => c.endpoint.address)).toEqual([a, b, b, a]);
    expect('metadata' in (inserts[2] as object)).toBe(false);
  });

  it('hands on a new endpoint when a key changes value, leaves the old one open, and ignores repeats', async () => {
    const up = new Subject<C>();
    const r = rec(record(connect(up, make)));
    const [a] = addresses as [string];
    up.next(ins(a, 1));
    const first = r.set.get(a)!;
    await readinessOf(first, 'ready');
    up.next(ins(a, 1));
    expect(r.changes).toHaveLength(1);
    up.next(ins(a, 2));
    expect(r.changes.map((c) => c.type)).toEqual(['insert', 'insert']);
    const second = r.set.get(a)!;
    expect(second).not.toBe(first);
    await readinessOf(second, 'ready');
    // replace-when-ready and draining are the consumer's (a balancer's): connect closes neither
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(first.readiness).toBe('ready');
    expect(second.readiness).toBe('ready');
  });

  it('emits the remove and leaves the endpoint to the consumer; ignores a remove of an unknown key', async () => {
    const up = new Subject<C>();
    const r = rec(record(connect(up, make)));
    const [a, b] = addresses as [string, string];
    up.next(ins(a));
    up.next(ins(b));
    const epA = r.set.get(a)!;
    up.next({ type: 'remove', key: a });
    up.next({ type: 'remove', key: '127.0.0.99:1' });
    expect(r.keys()).toEqual([b]);
    expect(r.changes.map((c) => c.type)).toEqual(['insert', 'insert', 'remove']);
    expect(r.problems).toEqual([]);
    expect(await readinessOf(epA, 'ready')).toBe('ready');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(epA.readiness).toBe('ready');
  });

  it("leaves the endpoints it handed on open when the subscription ends: they are the consumer's", async () => {
    const r = record(connect(staticList(addresses), make));
    const eps = [...r.set.values()];
    expect(eps).toHaveLength(2);
    for (const ep of eps) await readinessOf(ep, 'ready');
    r.stop();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(eps.map((ep) => ep.readiness)).toEqual(['ready', 'ready']);
    // a new subscription makes endpoints of its own
    const again = rec(record(connect(staticList(addresses), make)));
    for (const ep of again.set.values()) expect(eps).not.toContain(ep);
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

  describe('an endpoint made but never handed on', () => {
    // Minimal stand-ins (the Endpoint shape, no network) whose close the test
    // controls: a grpc endpoint's close never fails.
    class StandIn implements Endpoint<string, string> {
      readonly readiness$ = new BehaviorSubject<Readiness>('connecting');
      readonly pending = 0;
      closeCalls = 0;
      constructor(
        readonly address: string,
        readonly closeMode: 'resolve' | 'reject' | 'throw',
      ) {}
      get readiness(): Readiness {
        return this.readiness$.value;
      }
      call(): Promise<string> {
        return Promise.resolve(this.address);
      }
      close(): Promise<void> {
        this.closeCalls++;
        if (this.closeMode === 'throw') throw new Error('close threw');
        if (this.closeMode === 'reject') return Promise.reject(new Error('close rejected'));
        return Promise.resolve();
      }
    }

    /** A subscription that ends while the factory makes its first endpoint. */
    function endedDuringFactory(mode: StandIn['closeMode']) {
      const up = new Subject<C>();
      const made: StandIn[] = [];
      let subscription: Subscription | undefined;
      const source = connect(up, (a) => {
        const s = new StandIn(a.address, mode);
        made.push(s);
        subscription?.unsubscribe();
        return s;
      });
      const events: DiscoveryEvent[] = [];
      const seen = source.events$.subscribe((e) => events.push(e));
      const changes: unknown[] = [];
      subscription = source.subscribe((c) => changes.push(c));
      up.next(ins('10.0.0.1:80'));
      up.next(ins('10.0.0.2:80'));
      return { made, events, changes, up, stop: () => seen.unsubscribe() };
    }

    it('is closed at once, and nothing reaches the stream', () => {
      const { made, events, changes, up, stop } = endedDuringFactory('resolve');
      expect(changes).toEqual([]);
      expect(made).toHaveLength(1); // the upstream was left with the subscription
      expect(made[0]?.closeCalls).toBe(1);
      expect(up.observed).toBe(false);
      expect(events).toEqual([]);
      stop();
    });

    it('reports a close() that rejects or throws as close-failed, never as a stream error', async () => {
      for (const mode of ['reject', 'throw'] as const) {
        const { made, events, stop } = endedDuringFactory(mode);
        expect(made[0]?.closeCalls).toBe(1);
        await vi.waitFor(() => expect(events.filter((e) => e.type === 'close-failed')).toHaveLength(1));
        const failed = events.find((e) => e.type === 'close-failed');
        expect(failed?.type === 'close-failed' && failed.key).toBe('10.0.0.1:80');
        const error = failed?.type === 'close-failed' ? failed.error : undefined;
        expect(error).toBeInstanceOf(EndpointCloseError);
        expect(error?.endpoint).toBe('10.0.0.1:80');
        expect(error?.message).toBe(
          `closing the endpoint for 10.0.0.1:80 failed: ${mode === 'throw' ? 'close threw' : 'close rejected'}`,
        );
        stop();
      }
    });
  });

  it('never closes an endpoint it handed on: not on replace, on remove, nor when the subscription ends', () => {
    const up = new Subject<C>();
    const made: Closable[] = [];
    let closes = 0;
    const r = record(
      connect(up, () => {
        const c: Closable = {
          close: async () => {
            closes++;
          },
        };
        made.push(c);
        return c;
      }),
    );
    up.next(ins('10.0.0.1:80', 1));
    up.next(ins('10.0.0.1:80', 2));
    up.next(ins('10.0.0.1:80', 3));
    up.next({ type: 'remove', key: '10.0.0.1:80' });
    up.next(ins('10.0.0.2:80', 1));
    r.stop();
    expect(made).toHaveLength(4);
    expect(closes).toBe(0);
    expect(r.changes.map((c) => c.type)).toEqual(['insert', 'insert', 'insert', 'remove', 'insert']);
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
