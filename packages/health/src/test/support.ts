// Helpers for this package's tests: echo calls sent straight to an
// endpoint (no client, no channel), waiting on observables, and servers
// that implement grpc.health.v1 by hand to fail in controlled ways.
import { type CallContext, type Insert, background } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, RequestMessages } from '@grpc-tower/core/grpc';
import { connect, staticList } from '@grpc-tower/discover';
import {
  type EchoServer,
  GeneratedEchoReply,
  GeneratedEchoRequest,
  pickHosts,
  startEchoServer,
} from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { type Observable, filter, firstValueFrom, timeout } from 'rxjs';

type Svc = { call(req: GrpcRequest, ctx: CallContext): Promise<GrpcResponse> };

/** A GrpcRequest for an echo method. */
export function echoRequest(
  method: 'Unary' | 'ServerStream',
  fields: Parameters<typeof GeneratedEchoRequest.fromPartial>[0] = {},
): GrpcRequest {
  const bytes = Buffer.from(GeneratedEchoRequest.encode(GeneratedEchoRequest.fromPartial(fields)).finish());
  return {
    method: `/grpctower.testing.Echo/${method}`,
    kind: method === 'Unary' ? 'unary' : 'serverStream',
    metadata: new grpc.Metadata(),
    messages: RequestMessages.of(bytes),
    host: undefined,
    credentials: undefined,
    attempt: 0,
  };
}

/** What a call sent straight to a service ended with. */
export interface CallResult {
  readonly code: number;
  /** The `server` field of the first reply, when one arrived. */
  readonly server: string | undefined;
}

/** Sends an echo call and reads it to the end; never rejects. */
export async function send(
  svc: Svc,
  method: 'Unary' | 'ServerStream' = 'Unary',
  fields: Parameters<typeof GeneratedEchoRequest.fromPartial>[0] = { message: 'hi' },
  ctx: CallContext = background,
): Promise<CallResult> {
  let res: GrpcResponse;
  try {
    res = await svc.call(echoRequest(method, fields), ctx);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return { code: typeof code === 'number' ? code : grpc.status.UNKNOWN, server: undefined };
  }
  return new Promise((resolve) => {
    let server: string | undefined;
    res.stream.start({
      onMessage: (m) => {
        server ??= GeneratedEchoReply.decode(m).server;
        res.stream.read();
      },
      onStatus: (s) => resolve({ code: s.code, server }),
    });
    res.stream.read();
  });
}

/** The first value of `source` that passes `predicate`, or an error after `ms`. */
export function next<T>(source: Observable<T>, predicate: (v: T) => boolean, ms = 10_000): Promise<T> {
  return firstValueFrom(source.pipe(filter(predicate), timeout(ms)));
}

/** Starts `n` echo servers on distinct loopback hosts, named s0, s1, … */
export async function startServers(n: number, health = true): Promise<EchoServer[]> {
  const hosts = pickHosts(n);
  return Promise.all(hosts.map((host, i) => startEchoServer({ host, name: `s${i}`, health })));
}

/** A grpc.health.v1 server whose handlers the test writes. */
export interface ScriptedHealthServer {
  readonly address: string;
  /** Watch calls received so far. */
  readonly watches: number;
  /** Check calls received so far. */
  readonly checks: number;
  stop(): Promise<void>;
}

type WatchHandler = (
  call: grpc.ServerWritableStream<{ service: string }, { status: string }>,
  n: number,
) => void;
type CheckHandler = (
  call: grpc.ServerUnaryCall<{ service: string }, { status: string }>,
  callback: grpc.sendUnaryData<{ status: string }>,
  n: number,
) => void;

/** Starts a server with a hand-written health service (`n` counts calls from 1). */
export async function startScriptedHealthServer(handlers: {
  watch?: WatchHandler;
  check?: CheckHandler;
}): Promise<ScriptedHealthServer> {
  const [host] = pickHosts(1);
  const server = new grpc.Server();
  let watches = 0;
  let checks = 0;
  server.addService(healthService, {
    watch: (call: grpc.ServerWritableStream<{ service: string }, { status: string }>) => {
      watches++;
      if (handlers.watch) handlers.watch(call, watches);
      else call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'no watch' });
    },
    check: (
      call: grpc.ServerUnaryCall<{ service: string }, { status: string }>,
      callback: grpc.sendUnaryData<{ status: string }>,
    ) => {
      checks++;
      if (handlers.check) handlers.check(call, callback, checks);
      else callback({ code: grpc.status.UNIMPLEMENTED, details: 'no check' });
    },
    list: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { statuses: {} }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    address: `${host}:${port}`,
    get watches() {
      return watches;
    },
    get checks() {
      return checks;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

/** A discovered address with a weight, a zone and topology hints, as a registry gives them. */
export const PLACED = { address: '127.0.0.1:1', weight: 2, zone: 'a', forZones: ['a'] } as const;

/**
 * The insert `connect` hands on for {@link PLACED}, with the endpoint
 * `wrap` makes of its address: what a balancer receives.
 */
export async function placedInsert<E extends { close(): Promise<void> }>(
  wrap: (address: string) => E,
): Promise<Insert<string, E>> {
  const change = await firstValueFrom(
    connect(staticList([{ ...PLACED, forZones: [...PLACED.forZones] }]), (a) => wrap(a.address)),
  );
  if (change.type !== 'insert') throw new Error(`expected an insert, got ${change.type}`);
  return change;
}
