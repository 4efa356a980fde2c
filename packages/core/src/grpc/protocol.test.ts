// The gRPC protocol of the seam (grpcProtocol), read over real calls on both
// transports against a real grpc-js echo server: where a call commits, the
// final status of a whole response and of a stream, what is retryable, the
// server's pushback, and the "reached the server" fact that the endpoint
// itself sets on the error it raises (never read from a message's text).
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import {
  GeneratedEchoRequest as EchoRequest,
  closedPort,
  insecure,
  pickHosts,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
} from '@grpc-tower/testing';
import { afterAll, describe, expect, test } from 'vitest';
import { newContext } from '../context/index.js';
import { GrpcTowerError } from '../errors.js';
import type { ResponseStatus } from '../protocol.js';
import { Status } from '../status.js';
import { grpcJsEndpoint } from './endpoint.js';
import { grpcEndpoint } from './grpc-endpoint.js';
import { PUSHBACK_HEADER, grpcProtocol } from './protocol.js';
import { grpcRequest } from './test/request.js';
import type { CallKind, GrpcResponse } from './types.js';

const make: Record<TestTransport, (address: string) => ReturnType<typeof grpcEndpoint>> = {
  native: (address) => grpcEndpoint(address, { credentials: insecure }),
  'grpc-js': (address) => grpcJsEndpoint(address, { credentials: insecure }),
};

const encode = (fields: Parameters<typeof EchoRequest.fromPartial>[0]): Buffer =>
  Buffer.from(EchoRequest.encode(EchoRequest.fromPartial(fields)).finish());

/** A context for the calls of one test, released when it ends. */
const scope = newContext({ timeoutMs: 60_000 });

/** One call of `method` straight on `ep`: its response, or its error. */
function callOn(
  ep: ReturnType<typeof grpcEndpoint>,
  method: string,
  kind: CallKind,
  message: Buffer,
): Promise<GrpcResponse | unknown> {
  return ep.call(grpcRequest(method, { kind, messages: [message] }), scope.context).catch((e) => e);
}

/** Reads a committed stream to its end; the messages it had. */
function drain(res: GrpcResponse): Promise<number> {
  return new Promise((resolve) => {
    let n = 0;
    res.stream.start({
      onMessage: () => {
        n++;
        res.stream.read();
      },
      onStatus: () => resolve(n),
    });
    res.stream.read();
  });
}

afterAll(() => scope.release());

describe.each(TRANSPORTS)('grpcProtocol over the %s transport', (transport) => {
  test('a unary answer is whole, its status known as it resolves; a server stream commits at its headers and its status comes at its end', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host });
    const ep = make[transport](server.address);
    try {
      const unary = grpcRequest('/grpctower.testing.Echo/Unary');
      expect(grpcProtocol.wholeResponse(unary)).toBe(true);
      expect(grpcProtocol.method(unary)).toBe('/grpctower.testing.Echo/Unary');
      expect(grpcProtocol.attempt(unary, 0)).toBe(unary);
      expect(grpcProtocol.attempt(unary, 2).attempt).toBe(2);
      expect(grpcProtocol.replayable(unary)).toBe(true);

      const res = (await callOn(
        ep,
        '/grpctower.testing.Echo/Unary',
        'unary',
        encode({ message: 'hi' }),
      )) as GrpcResponse;
      expect(grpcProtocol.statusOf(res)).toMatchObject({ code: Status.OK });
      expect(grpcProtocol.endpointOf(res)).toBe(server.address);
      expect(grpcProtocol.failureOf(res, unary)).toBeUndefined();
      const unaryOk = await new Promise<boolean>((r) => grpcProtocol.whenDone(res, r));
      expect(unaryOk).toBe(true);

      const streaming = grpcRequest('/grpctower.testing.Echo/ServerStream', { kind: 'serverStream' });
      expect(grpcProtocol.wholeResponse(streaming)).toBe(false);
      const failing = (await callOn(
        ep,
        '/grpctower.testing.Echo/ServerStream',
        'serverStream',
        encode({ count: 3, headersThenFail: Status.DATA_LOSS, failDetails: 'broke' }),
      )) as GrpcResponse;
      // committed at its headers: the outcome is not known yet
      expect(grpcProtocol.statusOf(failing)).toBeUndefined();
      const final = new Promise<ResponseStatus>((r) => grpcProtocol.whenStatus(failing, r));
      const ok = new Promise<boolean>((r) => grpcProtocol.whenDone(failing, r));
      expect(await drain(failing)).toBe(3);
      expect(await final).toMatchObject({ code: Status.DATA_LOSS, details: 'broke' });
      expect(await ok).toBe(false);
      // a status the server sent after its headers is the server's
      expect(grpcProtocol.origin(await final, false)).toBe('server');
    } finally {
      await ep.close({ graceMs: 0 });
      await server.stop(0);
    }
  });

  test('the transport says whether an attempt reached the server: unconnected is never-reached and the connection’s; a status the server sent is neither', async () => {
    const [host, other] = pickHosts(2) as [string, string];
    const port = await closedPort(host);
    const down = make[transport](`${host}:${port}`);
    const server = await startEchoServer({ host: other });
    const up = make[transport](server.address);
    const codes = { retryableStatusCodes: new Set([Status.UNAVAILABLE]) };
    const req = grpcRequest('/grpctower.testing.Echo/Unary');
    try {
      const unconnected = await callOn(down, '/grpctower.testing.Echo/Unary', 'unary', encode({}));
      expect(unconnected).toBeInstanceOf(GrpcTowerError);
      // set by the endpoint that ran the attempt, as a typed fact
      expect((unconnected as GrpcTowerError).delivery).toBe('unconnected');
      expect(grpcProtocol.neverReachedServer(unconnected)).toBe(true);
      expect(grpcProtocol.origin(unconnected, false)).toBe('connection');
      expect(grpcProtocol.retryable(unconnected as GrpcTowerError, req, codes, false)).toBe(true);

      const sent = await callOn(
        up,
        '/grpctower.testing.Echo/Unary',
        'unary',
        encode({ failCode: Status.UNAVAILABLE, failDetails: 'busy' }),
      );
      expect((sent as GrpcTowerError).delivery).toBeUndefined();
      expect(grpcProtocol.neverReachedServer(sent)).toBe(false);
      expect(grpcProtocol.origin(sent, false)).toBe('server');
      expect(grpcProtocol.retryable(sent as GrpcTowerError, req, codes, false)).toBe(true);
      expect(
        grpcProtocol.retryable(sent as GrpcTowerError, req, { retryableStatusCodes: new Set() }, false),
      ).toBe(false);
      // the caller's own stop is the caller's, whatever the error
      expect(grpcProtocol.origin(sent, true)).toBe('caller');
      expect(grpcProtocol.pushback(sent as GrpcTowerError)).toEqual({ kind: 'none' });
    } finally {
      await down.close({ graceMs: 0 });
      await up.close({ graceMs: 0 });
      await server.stop(0);
    }
  });

  test('a stream the server refused (REFUSED_STREAM) never reached it: the transport says refused, and the protocol calls it local and safe to send again', async () => {
    const [host] = pickHosts(1) as [string];
    const peer = http2.createServer();
    peer.on('stream', (stream) => {
      stream.on('error', () => undefined);
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    });
    const sessions: http2.ServerHttp2Session[] = [];
    peer.on('session', (session) => sessions.push(session));
    await new Promise<void>((resolve) => peer.listen(0, host, resolve));
    const ep = make[transport](`${host}:${(peer.address() as AddressInfo).port}`);
    try {
      const refused = await callOn(ep, '/p.Any/Call', 'unary', encode({}));
      expect(refused).toBeInstanceOf(GrpcTowerError);
      // native: from the stream's RST_STREAM code; grpc-js: its own words, translated where its attempt ends
      expect((refused as GrpcTowerError).delivery).toBe('refused');
      expect(grpcProtocol.neverReachedServer(refused)).toBe(true);
      expect(grpcProtocol.origin(refused, false)).toBe('local');
    } finally {
      await ep.close({ graceMs: 0 });
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => peer.close(() => resolve()));
    }
  });

  test("the server's grpc-retry-pushback-ms is the pushback: a delay, or stop for a bad value", async () => {
    const [host] = pickHosts(1) as [string];
    const server = new grpc.Server();
    const pass = (b: Buffer) => b;
    server.register(
      '/p.Busy/Call',
      (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const metadata = new grpc.Metadata();
        metadata.set(PUSHBACK_HEADER, call.metadata.get('x-pushback')[0] as string);
        cb({ code: Status.RESOURCE_EXHAUSTED, details: 'busy', metadata });
      },
      pass,
      pass,
      'unary',
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const ep = make[transport](`${host}:${port}`);
    try {
      const pushback = async (value: string) => {
        const metadata = new grpc.Metadata();
        metadata.set('x-pushback', value);
        const err = await ep.call(grpcRequest('/p.Busy/Call', { metadata }), scope.context).catch((e) => e);
        return grpcProtocol.pushback(err as GrpcTowerError);
      };
      expect(await pushback('250')).toEqual({ kind: 'delay', ms: 250 });
      expect(await pushback('-1')).toEqual({ kind: 'stop', value: '-1' });
    } finally {
      await ep.close({ graceMs: 0 });
      server.forceShutdown();
    }
  });
});
