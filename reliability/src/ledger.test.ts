// The ledger must catch what it is there to catch: a call that never
// settles, settles twice, settles past its bound, ends with a status it
// should not, or says OK without a real answer; and, below grpc-js's client
// surface (which drops a second status on its own), a channel that delivers
// two statuses for one call or a message after the status. The broken
// channel here is built on purpose, to show the ledger sees what a real one
// must never do.
import * as grpc from '@grpc/grpc-js';
import { Status } from '@grpc-tower/core';
import { staticList } from '@grpc-tower/discover';
import {
  type EchoServer,
  createEchoClient,
  loadEchoPackage,
  pickHosts,
  startEchoServer,
} from '@grpc-tower/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type CallOutcome, Ledger } from './ledger.js';
import { type FullStack, fullStack } from './support/stack.js';

const ok = (server: string | undefined, replies = 1): CallOutcome => ({
  code: Status.OK,
  details: '',
  server,
  replies,
  headers: undefined,
  trailers: undefined,
});

describe('the ledger finds', () => {
  test('a call that never settles', async () => {
    const ledger = new Ledger();
    void ledger.record('hangs', 30, () => undefined);
    await expect(ledger.check()).rejects.toThrow(/call #0 \(hangs\): never settled/);
  });

  test('a call that settles twice', async () => {
    const ledger = new Ledger();
    void ledger.record('twice', 1_000, (settle) => {
      settle(ok('a'));
      settle({ ...ok('a'), code: Status.UNAVAILABLE });
    });
    await expect(ledger.check()).rejects.toThrow(
      /call #0 \(twice\): settled 2 times \(again with UNAVAILABLE\)/,
    );
  });

  test('a call that settles past its bound', async () => {
    const ledger = new Ledger();
    void ledger.record('late', 5, (settle) => setTimeout(() => settle(ok('a')), 40));
    await new Promise((resolve) => setTimeout(resolve, 60));
    await expect(ledger.check()).rejects.toThrow(/call #0 \(late\): settled after \d+ ms, past its bound/);
  });

  test('a status that is not allowed, an OK without a server, an OK from an unknown server', async () => {
    const ledger = new Ledger();
    void ledger.record('a', 1_000, (settle) =>
      settle({ ...ok(undefined), code: Status.INTERNAL, details: 'boom' }),
    );
    void ledger.record('b', 1_000, (settle) => settle(ok('')));
    void ledger.record('c', 1_000, (settle) => settle(ok('elsewhere')));
    void ledger.record('d', 1_000, (settle) => settle(ok('s0')));
    const report = ledger.report({ allowed: ['OK'], servers: new Set(['s0']) });
    expect([...report.problems].sort()).toEqual([
      '1 OK reply from unknown server "elsewhere"',
      'call #0 (a): INTERNAL (boom)',
      'call #1 (b): OK reply without a server name',
    ]);
    expect(report.byStatus).toEqual({ INTERNAL: 1, OK: 3 });
    expect(report.byServer).toEqual({ elsewhere: 1, s0: 1 });
  });

  test('past the 1,000 failures it keeps, the codes of the others are still checked', async () => {
    const ledger = new Ledger();
    const fail = (code: number) => ({ ...ok(undefined, 0), code, details: 'x' });
    for (let i = 0; i < 1_000; i++)
      void ledger.record('kept', 1_000, (settle) => settle(fail(Status.UNAVAILABLE)));
    for (let i = 0; i < 5; i++)
      void ledger.record('more', 1_000, (settle) => settle(fail(Status.UNAVAILABLE)));
    expect(ledger.report({ allowed: ['UNAVAILABLE'] }).problems).toEqual([]);
    for (let i = 0; i < 3; i++) void ledger.record('bad', 1_000, (settle) => settle(fail(Status.INTERNAL)));
    expect(ledger.report({ allowed: ['UNAVAILABLE'] }).problems).toEqual([
      '3 more call(s) ended INTERNAL (details not kept)',
    ]);
  });

  test('a call whose start throws counts as settled with UNKNOWN, and as a problem', async () => {
    const ledger = new Ledger();
    const outcome = await ledger.record('throws', 1_000, () => {
      throw new Error('bad start');
    });
    expect(outcome.code).toBe(Status.UNKNOWN);
    expect(ledger.report().problems).toEqual(['call #0 (throws): threw while starting: Error: bad start']);
  });
});

describe('over real calls', () => {
  let server: EchoServer;
  let stack: FullStack;
  const ledger = new Ledger();
  beforeAll(async () => {
    server = await startEchoServer({ host: pickHosts(1)[0]!, name: 'e0', health: true });
    stack = fullStack({ source: staticList([server.address]), ledger });
  });
  afterAll(async () => {
    await stack?.close();
    await server?.stop(0);
  });

  test('unary calls and streams are counted once each, with their status and server', async () => {
    server.failNext(3, Status.FAILED_PRECONDITION);
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => ledger.unary(stack.client, `u${i}`)),
      ...Array.from({ length: 5 }, (_, i) => ledger.serverStream(stack.client, `s${i}`, 3)),
    ]);
    const report = await ledger.check({ allowed: ['OK', 'FAILED_PRECONDITION'], servers: new Set(['e0']) });
    expect(report.total).toBe(25);
    expect(report.byStatus).toEqual({ OK: 22, FAILED_PRECONDITION: 3 });
    expect(report.problems).toEqual([]);
    await expect(ledger.check({ allowed: ['OK'] })).rejects.toThrow(/3 problem\(s\) in 25 calls/);
  });
});

describe('below the client surface, a channel that', () => {
  const { EchoService } = loadEchoPackage();
  const reply = EchoService.Unary!.responseSerialize({
    message: 'm',
    server: 'fake',
    payload: Buffer.alloc(0),
  });

  /** A deliberately broken channel: each call runs `script` against the client's listener. */
  function brokenChannel(script: (l: grpc.InterceptingListener) => void): grpc.ChannelInterface {
    return {
      close: () => undefined,
      getTarget: () => 'broken',
      getConnectivityState: () => grpc.connectivityState.READY,
      watchConnectivityState: () => undefined,
      getChannelzRef: () => ({ kind: 'channel', id: 0, name: 'broken' }) as never,
      createCall: () => {
        let listener: grpc.InterceptingListener | undefined;
        const call = {
          start: (_md: grpc.Metadata, l: grpc.InterceptingListener) => {
            listener = l;
          },
          sendMessageWithContext: (ctx: { callback?: () => void }) => ctx.callback?.(),
          halfClose: () => setImmediate(() => listener && script(listener)),
          startRead: () => undefined,
          cancelWithStatus: () => undefined,
          getPeer: () => 'broken',
          getCallNumber: () => 0,
          setCredentials: () => undefined,
          getAuthContext: () => null,
        };
        return call as unknown as ReturnType<grpc.ChannelInterface['createCall']>;
      },
    };
  }

  const status = (code: number): grpc.StatusObject => ({ code, details: '', metadata: new grpc.Metadata() });

  test('delivers two statuses for one call is caught, though the client callback ran once', async () => {
    const ledger = new Ledger();
    const client = createEchoClient('broken', {
      channelOverride: brokenChannel((l) => {
        l.onReceiveMetadata(new grpc.Metadata());
        l.onReceiveMessage(reply);
        l.onReceiveStatus(status(Status.OK));
        l.onReceiveStatus(status(Status.UNAVAILABLE));
      }),
      interceptors: [ledger.interceptor],
    });
    const outcome = await ledger.unary(client, 'm');
    expect(outcome.code).toBe(Status.OK);
    await expect(ledger.check()).rejects.toThrow(/the channel delivered 2 statuses for one call/);
  });

  test('delivers a message after the status is caught', async () => {
    const ledger = new Ledger();
    const client = createEchoClient('broken', {
      channelOverride: brokenChannel((l) => {
        l.onReceiveMetadata(new grpc.Metadata());
        l.onReceiveMessage(reply);
        l.onReceiveStatus(status(Status.OK));
        l.onReceiveMessage(reply);
      }),
      interceptors: [ledger.interceptor],
    });
    await ledger.unary(client, 'm');
    await expect(ledger.check()).rejects.toThrow(/a message delivered after the status/);
  });
});
