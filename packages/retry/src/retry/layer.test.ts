// The retry layer against real grpc-js servers on loopback addresses:
// in-process echo servers that fail on purpose, a scripted server (pushback,
// hung attempts, recorded metadata), an HTTP/2 server that refuses streams,
// and an echo server in a child process killed with SIGKILL mid-call. Every
// test runs over both transports: what the layer sees of an attempt (its
// status, when it commits, whether it reached a server) is meant to be the
// same whichever carries it.
import * as grpc from '@grpc/grpc-js';
import { AttemptTimeoutError, ServiceBuilder, Status } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, GrpcStatusError } from '@grpc-tower/core/grpc';
import {
  type EchoServer,
  activeHandles,
  encodeRpcStatus,
  expectNoLeaks,
  pickHosts,
  spawnEchoServer,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
} from '@grpc-tower/testing';
import type { Subscription } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import { type RetryBudget, retryBudget } from '../budget/budget.js';
import { retryThrottling } from '../budget/throttling.js';
import { allReady, buildStack, clientStream, eventually, readStream, unary } from '../test/harness.js';
import { startRefusingServer, startScriptedServer } from '../test/servers.js';
import { RetryBudgetExhaustedError } from './errors.js';
import { type RetryEvent, type RetryLayer, retry } from './layer.js';
import type { RetryPolicy } from './policy.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Fast backoff so the tests do not wait on the defaults. */
const fast: RetryPolicy = { initialBackoffMs: 1, maxBackoffMs: 5 };

async function echoServers(n: number): Promise<EchoServer[]> {
  const servers: EchoServer[] = [];
  for (const [i, host] of pickHosts(n).entries()) {
    servers.push(await startEchoServer({ host, name: String.fromCharCode(97 + i) }));
  }
  cleanups.push(() => Promise.all(servers.map((s) => s.stop(0))));
  return servers;
}

function events(layer: RetryLayer): RetryEvent[] {
  const seen: RetryEvent[] = [];
  const sub: Subscription = layer.events$.subscribe((e) => seen.push(e));
  cleanups.push(() => sub.unsubscribe());
  return seen;
}

async function stackOn(
  transport: TestTransport,
  addresses: readonly string[],
  layer: RetryLayer,
  options: Parameters<typeof buildStack>[2],
  waitReady: boolean,
) {
  const stack = buildStack(addresses, layer, { ...options, transport });
  cleanups.push(() => stack.close());
  if (waitReady) await allReady(stack.endpoints);
  return stack;
}

const ofType = <T extends RetryEvent['type']>(seen: RetryEvent[], type: T) =>
  seen.filter((e): e is Extract<RetryEvent, { type: T }> => e.type === type);

describe.each(TRANSPORTS)('over the %s transport', (transport) => {
  const stackOver = (
    addresses: readonly string[],
    layer: RetryLayer,
    options: Parameters<typeof buildStack>[2] = {},
    waitReady = true,
  ) => stackOn(transport, addresses, layer, options, waitReady);

  describe('retry before commit', () => {
    test('the first N calls fail UNAVAILABLE: the call is retried and succeeds', async () => {
      const [a] = await echoServers(1);
      const layer = retry({ ...fast, maxAttempts: 4 });
      const seen = events(layer);
      const { client } = await stackOver([a!.address], layer);
      a!.failNext(3, Status.UNAVAILABLE);
      const r = await unary(client, { message: 'hi' });
      expect(r.error).toBeUndefined();
      expect(r.replies[0]?.message).toBe('hi');
      expect(a!.calls.total).toBe(4);
      expect(ofType(seen, 'attempt').map((e) => e.attempt)).toEqual([0, 1, 2, 3]);
      expect(ofType(seen, 'retry').every((e) => e.cause === 'backoff')).toBe(true);
      expect(layer.stats()).toMatchObject({ calls: 1, attempts: 4, retries: 3, committed: 1, failed: 0 });
    });

    test('a non-retryable code is not retried', async () => {
      const [a] = await echoServers(1);
      const layer = retry({ ...fast, maxAttempts: 5 });
      const seen = events(layer);
      const { client } = await stackOver([a!.address], layer);
      const r = await unary(client, { failCode: Status.INVALID_ARGUMENT, failDetails: 'bad' });
      expect(r.error?.code).toBe(Status.INVALID_ARGUMENT);
      expect(a!.calls.total).toBe(1);
      expect(ofType(seen, 'give-up')).toEqual([
        expect.objectContaining({ reason: 'non-retryable', attempts: 1 }),
      ]);

      // UNAVAILABLE is not retried either when the policy lists other codes only
      const other = retry({ ...fast, retryableStatusCodes: ['RESOURCE_EXHAUSTED'] });
      const s2 = await stackOver([a!.address], other);
      a!.failNext(1, Status.UNAVAILABLE);
      expect((await unary(s2.client, {})).error?.code).toBe(Status.UNAVAILABLE);
      expect(a!.calls.total).toBe(2);
      a!.failNext(1, Status.RESOURCE_EXHAUSTED);
      expect((await unary(s2.client, {})).error).toBeUndefined();
      expect(a!.calls.total).toBe(4);
    });

    test('maxAttempts bounds all attempts; it is capped at 5 unless maxAttemptsLimit raises it', async () => {
      const [a] = await echoServers(1);
      const three = retry({ ...fast, maxAttempts: 3 });
      const seen = events(three);
      const s3 = await stackOver([a!.address], three);
      a!.failNext(100, Status.UNAVAILABLE);
      const r = await unary(s3.client, {});
      expect(r.error?.code).toBe(Status.UNAVAILABLE);
      expect(a!.calls.total).toBe(3);
      expect(ofType(seen, 'give-up')).toEqual([
        expect.objectContaining({ reason: 'max-attempts', attempts: 3 }),
      ]);

      const capped = retry({ ...fast, maxAttempts: 8 });
      expect(capped.policy.defaults.maxAttempts).toBe(5);
      const s8 = await stackOver([a!.address], capped);
      const before = a!.calls.total;
      await unary(s8.client, {});
      expect(a!.calls.total - before).toBe(5);

      const raised = retry({ ...fast, maxAttempts: 8, maxAttemptsLimit: 8 });
      const s8b = await stackOver([a!.address], raised);
      const before2 = a!.calls.total;
      await unary(s8b.client, {});
      expect(a!.calls.total - before2).toBe(8);
    });

    test('each retry carries grpc-previous-rpc-attempts', async () => {
      const [host] = pickHosts(1);
      const server = await startScriptedServer({
        host: host!,
        name: 's',
        script: (i) => (i < 2 ? { fail: Status.UNAVAILABLE } : { reply: true }),
      });
      cleanups.push(() => server.stop());
      const { client } = await stackOver([server.address], retry(fast));
      const r = await unary(client, { message: 'x' });
      expect(r.error).toBeUndefined();
      expect(server.received.map((md) => md.get('grpc-previous-rpc-attempts'))).toEqual([[], ['1'], ['2']]);
    });
  });

  describe('commit point', () => {
    test('a server stream that sends headers then fails is not retried (committed)', async () => {
      const [a] = await echoServers(1);
      const layer = retry({ ...fast, maxAttempts: 5 });
      const seen = events(layer);
      const { client } = await stackOver([a!.address], layer);
      const r = await readStream(client.ServerStream({ count: 2, headersThenFail: Status.UNAVAILABLE }));
      expect(r.replies.map((x) => x.index)).toEqual([0, 1]);
      expect(r.error?.code).toBe(Status.UNAVAILABLE);
      expect(a!.calls.byMethod.ServerStream).toBe(1);
      expect(ofType(seen, 'committed')).toHaveLength(1);
      expect(ofType(seen, 'retry')).toHaveLength(0);
    });

    test('a bidi stream commits at its first response header and is not retried after', async () => {
      const [a] = await echoServers(1);
      const { client } = await stackOver([a!.address], retry({ ...fast, maxAttempts: 5 }));
      const call = client.Bidi();
      const done = readStream(call);
      call.write({ message: 'one' });
      call.write({ message: 'two', headersThenFail: Status.UNAVAILABLE });
      call.end();
      const r = await done;
      expect(r.replies.map((x) => x.message)).toEqual(['one']);
      expect(r.error?.code).toBe(Status.UNAVAILABLE);
      expect(a!.calls.byMethod.Bidi).toBe(1);
    });

    test('a server stream that fails before its headers is retried', async () => {
      const [a] = await echoServers(1);
      const { client } = await stackOver([a!.address], retry(fast));
      a!.failNext(1, Status.UNAVAILABLE);
      const r = await readStream(client.ServerStream({ count: 3 }));
      expect(r.error).toBeUndefined();
      expect(r.replies.map((x) => x.index)).toEqual([0, 1, 2]);
      expect(a!.calls.byMethod.ServerStream).toBe(2);
    });

    test('a unary response is held until its status, so headers followed by UNAVAILABLE are retried', async () => {
      const [a] = await echoServers(1);
      const { client } = await stackOver([a!.address], retry({ ...fast, maxAttempts: 3 }));
      const r = await unary(client, { headersThenFail: Status.UNAVAILABLE });
      expect(r.error?.code).toBe(Status.UNAVAILABLE);
      expect(a!.calls.byMethod.Unary).toBe(3);
    });

    test('past the 1 MiB replay buffer a client stream is committed and not retried; below it, it is', async () => {
      const [a] = await echoServers(1);
      const layer = retry({ ...fast, maxAttempts: 3 });
      const seen = events(layer);
      const { client } = await stackOver([a!.address], layer);
      a!.setLatency(50); // let every message reach the channel before the failure comes back
      const big = Buffer.alloc(600 * 1024, 1);
      a!.failNext(1, Status.UNAVAILABLE);
      const over = await clientStream(client, [{ payload: big }, { payload: big }]);
      expect(over.error?.code).toBe(Status.UNAVAILABLE);
      expect(a!.calls.byMethod.ClientStream).toBe(1);
      expect(ofType(seen, 'give-up')).toEqual([expect.objectContaining({ reason: 'not-replayable' })]);

      const small = Buffer.alloc(300 * 1024, 2);
      a!.failNext(1, Status.UNAVAILABLE);
      const under = await clientStream(client, [
        { payload: small, message: 'p' },
        { payload: small, message: 'q' },
      ]);
      expect(under.error).toBeUndefined();
      expect(under.replies[0]?.received).toBe(2);
      expect(under.replies[0]?.message).toBe('p,q');
      expect(a!.calls.byMethod.ClientStream).toBe(3);
    });

    test('past the channel-wide replay budget a call is committed and not retried', async () => {
      const [a, b] = await echoServers(2);
      const layer = retry({ ...fast, maxAttempts: 3 });
      const seen = events(layer);
      const { client } = await stackOver([a!.address, b!.address], layer, {
        mode: 'first-ready',
        replay: { perChannelBytes: 64 * 1024 },
      });
      // a client stream that stays open holds 48 KiB of the channel's 64 KiB
      const holder = client.ClientStream(new grpc.Metadata(), {}, () => undefined);
      holder.on('error', () => undefined);
      holder.write({ payload: Buffer.alloc(48 * 1024) });
      await eventually(() => a!.calls.byMethod.ClientStream === 1, 'the open stream to reach the server');
      a!.setLatency(50);
      a!.failNext(1, Status.UNAVAILABLE);
      const r = await clientStream(client, [{ payload: Buffer.alloc(32 * 1024) }]);
      expect(r.error?.code).toBe(Status.UNAVAILABLE);
      expect(a!.calls.byMethod.ClientStream).toBe(2);
      expect(b!.calls.total).toBe(0);
      expect(ofType(seen, 'attempt')).toHaveLength(2); // the holder's and this call's
      expect(ofType(seen, 'give-up')).toEqual([
        expect.objectContaining({ reason: 'not-replayable', attempts: 1 }),
      ]);
      holder.cancel();
    });
  });

  describe('server pushback', () => {
    async function pushbackServer(value: string, code: number = Status.UNAVAILABLE) {
      const [host] = pickHosts(1);
      const server = await startScriptedServer({
        host: host!,
        name: 'p',
        script: (i) =>
          i === 0 ? { fail: code, trailers: { 'grpc-retry-pushback-ms': value } } : { reply: true },
      });
      cleanups.push(() => server.stop());
      return server;
    }

    test('a valid pushback sets the delay of the retry', async () => {
      const server = await pushbackServer('40');
      const layer = retry({ initialBackoffMs: 1000, maxBackoffMs: 1000 });
      const seen = events(layer);
      const { client } = await stackOver([server.address], layer);
      const r = await unary(client, {});
      expect(r.error).toBeUndefined();
      expect(server.received).toHaveLength(2);
      expect(ofType(seen, 'retry')).toEqual([expect.objectContaining({ cause: 'pushback', delayMs: 40 })]);
    });

    test.each([['-1'], ['abc'], ['1.5'], ['+10'], ['99999999999']])(
      'pushback %j means: do not retry',
      async (value) => {
        const server = await pushbackServer(value);
        const layer = retry(fast);
        const seen = events(layer);
        const { client } = await stackOver([server.address], layer);
        const r = await unary(client, {});
        expect(r.error?.code).toBe(Status.UNAVAILABLE);
        expect(server.received).toHaveLength(1);
        expect(ofType(seen, 'give-up')).toEqual([expect.objectContaining({ reason: 'pushback' })]);
      },
    );

    test('a pushback does not make a non-retryable code retryable', async () => {
      const server = await pushbackServer('5', Status.INTERNAL);
      const { client } = await stackOver([server.address], retry(fast));
      expect((await unary(client, {})).error?.code).toBe(Status.INTERNAL);
      expect(server.received).toHaveLength(1);
    });
  });

  describe('deadline and cancellation', () => {
    test('the deadline covers all attempts: attempts that time out one by one end at the call deadline', async () => {
      const [a] = await echoServers(1);
      a!.setLatency(5_000);
      const layer = retry({ ...fast, maxAttempts: 20, maxAttemptsLimit: 20, perAttemptTimeoutMs: 50 });
      const seen = events(layer);
      const { client } = await stackOver([a!.address], layer);
      const deadline = Date.now() + 400;
      const r = await unary(client, {}, { deadline });
      expect(r.error?.code).toBe(Status.DEADLINE_EXCEEDED);
      const failed = ofType(seen, 'attempt-failed');
      expect(failed.length).toBeGreaterThanOrEqual(1);
      // each attempt ran out of its own time, except perhaps the last, which the call's deadline ended
      expect(failed.slice(0, -1).every((e) => e.error instanceof AttemptTimeoutError)).toBe(true);
      expect(failed.every((e) => e.code === Status.DEADLINE_EXCEEDED)).toBe(true);
      const attempts = ofType(seen, 'attempt').length;
      expect(attempts).toBeGreaterThanOrEqual(2);
      expect(attempts).toBeLessThan(20);
      await eventually(() => ofType(seen, 'give-up').length === 1, 'the layer to give up');
      expect(ofType(seen, 'give-up')).toEqual([expect.objectContaining({ reason: 'deadline' })]);
    });

    test('a retry whose delay would end after the deadline is not made: the last error is returned', async () => {
      const [host] = pickHosts(1);
      const server = await startScriptedServer({
        host: host!,
        name: 'p',
        script: () => ({ fail: Status.UNAVAILABLE, trailers: { 'grpc-retry-pushback-ms': '2000' } }),
      });
      cleanups.push(() => server.stop());
      const layer = retry(fast);
      const seen = events(layer);
      const { client } = await stackOver([server.address], layer);
      const r = await unary(client, {}, { deadline: Date.now() + 1_000 });
      expect(r.error?.code).toBe(Status.UNAVAILABLE);
      expect(server.received).toHaveLength(1);
      expect(ofType(seen, 'give-up')).toEqual([expect.objectContaining({ reason: 'deadline', attempts: 1 })]);
    });

    test("a caller's cancel during an attempt is not retried", async () => {
      const [a] = await echoServers(1);
      a!.setLatency(5_000);
      const layer = retry(fast);
      const seen = events(layer);
      const { client } = await stackOver([a!.address], layer);
      let call: grpc.ClientUnaryCall | undefined;
      const result = unary(client, {}, {}, undefined, (c) => {
        call = c;
      });
      await eventually(() => a!.calls.total === 1, 'the attempt to reach the server');
      call!.cancel();
      const r = await result;
      expect(r.error?.code).toBe(Status.CANCELLED);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(a!.calls.total).toBe(1);
      expect(ofType(seen, 'give-up')).toEqual([expect.objectContaining({ reason: 'cancelled' })]);
    });

    test("a caller's cancel during the backoff ends the call at once", async () => {
      const [host] = pickHosts(1);
      const server = await startScriptedServer({
        host: host!,
        name: 'p',
        script: () => ({ fail: Status.UNAVAILABLE, trailers: { 'grpc-retry-pushback-ms': '20000' } }),
      });
      cleanups.push(() => server.stop());
      const layer = retry(fast);
      const seen = events(layer);
      const { client } = await stackOver([server.address], layer);
      let call: grpc.ClientUnaryCall | undefined;
      const result = unary(client, {}, {}, undefined, (c) => {
        call = c;
      });
      await eventually(() => ofType(seen, 'retry').length === 1, 'the retry to be scheduled');
      call!.cancel();
      const r = await result;
      expect(r.error?.code).toBe(Status.CANCELLED);
      await eventually(() => ofType(seen, 'give-up').length === 1, 'the layer to give up');
      expect(ofType(seen, 'give-up')[0]).toMatchObject({ reason: 'cancelled' });
      expect(server.received).toHaveLength(1);
    });
  });

  describe('endpoints', () => {
    test('each attempt is a fresh pick that avoids the endpoints that failed when another is ready', async () => {
      const [a, b, c] = await echoServers(3);
      const layer = retry({ ...fast, maxAttempts: 3 });
      const seen = events(layer);
      // first-ready always offers `a` first: only AvoidEndpoints moves a retry elsewhere
      const { client } = await stackOver([a!.address, b!.address, c!.address], layer, {
        mode: 'first-ready',
      });
      a!.failNext(1_000, Status.UNAVAILABLE);
      for (let i = 0; i < 5; i++) {
        const r = await unary(client, { message: String(i) });
        expect(r.error).toBeUndefined();
        expect(r.replies[0]?.server).toBe('b');
      }
      expect(a!.calls.total).toBe(5);
      const retried = ofType(seen, 'attempt').filter((e) => e.attempt === 1);
      expect(retried).toHaveLength(5);
      expect(retried.every((e) => e.avoid.length === 1 && e.avoid[0] === a!.address)).toBe(true);
    });

    test('with no other endpoint ready, the retry goes back to the same one', async () => {
      const [a] = await echoServers(1);
      const { client } = await stackOver([a!.address], retry(fast));
      a!.failNext(2, Status.UNAVAILABLE);
      expect((await unary(client, {})).error).toBeUndefined();
      expect(a!.calls.total).toBe(3);
    });

    test("a killed server's in-flight unary calls succeed on another server", async () => {
      const [hostA, hostB] = pickHosts(2);
      const child = await spawnEchoServer({ host: hostA!, name: 'a' });
      cleanups.push(() => child.kill());
      const b = await startEchoServer({ host: hostB!, name: 'b' });
      cleanups.push(() => b.stop(0));
      const layer = retry({ ...fast, maxAttempts: 3 });
      const seen = events(layer);
      const { client } = await stackOver([child.address, b.address], layer);
      const calls = Array.from({ length: 10 }, (_, i) => unary(client, { message: `m${i}`, delayMs: 400 }));
      await eventually(async () => (await child.calls()).total === 5, 'five calls in flight on the child');
      await child.kill();
      const results = await Promise.all(calls);
      expect(results.map((r) => r.error?.code)).toEqual(Array(10).fill(undefined));
      expect(results.map((r) => r.replies[0]?.server)).toEqual(Array(10).fill('b'));
      expect(b.calls.total).toBe(10);
      // a dropped connection may have run the call: it takes the counted path, not the transparent one
      expect(ofType(seen, 'retry').map((e) => e.cause)).toEqual(Array(5).fill('backoff'));
      expect(layer.stats().transparentRetries).toBe(0);
    });
  });

  describe('transparent retry', () => {
    /** A budget that never grants a retry. */
    const empty = () => retryBudget({ minPerSec: 0, percent: 0 });

    /** How each transport words a call on an endpoint that cannot connect. */
    const noConnection = {
      'grpc-js': /^No connection established/,
      native: /^no connection to [^:]+:1: connect ECONNREFUSED/,
    } as const;

    test('a connect failure is re-sent at once on another endpoint, uncounted and not paid from the budget', async () => {
      const [b] = await echoServers(1);
      const [deadHost] = pickHosts(1);
      const budget = empty();
      const layer = retry({ ...fast, maxAttempts: 1, budget });
      const seen = events(layer);
      // the picker offers the dead endpoint first, as a balancer that has not seen it fail yet
      const { client, endpoints } = await stackOver(
        [`${deadHost}:1`, b!.address],
        layer,
        { mode: 'any' },
        false,
      );
      await allReady([endpoints[1]!]);
      await eventually(() => endpoints[0]!.readiness === 'failed', 'the dead endpoint to fail');
      const r = await unary(client, { message: 't' });
      expect(r.error).toBeUndefined();
      expect(r.replies[0]?.server).toBe('a');
      const failed = ofType(seen, 'attempt-failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]?.endpoint).toBe(`${deadHost}:1`);
      expect((failed[0]!.error as GrpcStatusError).details).toMatch(noConnection[transport]);
      expect((failed[0]!.error as GrpcStatusError).delivery).toBe('unconnected');
      expect(ofType(seen, 'retry')).toEqual([expect.objectContaining({ cause: 'transparent', delayMs: 0 })]);
      expect(layer.stats()).toMatchObject({ transparentRetries: 1, retries: 0, budgetExhausted: 0 });
    });

    test('a stream refused with RST_STREAM(REFUSED_STREAM) is re-sent transparently', async () => {
      const [b] = await echoServers(1);
      const [host] = pickHosts(1);
      const refusing = await startRefusingServer(host!);
      cleanups.push(() => refusing.stop());
      const layer = retry({ ...fast, maxAttempts: 1, budget: empty() });
      const seen = events(layer);
      const { client } = await stackOver([refusing.address, b!.address], layer, { mode: 'first-ready' });
      const r = await unary(client, {});
      expect(r.error).toBeUndefined();
      expect(refusing.refused).toBeGreaterThanOrEqual(1);
      expect((ofType(seen, 'attempt-failed')[0]!.error as GrpcStatusError).details).toBe(
        'Stream refused by server',
      );
      expect(layer.stats().transparentRetries).toBe(1);
    });

    test('a draining endpoint refuses new calls, which go to another endpoint', async () => {
      const [a, b] = await echoServers(2);
      const layer = retry({ ...fast, maxAttempts: 1, budget: empty() });
      const { client, endpoints } = await stackOver([a!.address, b!.address], layer, { mode: 'first-ready' });
      const slow = unary(client, { delayMs: 300 });
      await eventually(() => a!.calls.total === 1, 'the slow call to reach a');
      const closing = endpoints[0]!.close({ graceMs: 5_000 });
      expect(endpoints[0]!.readiness).toBe('ready'); // still draining: a balancer may still pick it
      const r = await unary(client, { message: 'moved' });
      expect(r.error).toBeUndefined();
      expect(r.replies[0]?.server).toBe('b');
      expect((await slow).error).toBeUndefined();
      await closing;
      expect(layer.stats().transparentRetries).toBe(1);
    });

    test('a server that sends GOAWAY under load (connection age) loses no call, with no retry but the transparent one', async () => {
      const [host] = pickHosts(1);
      const server = await startScriptedServer({
        host: host!,
        name: 'aging',
        script: () => ({ reply: true }),
        serverOptions: { 'grpc.max_connection_age_ms': 60, 'grpc.max_connection_age_grace_ms': 2_000 },
      });
      cleanups.push(() => server.stop());
      // one attempt, no budget: only the transparent re-send may save a call
      const layer = retry({ ...fast, maxAttempts: 1, budget: empty() });
      const { client } = await stackOver([server.address], layer);
      const until = Date.now() + 800;
      const results = await Promise.all(
        Array.from({ length: 16 }, async () => {
          const codes: (number | undefined)[] = [];
          while (Date.now() < until) codes.push((await unary(client, {})).error?.code);
          return codes;
        }),
      );
      const codes = results.flat();
      expect(codes.length).toBeGreaterThan(16);
      expect(codes.filter((c) => c !== undefined)).toEqual([]);
      // the server did go away: the calls came over several connections
      expect(new Set(server.peers).size).toBeGreaterThan(1);
    });

    test('it happens once per call', async () => {
      const [b] = await echoServers(1);
      const [d1, d2] = pickHosts(2);
      const layer = retry({ ...fast, maxAttempts: 1 });
      const { client, endpoints } = await stackOver(
        [`${d1}:1`, `${d2}:1`, b!.address],
        layer,
        { mode: 'any' },
        false,
      );
      await allReady([endpoints[2]!]);
      await eventually(
        () => endpoints[0]!.readiness === 'failed' && endpoints[1]!.readiness === 'failed',
        'the dead endpoints to fail',
      );
      const r = await unary(client, {});
      expect(r.error?.code).toBe(Status.UNAVAILABLE);
      expect(r.error?.details).toMatch(noConnection[transport]);
      expect(layer.stats()).toMatchObject({ attempts: 2, transparentRetries: 1 });
      expect(b!.calls.total).toBe(0);
    });
  });

  describe('retry budget', () => {
    async function storm(budget: RetryBudget | ReturnType<typeof retryThrottling>, calls = 100) {
      const [a] = await echoServers(1);
      a!.failNext(100_000, Status.UNAVAILABLE);
      const layer = retry({ ...fast, maxAttempts: 5, budget });
      const { client } = await stackOver([a!.address], layer);
      const results = await Promise.all(Array.from({ length: calls }, () => unary(client, {})));
      return { results, server: a!, layer };
    }

    test('the default budget stops a storm: 100 failing calls retry at most 20 % plus the reserve', async () => {
      const budget = retryBudget({ ttlMs: 10_000, minPerSec: 10, percent: 0.2 });
      expect(budget.reserve).toBe(100);
      const { results, server, layer } = await storm(budget);
      expect(results.every((r) => r.error?.code === Status.UNAVAILABLE)).toBe(true);
      const retries = server.calls.total - 100;
      // without a budget these calls would make 400 retries
      expect(retries).toBeLessThanOrEqual(20 + 100);
      expect(retries).toBeGreaterThan(0);
      expect(layer.stats().retries).toBe(retries);
      expect(layer.stats().budgetExhausted).toBeGreaterThan(0);
      // the calls the budget stopped end with the server's own status, the verdict as a trailer
      const stopped = results.filter((r) => r.error?.metadata.get('grpc-tower-retry').length);
      expect(stopped.length).toBeGreaterThan(0);
      for (const r of stopped) {
        expect(r.error?.metadata.get('grpc-tower-retry')[0]).toMatch(/^budget exhausted after \d attempts?$/);
        expect(r.error?.metadata.get('grpc-status-details-bin')).toHaveLength(1);
      }
    });

    test('a small reserve: retries stay within 20 % of the calls plus the reserve', async () => {
      const budget = retryBudget({ ttlMs: 10_000, minPerSec: 1, percent: 0.2 });
      const { server } = await storm(budget);
      expect(server.calls.total - 100).toBeLessThanOrEqual(20 + 10);
    });

    test('when the budget is empty the call ends with the status, details and trailers the server sent, and the verdict beside them', async () => {
      const [a] = await echoServers(1);
      const layer = retry({ ...fast, budget: retryBudget({ minPerSec: 0, percent: 0 }) });
      const seen = events(layer);
      const { client } = await stackOver([a!.address], layer);
      a!.failNext(1, Status.UNAVAILABLE, 'down for maintenance');
      const r = await unary(client, {});
      expect(r.error?.code).toBe(Status.UNAVAILABLE);
      // what the server said, untouched
      expect(r.error?.details).toBe('down for maintenance');
      expect(r.error?.metadata.get('grpc-status-details-bin')).toEqual([
        encodeRpcStatus(Status.UNAVAILABLE, 'down for maintenance'),
      ]);
      expect(r.error?.metadata.get('x-fail-reason')).toHaveLength(1);
      // and what the budget decided, added
      expect(r.error?.metadata.get('grpc-tower-retry')).toEqual(['budget exhausted after 1 attempt']);
      expect(r.error?.metadata.get('grpc-tower-endpoint')).toEqual([a!.address]);
      expect(a!.calls.total).toBe(1);
      expect(ofType(seen, 'give-up')).toEqual([
        expect.objectContaining({ reason: 'budget', budgetLevel: 0 }),
      ]);
    });

    test('RetryBudgetExhaustedError keeps the code, endpoint and cause of the original error', async () => {
      const [a] = await echoServers(1);
      const layer = retry({ ...fast, budget: retryBudget({ minPerSec: 0, percent: 0 }) });
      const stack = await stackOver([a!.address], layer);
      const { RequestMessages } = await import('@grpc-tower/core/grpc');
      const { background } = await import('@grpc-tower/core');
      a!.failNext(1, Status.UNAVAILABLE);
      const svc = layer(stack.picker);
      const err = await svc
        .call(
          {
            method: '/grpctower.testing.Echo/Unary',
            kind: 'unary',
            metadata: new grpc.Metadata(),
            messages: RequestMessages.of(Buffer.alloc(0)),
            host: undefined,
            credentials: undefined,
            attempt: 0,
          },
          background,
        )
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(RetryBudgetExhaustedError);
      const e = err as RetryBudgetExhaustedError;
      expect(e.code).toBe(Status.UNAVAILABLE);
      expect(e.endpoint).toBe(a!.address);
      expect(e.cause).toBeInstanceOf(GrpcStatusError);
      expect(e).toBeInstanceOf(GrpcStatusError);
      expect(e.details).toBe((e.cause as GrpcStatusError).details);
      expect(e.message).toMatch(/^retry budget exhausted after 1 attempt; last error: /);
      expect(e.attempts).toBe(1);
    });

    test('A6 retry throttling: retries stop while the tokens are at or below half', async () => {
      const throttle = retryThrottling({ maxTokens: 10, tokenRatio: 0.5 });
      const [a] = await echoServers(1);
      a!.failNext(100, Status.UNAVAILABLE);
      const layer = retry({ ...fast, maxAttempts: 3, budget: throttle });
      const { client } = await stackOver([a!.address], layer);
      // tokens 10 → fail 9 (retry) → fail 8 (retry) → fail 7: max attempts
      await unary(client, {});
      expect(a!.calls.total).toBe(3);
      // 7 → fail 6 (retry) → fail 5: 5 is not above half, no retry
      await unary(client, {});
      expect(a!.calls.total).toBe(5);
      expect(throttle.level).toBe(5);
      // 5 → fail 4: no retry
      await unary(client, {});
      expect(a!.calls.total).toBe(6);
      a!.failNext(0, 0);
      for (let i = 0; i < 3; i++) expect((await unary(client, {})).error).toBeUndefined();
      expect(throttle.level).toBe(5.5);
      a!.failNext(100, Status.UNAVAILABLE);
      // 5.5 → fail 4.5: no retry
      await unary(client, {});
      expect(a!.calls.total).toBe(10);
    });
  });

  describe('policy hooks', () => {
    test('overrides per method and per service', async () => {
      const [a] = await echoServers(1);
      const layer = retry({
        ...fast,
        maxAttempts: 3,
        overrides: {
          'grpctower.testing.Echo/Unary': { maxAttempts: 1 },
          'grpctower.testing.Echo': { retryableStatusCodes: ['UNAVAILABLE', 'ABORTED'] },
        },
      });
      const { client } = await stackOver([a!.address], layer);
      a!.failNext(1, Status.UNAVAILABLE);
      expect((await unary(client, {})).error?.code).toBe(Status.UNAVAILABLE);
      expect(a!.calls.byMethod.Unary).toBe(1);
      a!.failNext(1, Status.ABORTED);
      expect((await readStream(client.ServerStream({ count: 1 }))).error).toBeUndefined();
      expect(a!.calls.byMethod.ServerStream).toBe(2);
    });

    test('the predicate can retry another code or refuse a retryable one', async () => {
      const [a] = await echoServers(1);
      const layer = retry({
        ...fast,
        shouldRetry: ({ error, request }) =>
          error.code === Status.ABORTED
            ? true
            : request.metadata.get('x-no-retry').length > 0
              ? false
              : undefined,
      });
      const { client } = await stackOver([a!.address], layer);
      a!.failNext(1, Status.ABORTED);
      expect((await unary(client, {})).error).toBeUndefined();
      expect(a!.calls.total).toBe(2);
      a!.failNext(1, Status.UNAVAILABLE);
      const md = new grpc.Metadata();
      md.set('x-no-retry', '1');
      expect((await unary(client, {}, {}, md)).error?.code).toBe(Status.UNAVAILABLE);
      expect(a!.calls.total).toBe(3);
    });

    test('a per-attempt timeout cancels a hung attempt and retries it', async () => {
      const [host] = pickHosts(1);
      const server = await startScriptedServer({
        host: host!,
        name: 'h',
        script: (i) => (i === 0 ? { hang: true } : { reply: true }),
      });
      cleanups.push(() => server.stop());
      const layer = retry({ ...fast, perAttemptTimeoutMs: 100 });
      const seen = events(layer);
      const { client } = await stackOver([server.address], layer);
      const r = await unary(client, {});
      expect(r.error).toBeUndefined();
      expect(server.received).toHaveLength(2);
      const failed = ofType(seen, 'attempt-failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]?.error).toBeInstanceOf(AttemptTimeoutError);
      expect(failed[0]?.code).toBe(Status.DEADLINE_EXCEEDED);
      // the call had no deadline: the server learnt the attempt's limit through grpc-timeout
      expect(Number.isFinite(server.deadlines[0])).toBe(true);
    });

    test('a per-attempt timeout ends at the commit of a stream', async () => {
      const [a] = await echoServers(1);
      const { client } = await stackOver([a!.address], retry({ ...fast, perAttemptTimeoutMs: 40 }));
      const r = await readStream(client.ServerStream({ count: 3, delayMs: 60 }));
      expect(r.error).toBeUndefined();
      expect(r.replies).toHaveLength(3);
      expect(a!.calls.total).toBe(1);
    });

    test('a stack with the retry layer reports the readiness of the service it wraps, and closes it', async () => {
      const [a] = await echoServers(1);
      const stack = await stackOver([a!.address], retry());
      const built = new ServiceBuilder<GrpcRequest, GrpcResponse>().layer(retry()).service(stack.picker);
      expect(built.readiness).toBe('ready');
      expect(stack.channel.getConnectivityState(false)).toBe(grpc.connectivityState.READY);
      await built.close();
      expect(stack.endpoints.every((e) => e.readiness === 'closed')).toBe(true);
    });
  });

  describe('resources', () => {
    test('no timer, listener or socket outlives the calls: backoff sleeps, attempt timers and scopes are released', async () => {
      const before = activeHandles();
      const [host] = pickHosts(1);
      const server = await startScriptedServer({
        host: host!,
        name: 'r',
        script: (i) =>
          i % 3 === 0
            ? { fail: Status.UNAVAILABLE, trailers: { 'grpc-retry-pushback-ms': '20000' } }
            : i % 3 === 1
              ? { hang: true }
              : { reply: true },
      });
      const layer = retry({ ...fast, perAttemptTimeoutMs: 30 });
      const seen: RetryEvent[] = [];
      const sub = layer.events$.subscribe((e) => seen.push(e));
      const stack = buildStack([server.address], layer);
      await allReady(stack.endpoints);
      // a call cancelled while it sleeps 20 s before its retry
      let call: grpc.ClientUnaryCall | undefined;
      const first = unary(stack.client, {}, {}, undefined, (c) => {
        call = c;
      });
      await eventually(() => ofType(seen, 'retry').length === 1, 'the retry to be scheduled');
      call!.cancel();
      expect((await first).error?.code).toBe(Status.CANCELLED);
      await eventually(() => ofType(seen, 'give-up').length === 1, 'the layer to give up');
      // a call whose first attempt hangs past its limit, then succeeds
      expect((await unary(stack.client, {})).error).toBeUndefined();
      sub.unsubscribe();
      await stack.close();
      await server.stop();
      await expectNoLeaks(before, { settleMs: 3_000 });
    });
  });
});
