// The endpoint set owns what `connect` hands it: these tests feed a
// balancer through `connect` (@grpc-tower/discover), which only turns
// addresses into endpoints, and check that the balancer is the one that
// holds a replaced endpoint until its successor is ready, drains removed and
// replaced endpoints, and closes everything when it closes. Real grpc-js
// servers where the guarantee is about real connections (over both
// transports: draining and closing are meant to be the same); counting endpoints
// (test/counting-endpoint.ts) where the test must drive readiness by hand.
import { background, type Change } from '@grpc-tower/core';
import {
  type GrpcEndpoint,
  type NativeGrpcEndpoint,
  type GrpcRequest,
  type GrpcResponse,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import { type DiscoveredAddress, connect } from '@grpc-tower/discover';
import {
  type EchoServer,
  activeHandles,
  expectNoLeaks,
  insecure,
  pickHosts,
  startEchoServer,
  TRANSPORTS,
} from '@grpc-tower/testing';
import { Subject } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import type { Balancer } from './balancer.js';
import type { BalancerEvent } from './events.js';
import { pendingRequests } from './load/pending.js';
import type { BalancerOptions } from './options.js';
import { p2c } from './p2c.js';
import { CountingEndpoint } from './test/counting-endpoint.js';

type C = Change<string, DiscoveredAddress>;
const ins = (address: string, weight?: number): C => ({
  type: 'insert',
  key: address,
  endpoint: weight === undefined ? { address } : { address, weight },
});

const balancers: Balancer<unknown, unknown, string>[] = [];
afterEach(async () => {
  await Promise.all(balancers.splice(0).map((b) => b.close({ graceMs: 0 })));
});

describe.each(TRANSPORTS)('over real servers, over the %s transport', (transport) => {
  type Made = GrpcEndpoint | NativeGrpcEndpoint;
  let servers: EchoServer[] = [];
  let addresses: string[] = [];
  let baseline: ReturnType<typeof activeHandles>;
  beforeAll(async () => {
    baseline = activeHandles();
    servers = await Promise.all(pickHosts(2).map((host, i) => startEchoServer({ host, name: `s${i}` })));
    addresses = servers.map((s) => s.address);
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop(0)));
    // every endpoint connect made was closed by its balancer
    await expectNoLeaks(baseline, { settleMs: 3000 });
  });

  function balance(up: Subject<C>, options: BalancerOptions = {}) {
    const made: Made[] = [];
    const endpoints = connect(up, (a) => {
      const ep = grpcEndpoint(a.address, { credentials: insecure, closeGraceMs: 100, transport });
      made.push(ep);
      return ep;
    });
    const balancer = p2c<GrpcRequest, GrpcResponse, string>(endpoints, { target: 'echo', ...options });
    balancers.push(balancer as Balancer<unknown, unknown, string>);
    return { balancer, made };
  }

  test('a key whose value changes: the old endpoint serves until the new one is ready, then drains', async () => {
    const up = new Subject<C>();
    const { balancer, made } = balance(up);
    const [a] = addresses as [string];
    up.next(ins(a, 1));
    await vi.waitFor(() => expect(balancer.counts().ready).toBe(1));
    up.next(ins(a, 1)); // an equal value: nothing new
    expect(made).toHaveLength(1);
    up.next(ins(a, 2));
    const [first, second] = made as [Made, Made];
    expect(second.readiness).not.toBe('ready'); // still connecting: the old one keeps serving
    expect(first.readiness).toBe('ready');
    expect(balancer.stats().endpoints.map((e) => e.role)).toEqual(['active', 'incoming']);
    await vi.waitFor(() => expect(first.readiness).toBe('closed'));
    expect(second.readiness).toBe('ready');
    expect(balancer.stats().endpoints.map((e) => [e.role, e.state])).toEqual([['active', 'ready']]);
  });

  test('a removed endpoint drains and closes; the others stay; a remove of an unknown key is ignored', async () => {
    const up = new Subject<C>();
    const { balancer, made } = balance(up);
    const [a, b] = addresses as [string, string];
    up.next(ins(a));
    up.next(ins(b));
    await vi.waitFor(() => expect(balancer.counts().ready).toBe(2));
    up.next({ type: 'remove', key: a });
    up.next({ type: 'remove', key: '127.0.0.99:1' });
    const [epA, epB] = made as [Made, Made];
    await vi.waitFor(() => expect(epA.readiness).toBe('closed'));
    expect(epB.readiness).toBe('ready');
    expect(balancer.counts()).toMatchObject({ known: 1, ready: 1 });
  });

  test('closing the balancer closes every endpoint connect handed it, and ends the subscription', async () => {
    const up = new Subject<C>();
    const { balancer, made } = balance(up);
    for (const a of addresses) up.next(ins(a));
    up.next(ins(addresses[0] as string, 5)); // one more, incoming
    expect(made).toHaveLength(3);
    await balancer.close();
    expect(up.observed).toBe(false);
    expect(made.map((e) => e.readiness)).toEqual(['closed', 'closed', 'closed']);
  });
});

describe('holding a replaced endpoint', () => {
  // counting endpoints, whose readiness the test drives
  function balance(options: BalancerOptions = {}) {
    const up = new Subject<C>();
    const made: CountingEndpoint[] = [];
    const balancer = p2c(
      connect(up, (a) => {
        const ep = new CountingEndpoint(a.address, made.length === 0 ? 'ready' : 'connecting');
        made.push(ep);
        return ep;
      }),
      { load: pendingRequests(), ...options },
    );
    balancers.push(balancer as Balancer<unknown, unknown, string>);
    const events: BalancerEvent<string>[] = [];
    balancer.events$.subscribe((e) => events.push(e));
    return { up, made, balancer, events };
  }
  const closed = (made: readonly CountingEndpoint[]) => made.map((m) => m.closeCalls > 0);

  test('keeps the old endpoint open until the new one reports ready', async () => {
    const { up, made, balancer } = balance();
    up.next(ins('10.0.0.1:80', 1));
    up.next(ins('10.0.0.1:80', 2));
    const [old, successor] = made as [CountingEndpoint, CountingEndpoint];
    successor.setReadiness('failed');
    successor.setReadiness('connecting');
    expect(old.closeCalls).toBe(0);
    await expect(balancer.call('x', background)).resolves.toBe('10.0.0.1:80:x');
    successor.setReadiness('ready');
    expect(old.closeCalls).toBe(1);
    expect(successor.closeCalls).toBe(0);
  });

  test('drains the old endpoint after replaceWaitMs when the new one never gets ready', async () => {
    const { up, made } = balance({ replaceWaitMs: 30 });
    up.next(ins('10.0.0.1:80', 1));
    up.next(ins('10.0.0.1:80', 2));
    const [old, successor] = made as [CountingEndpoint, CountingEndpoint];
    expect(old.closeCalls).toBe(0);
    await vi.waitFor(() => expect(old.closeCalls).toBe(1), { timeout: 1000 });
    expect(successor.closeCalls).toBe(0);
  });

  test('holds one endpoint per key at most; a remove or the balancer closing drains at once', async () => {
    const { up, made, balancer, events } = balance();
    up.next(ins('10.0.0.1:80', 1));
    up.next(ins('10.0.0.1:80', 2)); // #0 serves while #1 connects
    up.next(ins('10.0.0.1:80', 3)); // #1 is discarded; #0 serves while #2 connects
    expect(closed(made)).toEqual([false, true, false]);
    up.next({ type: 'remove', key: '10.0.0.1:80' }); // #0 and #2 drain
    expect(closed(made)).toEqual([true, true, true]);

    up.next(ins('10.0.0.2:80', 1));
    made[3]?.setReadiness('ready');
    up.next(ins('10.0.0.2:80', 2)); // #3 serves while #4 connects
    expect(closed(made)).toEqual([true, true, true, false, false]);
    await balancer.close();
    expect(closed(made)).toEqual([true, true, true, true, true]);
    // a late ready of a successor no longer followed changes nothing
    made[4]?.setReadiness('ready');
    expect(events.filter((e) => e.type === 'discovery-error' || e.type === 'close-error')).toEqual([]);
  });

  test('a close() that rejects or throws is reported as close-error, never thrown', async () => {
    class ThrowsOnClose extends CountingEndpoint {
      override close(): Promise<void> {
        this.closeCalls++;
        throw new Error('close threw');
      }
    }
    const up = new Subject<C>();
    const made: CountingEndpoint[] = [];
    const changesAtClose: string[] = [];
    const balancer = p2c(
      connect(up, (a) => {
        const ep = a.weight === 1 ? new ThrowsOnClose(a.address) : new CountingEndpoint(a.address);
        if (a.weight !== 1) ep.closeError = new Error('close rejected');
        made.push(ep);
        return ep;
      }),
      { load: pendingRequests() },
    );
    balancers.push(balancer as Balancer<unknown, unknown, string>);
    const events: BalancerEvent<string>[] = [];
    balancer.events$.subscribe((e) => {
      events.push(e);
      if (e.type === 'insert' || e.type === 'remove' || e.type === 'replace') changesAtClose.push(e.type);
    });
    up.next(ins('10.0.0.1:80', 1));
    up.next(ins('10.0.0.1:80', 2)); // ready at once: replaces #0, which drains
    up.next({ type: 'remove', key: '10.0.0.1:80' });
    await vi.waitFor(() => expect(events.filter((e) => e.type === 'close-error')).toHaveLength(2));
    // the replacement took over before the old endpoint closed, the remove came before its endpoint closed
    expect(changesAtClose).toEqual(['insert', 'insert', 'replace', 'remove']);
    const failures = events.flatMap((e) => (e.type === 'close-error' ? [e] : []));
    expect(failures.map((e) => [e.address, (e.error as Error).message]).sort()).toEqual([
      ['10.0.0.1:80', 'close rejected'],
      ['10.0.0.1:80', 'close threw'],
    ]);
    expect(made.map((m) => m.closeCalls)).toEqual([1, 1]);
    expect(balancer.counts().known).toBe(0);
  });
});
