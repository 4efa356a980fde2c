// Servers the retry tests need beyond @grpc-tower/testing's echo server:
// - a scripted echo server whose Unary answers come from a per-call script
//   (so a test can send `grpc-retry-pushback-ms` trailers, hang one attempt,
//   or fail a given attempt) and that records each call's request metadata
//   (to see `grpc-previous-rpc-attempts`), its deadline and its peer (to
//   count connections); it takes grpc-js server options (a short
//   `grpc.max_connection_age_ms` makes it send GOAWAYs under load);
// - a plain HTTP/2 server that refuses every stream with
//   RST_STREAM(REFUSED_STREAM), as a server does with a stream it will not
//   hand to its application.
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { type EchoReply, type EchoRequest, loadEchoPackage } from '@grpc-tower/testing';

/** What the scripted server does with one call. */
export type Step =
  | { readonly reply: true }
  | { readonly fail: number; readonly details?: string; readonly trailers?: Readonly<Record<string, string>> }
  | { readonly hang: true };

export interface ScriptedServer {
  readonly address: string;
  readonly name: string;
  /** Request metadata of each call, in arrival order. */
  readonly received: grpc.Metadata[];
  /** The deadline of each call as the server saw it (ms since the epoch, or Infinity). */
  readonly deadlines: number[];
  /** The client address (`ip:port`, one per connection) of each call. */
  readonly peers: string[];
  /** Calls that were cancelled by the client. */
  readonly cancelled: number;
  stop(): Promise<void>;
}

/**
 * Starts a grpc-js server for the echo service whose Unary method follows
 * `script(i)` for its i-th call (0-based). Other methods answer UNIMPLEMENTED.
 */
export async function startScriptedServer(options: {
  host: string;
  name: string;
  script: (index: number, metadata: grpc.Metadata) => Step;
  serverOptions?: grpc.ServerOptions;
}): Promise<ScriptedServer> {
  const received: grpc.Metadata[] = [];
  const deadlines: number[] = [];
  const peers: string[] = [];
  let cancelled = 0;
  const server = new grpc.Server(options.serverOptions);
  const unary: grpc.handleUnaryCall<EchoRequest, EchoReply> = (call, callback) => {
    const index = received.length;
    received.push(call.metadata.clone());
    peers.push(call.getPeer());
    const deadline = call.getDeadline();
    deadlines.push(deadline instanceof Date ? deadline.getTime() : deadline);
    call.on('cancelled', () => {
      cancelled++;
    });
    const step = options.script(index, call.metadata);
    if ('hang' in step) return;
    if ('fail' in step) {
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(step.trailers ?? {})) metadata.set(k, v);
      callback({ code: step.fail, details: step.details ?? `scripted failure ${index}`, metadata });
      return;
    }
    callback(null, {
      message: call.request.message ?? '',
      payload: Buffer.alloc(0),
      server: options.name,
      index,
      received: 0,
    });
  };
  server.addService(loadEchoPackage().EchoService, { Unary: unary });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host}:0`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err === null ? resolve(p) : reject(err),
    );
  });
  return {
    address: `${options.host}:${port}`,
    name: options.name,
    received,
    deadlines,
    peers,
    get cancelled() {
      return cancelled;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

export interface RefusingServer {
  readonly address: string;
  /** Streams refused so far. */
  readonly refused: number;
  stop(): Promise<void>;
}

/** An HTTP/2 server that resets every stream with REFUSED_STREAM. */
export async function startRefusingServer(host: string): Promise<RefusingServer> {
  let refused = 0;
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => undefined);
  });
  server.on('stream', (stream) => {
    refused++;
    stream.on('error', () => undefined);
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    address: `${host}:${port}`,
    get refused() {
      return refused;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}
