/**
 * Real `node:http2` servers for the dispatcher's tests, each on its own
 * loopback address: cleartext (h2c) or TLS with a self-signed certificate
 * made by `openssl`. A server records what it saw (method, path, body
 * bytes, how the stream ended) and answers through a handler the test
 * gives, by default `{ server, path, bytes }` as JSON after `latencyMs`.
 *
 * @module
 */
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

/** One request a server saw. */
export interface Seen {
  readonly method: string;
  readonly path: string;
  readonly headers: http2.IncomingHttpHeaders;
  /** Request body bytes received so far. */
  bytes: number;
  /** The stream's RST_STREAM code once it closed (0: ended normally, 8: CANCEL). */
  rstCode: number | undefined;
  /** Whether the stream closed (answered, reset or aborted). */
  closed: boolean;
}

/** Answers one request; `seen` is its record, `server` the server. */
export type Handler = (stream: http2.ServerHttp2Stream, seen: Seen, server: TestServer) => void;

/** A running test server. */
export interface TestServer {
  readonly name: string;
  /** `host:port`. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly seen: Seen[];
  /** Added before the default handler answers, in ms. */
  latencyMs: number;
  /** The handler of every request; replace it to change what the server does. */
  handler: Handler;
  /** HTTP/2 sessions accepted so far. */
  readonly sessions: number;
  /** Sends GOAWAY on every open session (accepted streams finish). */
  goaway(): void;
  close(): Promise<void>;
}

/** The default handler: after `latencyMs`, 200 with `{ server, path, bytes }` once the request body ended. */
export const answer: Handler = (stream, seen, server) => {
  stream.on('end', () => {
    setTimeout(() => {
      if (stream.closed || stream.destroyed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ server: server.name, path: seen.path, bytes: seen.bytes }));
    }, server.latencyMs);
  });
};

/**
 * A handler that never finishes: for a path in `bodyPaths` it sends the
 * headers (200) and `first`, for any other path nothing at all, so the
 * client has to give up (an abort, a timeout).
 */
export function stall(bodyPaths: readonly string[] | 'all', first = 'first'): Handler {
  return (stream, seen) => {
    if (bodyPaths !== 'all' && !bodyPaths.includes(seen.path)) return;
    stream.respond({ ':status': 200 });
    stream.write(first);
  };
}

/** Options of {@link startServer}. */
export interface ServerOptions {
  readonly host: string;
  readonly name: string;
  /** Default 0: the kernel picks one. */
  readonly port?: number;
  readonly latencyMs?: number;
  readonly handler?: Handler;
  /** TLS key and certificate: the server speaks HTTP/2 over TLS (ALPN h2). */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
}

/**
 * Starts a server on `host`.
 *
 * @example
 * ```ts
 * const server = await startServer({ host: '127.0.0.2', name: 'a', latencyMs: 5 });
 * ```
 */
export async function startServer(options: ServerOptions): Promise<TestServer> {
  const open = new Set<http2.ServerHttp2Session>();
  let sessions = 0;
  const server =
    options.tls === undefined ? http2.createServer() : http2.createSecureServer({ ...options.tls });
  const seen: Seen[] = [];
  let address = '';
  let port = 0;
  const self: TestServer = {
    name: options.name,
    get address() {
      return address;
    },
    host: options.host,
    get port() {
      return port;
    },
    seen,
    latencyMs: options.latencyMs ?? 0,
    handler: options.handler ?? answer,
    get sessions() {
      return sessions;
    },
    goaway() {
      for (const s of open) s.close();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('session', (session) => {
    sessions++;
    open.add(session);
    session.on('close', () => open.delete(session));
    session.on('error', () => undefined);
  });
  server.on('stream', (stream, headers) => {
    const record: Seen = {
      method: String(headers[':method']),
      path: String(headers[':path']),
      headers,
      bytes: 0,
      rstCode: undefined,
      closed: false,
    };
    seen.push(record);
    stream.on('data', (chunk: Buffer) => {
      record.bytes += chunk.length;
    });
    stream.on('error', () => undefined);
    stream.on('close', () => {
      record.closed = true;
      record.rstCode = stream.rstCode;
    });
    self.handler(stream, record, self);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  address = `${options.host}:${port}`;
  return self;
}
