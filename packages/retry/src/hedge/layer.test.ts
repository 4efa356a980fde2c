// The hedging layer against real grpc-js echo servers on loopback addresses,
// over both transports: which attempt wins and that the others are
// cancelled is meant to be the same whichever carries them.
import type * as grpc from '@grpc/grpc-js';
import { Status } from '@grpc-tower/core';
import {
  type EchoServer,
  pickHosts,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
} from '@grpc-tower/testing';
import type { Subscription } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import { retryBudget } from '../budget/budget.js';
import { allReady, buildStack, eventually, readStream, unary } from '../test/harness.js';
import { startScriptedServer } from '../test/servers.js';
import { type HedgeEvent, type HedgeLayer, hedge } from './layer.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function echoServers(n: number): Promise<EchoServer[]> {
  const servers: EchoServer[] = [];
  for (const [i, host] of pickHosts(n).entries()) {
    servers.push(await startEchoServer({ host, name: String.fromCharCode(97 + i) }));
  }
  cleanups.push(() => Promise.all(servers.map((s) => s.stop(0))));
  return servers;
}

function events(layer: HedgeLayer): HedgeEvent[] {
  const seen: HedgeEvent[] = [];
  const sub: Subscription = layer.events$.subscribe((e) => seen.push(e));
  cleanups.push(() => sub.unsubscribe());
  return seen;
}

async function stackOver(
  transport: TestTransport,
  addresses: readonly string[],
  layer: HedgeLayer,
  mode: 'round-robin' | 'first-ready',
) {
  const stack = buildStack(addresses, layer, { mode, transport });
  cleanups.push(() => stack.close());
  await allReady(stack.endpoints);
  return stack;
}

const ofType = <T extends HedgeEvent['type']>(seen: HedgeEvent[], type: T) =>
  seen.filter((e): e is Extract<HedgeEvent, { type: T }> => e.type === type);

describe.each(TRANSPORTS)('hedge over the %s transport', (transport) => {
  test('the first response wins and the other attempts are cancelled', async () => {
    const [a, b] = await echoServers(2);
    a!.setLatency(3_000);
    const layer = hedge({ maxAttempts: 2, hedgingDelayMs: 30 });
    const seen = events(layer);
    const { client, endpoints } = await stackOver(transport, [a!.address, b!.address], layer, 'first-ready');
    const r = await unary(client, { message: 'h' });
    expect(r.error).toBeUndefined();
    expect(r.replies[0]?.server).toBe('b');
    expect(a!.calls.total).toBe(1);
    expect(ofType(seen, 'hedge-won')).toEqual([expect.objectContaining({ attempt: 1, cancelled: 1 })]);
    // the loser's call on `a` was cancelled, not left running for 3 s
    await eventually(() => endpoints[0]!.pending === 0, 'the losing attempt to end');
    expect(layer.stats()).toMatchObject({ calls: 1, attempts: 2, hedges: 1, wonByHedge: 1, cancelled: 1 });
  });

  test('hedges go to different endpoints', async () => {
    const servers = await echoServers(3);
    for (const s of servers) s.setLatency(300);
    const layer = hedge({ maxAttempts: 3, hedgingDelayMs: 10 });
    const seen = events(layer);
    // first-ready offers the first server every time: only the layer's AvoidEndpoints spreads the hedges
    const { client } = await stackOver(
      transport,
      servers.map((s) => s.address),
      layer,
      'first-ready',
    );
    const r = await unary(client, {});
    expect(r.error).toBeUndefined();
    expect(servers.map((s) => s.calls.total)).toEqual([1, 1, 1]);
    expect(ofType(seen, 'hedge').map((e) => e.avoid.length)).toEqual([0, 1, 2]);
  });

  test('a non-fatal failure sends the next hedge at once', async () => {
    const [a, b] = await echoServers(2);
    a!.failNext(1, Status.UNAVAILABLE);
    const layer = hedge({ maxAttempts: 2, hedgingDelayMs: 20_000, nonFatalStatusCodes: ['UNAVAILABLE'] });
    const seen = events(layer);
    const { client } = await stackOver(transport, [a!.address, b!.address], layer, 'first-ready');
    const r = await unary(client, {});
    expect(r.error).toBeUndefined();
    expect(r.replies[0]?.server).toBe('b');
    expect(ofType(seen, 'hedge-failed')).toEqual([
      expect.objectContaining({ fatal: false, code: Status.UNAVAILABLE }),
    ]);
  });

  test('a fatal failure ends the call and cancels the other attempts', async () => {
    const [a, b] = await echoServers(2);
    a!.setLatency(3_000);
    b!.failNext(1, Status.INVALID_ARGUMENT);
    const layer = hedge({ maxAttempts: 3, hedgingDelayMs: 20, nonFatalStatusCodes: ['UNAVAILABLE'] });
    const seen = events(layer);
    const { client, endpoints } = await stackOver(transport, [a!.address, b!.address], layer, 'first-ready');
    const r = await unary(client, {});
    expect(r.error?.code).toBe(Status.INVALID_ARGUMENT);
    expect(ofType(seen, 'give-up')).toEqual([expect.objectContaining({ reason: 'fatal', attempts: 2 })]);
    await eventually(() => endpoints[0]!.pending === 0, 'the other attempt to be cancelled');
    expect(a!.calls.total + b!.calls.total).toBe(2);
  });

  test('when every attempt fails non-fatally, the last failure is returned', async () => {
    const [a, b] = await echoServers(2);
    a!.failNext(10, Status.UNAVAILABLE);
    b!.failNext(10, Status.UNAVAILABLE);
    const layer = hedge({ maxAttempts: 3, hedgingDelayMs: 5, nonFatalStatusCodes: ['UNAVAILABLE'] });
    const seen = events(layer);
    const { client } = await stackOver(transport, [a!.address, b!.address], layer, 'round-robin');
    const r = await unary(client, {});
    expect(r.error?.code).toBe(Status.UNAVAILABLE);
    expect(a!.calls.total + b!.calls.total).toBe(3);
    expect(ofType(seen, 'give-up')).toEqual([
      expect.objectContaining({ reason: 'max-attempts', attempts: 3 }),
    ]);
  });

  test('the budget pays for hedges: an empty budget sends none', async () => {
    const [a, b] = await echoServers(2);
    a!.setLatency(100);
    const layer = hedge({
      maxAttempts: 3,
      hedgingDelayMs: 5,
      budget: retryBudget({ minPerSec: 0, percent: 0 }),
    });
    const { client } = await stackOver(transport, [a!.address, b!.address], layer, 'first-ready');
    const r = await unary(client, {});
    expect(r.error).toBeUndefined();
    expect(r.replies[0]?.server).toBe('a');
    expect(b!.calls.total).toBe(0);
    expect(layer.stats()).toMatchObject({ hedges: 0, budgetExhausted: 1 });
  });

  test('a pushback that forbids retrying stops new hedges', async () => {
    const [host] = pickHosts(1);
    const scripted = await startScriptedServer({
      host: host!,
      name: 'p',
      script: () => ({ fail: Status.UNAVAILABLE, trailers: { 'grpc-retry-pushback-ms': '-1' } }),
    });
    cleanups.push(() => scripted.stop());
    const layer = hedge({ maxAttempts: 3, hedgingDelayMs: 5_000, nonFatalStatusCodes: ['UNAVAILABLE'] });
    const seen = events(layer);
    const { client } = await stackOver(transport, [scripted.address], layer, 'round-robin');
    const r = await unary(client, {});
    expect(r.error?.code).toBe(Status.UNAVAILABLE);
    expect(scripted.received).toHaveLength(1);
    expect(ofType(seen, 'give-up')).toEqual([expect.objectContaining({ reason: 'pushback' })]);
  });

  test('hedges carry grpc-previous-rpc-attempts', async () => {
    const [host] = pickHosts(1);
    const scripted = await startScriptedServer({
      host: host!,
      name: 'p',
      script: (i) => (i < 2 ? { hang: true } : { reply: true }),
    });
    cleanups.push(() => scripted.stop());
    const { client } = await stackOver(
      transport,
      [scripted.address],
      hedge({ maxAttempts: 3, hedgingDelayMs: 10 }),
      'round-robin',
    );
    const r = await unary(client, {});
    expect(r.error).toBeUndefined();
    expect(scripted.received.map((md) => md.get('grpc-previous-rpc-attempts'))).toEqual([[], ['1'], ['2']]);
  });

  test("the caller's cancel ends every attempt", async () => {
    const [a, b] = await echoServers(2);
    a!.setLatency(5_000);
    b!.setLatency(5_000);
    const layer = hedge({ maxAttempts: 2, hedgingDelayMs: 5 });
    const seen = events(layer);
    const { client, endpoints } = await stackOver(transport, [a!.address, b!.address], layer, 'first-ready');
    let call: grpc.ClientUnaryCall | undefined;
    const result = unary(client, {}, {}, undefined, (c) => {
      call = c;
    });
    await eventually(() => a!.calls.total === 1 && b!.calls.total === 1, 'both attempts to start');
    call!.cancel();
    expect((await result).error?.code).toBe(Status.CANCELLED);
    await eventually(() => endpoints.every((e) => e.pending === 0), 'every attempt to be cancelled');
    await eventually(() => ofType(seen, 'give-up').length === 1, 'the layer to end the call');
    expect(ofType(seen, 'give-up')[0]).toMatchObject({ reason: 'cancelled' });
  });

  test('a hedged server stream commits at its headers and is delivered in full', async () => {
    const [a, b] = await echoServers(2);
    a!.setLatency(3_000);
    const { client } = await stackOver(
      transport,
      [a!.address, b!.address],
      hedge({ maxAttempts: 2, hedgingDelayMs: 20 }),
      'first-ready',
    );
    const r = await readStream(client.ServerStream({ count: 3, delayMs: 20 }));
    expect(r.error).toBeUndefined();
    expect(r.replies.map((x) => `${x.server}${x.index}`)).toEqual(['b0', 'b1', 'b2']);
  });
});
