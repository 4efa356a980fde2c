// A small HTTP/2 (cleartext, h2c) JSON service for the example: GET
// /items/<id> answers `{ "id": …, "server": … }` after `latencyMs`, and POST
// /items reads the whole body and answers `{ "bytes": …, "server": … }`. It
// can send GOAWAY to its clients, as a server does before it shuts down or
// when a proxy recycles connections.
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

/** A running example server. */
export interface ItemServer {
  readonly name: string;
  readonly address: string;
  /** HTTP/2 sessions (connections) accepted so far. */
  readonly sessions: number;
  /** Requests answered so far. */
  readonly answered: number;
  /**
   * Closes every open session gracefully: sends GOAWAY, lets the requests
   * it accepted finish, then closes the connection. Clients must open a new
   * session for new requests.
   */
  goaway(): void;
  close(): Promise<void>;
}

/** Starts a server on `host` (port 0 picks a free port). */
export async function startItemServer(options: {
  readonly host: string;
  readonly port?: number;
  readonly name: string;
  readonly latencyMs?: number;
}): Promise<ItemServer> {
  const open = new Set<http2.ServerHttp2Session>();
  let sessions = 0;
  let answered = 0;
  const server = http2.createServer();
  server.on('session', (session) => {
    sessions++;
    open.add(session);
    session.on('close', () => open.delete(session));
  });
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    if (headers[':method'] === 'POST' && path === '/items') {
      let bytes = 0;
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      stream.on('end', () => {
        if (stream.closed) return;
        answered++;
        stream.respond({ ':status': 201, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ bytes, server: options.name }));
      });
      return;
    }
    const match = /^\/items\/([\w-]+)$/.exec(path);
    stream.resume();
    setTimeout(() => {
      if (stream.closed) return;
      if (match === null) {
        stream.respond({ ':status': 404 });
        stream.end();
        return;
      }
      answered++;
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ id: match[1], server: options.name }));
    }, options.latencyMs ?? 2);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    name: options.name,
    address: `${options.host}:${port}`,
    get sessions() {
      return sessions;
    },
    get answered() {
      return answered;
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
}
