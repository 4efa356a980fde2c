// The attempt engine under both schedules, against real grpc-js servers on
// loopback addresses (a scripted server that fails given calls, an HTTP/2
// server that refuses every stream, echo servers), over both transports:
// - the one record of an attempt: a layer's counters, the call's RetryTally
//   (what telemetry reads) and the layer's events agree, for the retry and
//   the hedging schedule;
// - the transparent re-send the engine owns is made even after the last
//   counted attempt of the retry schedule;
// - a schedule written over the engine alone (one attempt, plus the
//   transparent re-send) gets numbering, replay, the re-send, the budget
//   and the records from it.
import { type CallContext, CancelledError, type Service, Status, toGrpcTowerError } from '@grpc-tower/core';
import { CallRetries, type RetryTally } from '../tally.js';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import {
  activeHandles,
  expectNoLeaks,
  pickHosts,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
} from '@grpc-tower/testing';
import { describe, expect, onTestFinished, test } from 'vitest';
import { retryBudget } from '../budget/budget.js';
import type { HedgeEvent } from '../hedge/events.js';
import { hedge } from '../hedge/layer.js';
import { grpcRetryProtocol } from '../protocol/grpc.js';
import type { RetryEvent } from '../retry/events.js';
import { avoiding } from '../retry/attempt.js';
import { retry } from '../retry/layer.js';
import { allReady, buildStack, unary } from '../test/harness.js';
import { startRefusingServer, startScriptedServer } from '../test/servers.js';
import { AttemptCall, AttemptEngine } from './engine.js';

/** A layer above the one tested that gives each call a RetryTally, as telemetry's call layer does. */
function tallied(
  tallies: RetryTally[],
  layer: (inner: Service<GrpcRequest, GrpcResponse>) => Service<GrpcRequest, GrpcResponse>,
) {
  return (inner: Service<GrpcRequest, GrpcResponse>): Service<GrpcRequest, GrpcResponse> => {
    const below = layer(inner);
    return {
      call(req, ctx) {
        const tally: RetryTally = { retries: 0, transparentRetries: 0, hedges: 0, delayMs: 0 };
        tallies.push(tally);
        return below.call(req, ctx.withValue(CallRetries, tally));
      },
    };
  };
}

async function stackOn(
  transport: TestTransport,
  addresses: readonly string[],
  layer: (inner: Service<GrpcRequest, GrpcResponse>) => Service<GrpcRequest, GrpcResponse>,
) {
  const stack = buildStack(addresses, layer, { mode: 'first-ready', transport });
  onTestFinished(() => stack.close());
  await allReady(stack.endpoints);
  return stack;
}

/**
 * The smallest schedule over the engine: one attempt, and the engine's
 * transparent re-send on another endpoint.
 */
class OnceCall<Req, Res> extends AttemptCall<Req, Res, never> {
  run(): Promise<Res> {
    if (!this.enter()) return Promise.reject(new CancelledError('the call ended before its first attempt'));
    return this.#send();
  }

  #send(): Promise<Res> {
    const n = this.nextAttempt();
    const ctx = this.failed === undefined ? this.ctx : avoiding(this.ctx, this.failed);
    return this.exchange(this.protocol.attempt(this.req, n), ctx).then(
      (res) => {
        this.commit(res, undefined);
        return res;
      },
      (raw: unknown) => {
        const error = toGrpcTowerError(raw);
        this.failedOn(error.endpoint);
        if (!this.ctx.aborted && this.transparent(error)) return this.#send();
        this.gaveUp();
        throw raw;
      },
    );
  }
}

describe.each(TRANSPORTS)('the attempt engine over the %s transport', (transport) => {
  test('retry: the layer counters, the call tally and the events record the same attempts', async () => {
    const before = activeHandles();
    const [h1, h2] = pickHosts(2);
    // fails its first two calls, then answers
    const scripted = await startScriptedServer({
      host: h1!,
      name: 's',
      script: (i) => (i < 2 ? { fail: Status.UNAVAILABLE } : { reply: true }),
    });
    const refusing = await startRefusingServer(h2!);
    const layer = retry({ maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 5 });
    const seen: RetryEvent[] = [];
    const sub = layer.events$.subscribe((e) => seen.push(e));
    const tallies: RetryTally[] = [];
    const stack = buildStack([scripted.address, refusing.address], tallied(tallies, layer), {
      mode: 'first-ready',
      transport,
    });
    await allReady(stack.endpoints);
    // attempt 0 fails on s; attempt 1 is refused (never reached a server) and
    // re-sent as attempt 2, which fails on s; attempt 3 is answered by s
    const r = await unary(stack.client, { message: 'x' });
    expect(r.error).toBeUndefined();
    expect(r.replies[0]?.server).toBe('s');
    const stats = layer.stats();
    expect(stats).toMatchObject({ calls: 1, attempts: 4, retries: 2, transparentRetries: 1, committed: 1 });
    const retries = seen.filter((e): e is Extract<RetryEvent, { type: 'retry' }> => e.type === 'retry');
    expect(retries.map((e) => e.cause)).toEqual(['backoff', 'transparent', 'backoff']);
    expect(tallies).toEqual([
      {
        retries: stats.retries,
        transparentRetries: stats.transparentRetries,
        hedges: 0,
        delayMs: retries.reduce((sum, e) => sum + e.delayMs, 0),
      },
    ]);
    const attempts = seen.filter((e): e is Extract<RetryEvent, { type: 'attempt' }> => e.type === 'attempt');
    expect(attempts.map((e) => [e.attempt, e.transparent])).toEqual([
      [0, false],
      [1, false],
      [2, true],
      [3, false],
    ]);
    // each attempt told the server how many came before it
    expect(scripted.received.map((m) => m.get('grpc-previous-rpc-attempts')[0])).toEqual([
      undefined,
      '2',
      '3',
    ]);
    sub.unsubscribe();
    await stack.close();
    await scripted.stop();
    await refusing.stop();
    await expectNoLeaks(before, { settleMs: 3_000 });
  });

  test('retry: an attempt refused after the last counted one is still re-sent transparently', async () => {
    const [h1, h2] = pickHosts(2);
    const scripted = await startScriptedServer({
      host: h1!,
      name: 's',
      script: (i) => (i === 0 ? { fail: Status.UNAVAILABLE } : { reply: true }),
    });
    onTestFinished(() => scripted.stop());
    const refusing = await startRefusingServer(h2!);
    onTestFinished(() => refusing.stop());
    // two counted attempts: the second, the last, is refused
    const layer = retry({ maxAttempts: 2, initialBackoffMs: 1, maxBackoffMs: 5, budget: retryBudget() });
    const { client } = await stackOn(transport, [scripted.address, refusing.address], layer);
    const r = await unary(client, {});
    expect(r.error).toBeUndefined();
    expect(refusing.refused).toBeGreaterThanOrEqual(1);
    expect(layer.stats()).toMatchObject({ attempts: 3, retries: 1, transparentRetries: 1, failed: 0 });
  });

  test('hedging: the layer counters, the call tally and the events record the same hedges', async () => {
    const [h1, h2, h3] = pickHosts(3);
    const refusing = await startRefusingServer(h1!);
    onTestFinished(() => refusing.stop());
    const a = await startEchoServer({ host: h2!, name: 'a' });
    const b = await startEchoServer({ host: h3!, name: 'b' });
    onTestFinished(() => a.stop(0));
    onTestFinished(() => b.stop(0));
    const layer = hedge({ maxAttempts: 2, hedgingDelayMs: 20, nonFatalStatusCodes: ['UNAVAILABLE'] });
    const seen: HedgeEvent[] = [];
    const sub = layer.events$.subscribe((e) => seen.push(e));
    onTestFinished(() => sub.unsubscribe());
    const tallies: RetryTally[] = [];
    const { client } = await stackOn(
      transport,
      [refusing.address, a.address, b.address],
      tallied(tallies, layer),
    );
    // attempt 0 is refused and re-sent at once; the hedge after 20 ms goes to another server than the re-send
    const r = await unary(client, { delayMs: 300 });
    expect(r.error).toBeUndefined();
    const stats = layer.stats();
    expect(stats).toMatchObject({ calls: 1, attempts: 3, hedges: 1, transparentRetries: 1, committed: 1 });
    // the re-send and the hedge may go out in either order
    const launches = seen.filter((e): e is Extract<HedgeEvent, { type: 'hedge' }> => e.type === 'hedge');
    expect(launches.map((e) => e.attempt)).toEqual([0, 1, 2]);
    expect(launches.filter((e) => e.transparent)).toHaveLength(1);
    expect(launches[0]?.transparent).toBe(false);
    expect(tallies).toEqual([
      { retries: 0, transparentRetries: stats.transparentRetries, hedges: stats.hedges, delayMs: 0 },
    ]);
    // the two attempts that reached a server went to different servers
    expect([a.calls.total, b.calls.total]).toEqual([1, 1]);
  });

  test('a schedule written over the engine gets numbering, the transparent re-send, the budget and the records', async () => {
    const [h1, h2] = pickHosts(2);
    const refusing = await startRefusingServer(h1!);
    onTestFinished(() => refusing.stop());
    const a = await startEchoServer({ host: h2!, name: 'a' });
    onTestFinished(() => a.stop(0));
    const budget = retryBudget({ minPerSec: 0, percent: 0.5 });
    const engine = new AttemptEngine<GrpcRequest, GrpcResponse, never>(
      grpcRetryProtocol,
      { budget, transparentRetry: true },
      'retries',
    );
    const once = (inner: Service<GrpcRequest, GrpcResponse>): Service<GrpcRequest, GrpcResponse> => ({
      call: (req: GrpcRequest, ctx: CallContext) => new OnceCall(engine, inner, req, ctx).run(),
    });
    const tallies: RetryTally[] = [];
    const { client } = await stackOn(transport, [refusing.address, a.address], tallied(tallies, once));
    const r = await unary(client, {});
    expect(r.error).toBeUndefined();
    expect(r.replies[0]?.server).toBe('a');
    expect(engine.counters).toEqual({
      calls: 1,
      attempts: 2,
      again: 0,
      transparentRetries: 1,
      committed: 1,
      failed: 0,
      budgetExhausted: 0,
    });
    expect(tallies).toEqual([{ retries: 0, transparentRetries: 1, hedges: 0, delayMs: 0 }]);
    // each call is deposited in the budget (half a retry each), the re-sends are not paid from it
    expect(budget.level).toBe(0);
    expect((await unary(client, {})).error).toBeUndefined();
    expect(budget.level).toBe(1);
    expect(engine.counters.transparentRetries).toBe(2);
    // both calls were answered by the one server that took them
    expect(a.calls.total).toBe(2);
  });
});
