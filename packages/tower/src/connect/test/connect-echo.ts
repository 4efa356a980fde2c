/**
 * The echo service (`packages/testing/proto/echo.proto`) served by
 * Connect-ES's own Node server (`@connectrpc/connect-node`'s adapter on
 * `node:http2`), which answers the gRPC and the Connect protocols on one
 * port. Its controls are echo.proto's: `delay_ms`, `fail_code` (with an
 * `EchoReply` in the error's details), `count`, `echo_metadata`,
 * `headers_then_fail`.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import * as http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { create } from '@bufbuild/protobuf';
import { Echo, type EchoReply, EchoReplySchema, type EchoRequest } from '@grpc-tower/testing/echo-es';
import { formatAddress } from '@grpc-tower/core';

/** A running connect-node echo server. */
export interface ConnectEchoServer {
  /** `host:port`. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** The name in replies' `server` field. */
  readonly name: string;
  /** Calls started so far. */
  calls(): number;
  /** Latency added to each call from now on, in ms. */
  setLatency(ms: number): void;
  /** Makes the next `n` calls fail with `code` before they answer anything. */
  failNext(n: number, code: Code): void;
  /** Closes every session now and stops listening. */
  close(): Promise<void>;
}

export interface ConnectEchoOptions {
  readonly host: string;
  readonly port?: number;
  readonly name: string;
  readonly latencyMs?: number;
  /** TLS: the server's key and certificate (plaintext HTTP/2 without). */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  ms <= 0
    ? Promise.resolve()
    : new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        }, ms);
        const onAbort = (): void => {
          clearTimeout(timer);
          reject(ConnectError.from(signal.reason, Code.Canceled));
        };
        signal.addEventListener('abort', onAbort, { once: true });
      });

/** The failure `fail_code` asks for: its details carry an EchoReply naming the server. */
function failure(req: EchoRequest, code: number, name: string, ctx: HandlerContext): ConnectError {
  const metadata = new Headers();
  echoMetadata(req, ctx, metadata);
  return new ConnectError(req.failDetails, code as Code, metadata, [
    { desc: EchoReplySchema, value: { message: req.failDetails, server: name } },
  ]);
}

/** `echo_metadata`: the `x-` headers back as headers, and as trailers named `<key>-trailer`. */
function echoMetadata(req: EchoRequest, ctx: HandlerContext, trailerTarget?: Headers): void {
  if (!req.echoMetadata) return;
  ctx.requestHeader.forEach((value, key) => {
    if (!key.startsWith('x-')) return;
    ctx.responseHeader.append(key, value);
    const trailerKey = key.endsWith('-bin') ? `${key.slice(0, -4)}-trailer-bin` : `${key}-trailer`;
    (trailerTarget ?? ctx.responseTrailer).append(trailerKey, value);
  });
}

/**
 * Starts the echo service on connect-node's HTTP/2 server at `host`.
 *
 * @example
 * ```ts
 * const server = await startConnectEchoServer({ host: '127.0.0.5', name: 'a' });
 * ```
 */
export async function startConnectEchoServer(options: ConnectEchoOptions): Promise<ConnectEchoServer> {
  const name = options.name;
  let latencyMs = options.latencyMs ?? 0;
  let calls = 0;
  let failRemaining = 0;
  let failCode = Code.Unavailable;
  /** Counts a call; throws the failure `failNext` asked for. */
  const started = (): void => {
    calls++;
    if (failRemaining > 0) {
      failRemaining--;
      throw new ConnectError(`${name} fails this call`, failCode);
    }
  };
  const reply = (req: EchoRequest, extra: { index?: number } = {}): EchoReply =>
    create(EchoReplySchema, { message: req.message, payload: req.payload, server: name, ...extra });
  const routes = (router: ConnectRouter): void => {
    router.service(Echo, {
      async unary(req, ctx) {
        started();
        await sleep(latencyMs + req.delayMs, ctx.signal);
        if (req.failCode !== 0) throw failure(req, req.failCode, name, ctx);
        echoMetadata(req, ctx);
        return reply(req);
      },
      async *serverStream(req, ctx) {
        started();
        await sleep(latencyMs, ctx.signal);
        if (req.failCode !== 0) throw failure(req, req.failCode, name, ctx);
        echoMetadata(req, ctx);
        for (let index = 0; index < req.count; index++) {
          await sleep(req.delayMs, ctx.signal);
          yield reply(req, { index });
        }
        if (req.headersThenFail !== 0) throw failure(req, req.headersThenFail, name, ctx);
      },
      async clientStream(requests, ctx) {
        started();
        await sleep(latencyMs, ctx.signal);
        const texts: string[] = [];
        let last: EchoRequest | undefined;
        for await (const req of requests) {
          await sleep(req.delayMs, ctx.signal);
          if (req.failCode !== 0) throw failure(req, req.failCode, name, ctx);
          texts.push(req.message);
          last = req;
        }
        if (last !== undefined) echoMetadata(last, ctx);
        return create(EchoReplySchema, { message: texts.join(','), server: name, received: texts.length });
      },
      async *bidi(requests, ctx) {
        started();
        await sleep(latencyMs, ctx.signal);
        let index = 0;
        for await (const req of requests) {
          await sleep(req.delayMs, ctx.signal);
          if (req.failCode !== 0) throw failure(req, req.failCode, name, ctx);
          yield reply(req, { index: index++ });
        }
      },
    });
  };
  const handler = connectNodeAdapter({ routes });
  const server =
    options.tls === undefined
      ? http2.createServer(handler)
      : http2.createSecureServer({ ...options.tls, allowHTTP1: false }, handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  return {
    address: formatAddress(options.host, port),
    host: options.host,
    port,
    name,
    calls: () => calls,
    setLatency: (ms) => {
      latencyMs = ms;
    },
    failNext: (n, code) => {
      failRemaining = n;
      failCode = code;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A connect-node echo server in a child process, which can crash like a real one. */
export interface ChildConnectEchoServer {
  readonly address: string;
  readonly name: string;
  /** SIGKILL (a crash: its connections drop); resolves once the child exited. */
  kill(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./connect-child.ts', import.meta.url));

/**
 * Starts {@link startConnectEchoServer} in a child process (Node with tsx's
 * loader, the workspace's source condition).
 *
 * @example
 * ```ts
 * const child = await spawnConnectEchoServer({ host: '127.0.0.5', name: 'a' });
 * await child.kill();
 * ```
 */
export async function spawnConnectEchoServer(options: ConnectEchoOptions): Promise<ChildConnectEchoServer> {
  const child = spawn(
    process.execPath,
    ['--conditions=@grpc-tower/source', '--import', 'tsx', CHILD, JSON.stringify(options)],
    {
      cwd: fileURLToPath(new URL('../../..', import.meta.url)),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code, signal) => reject(new Error(`connect echo child exited (${code ?? signal})`)));
  });
  return {
    address: formatAddress(options.host, port),
    name: options.name,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
