/**
 * A raw HTTP/2 server for the native transport's tests: each request's
 * `:path` picks a behaviour, well formed or not, that a grpc-js server
 * cannot be made to show.
 */
import * as http2 from 'node:http2';

/** A running raw peer. */
export interface RawPeer {
  readonly address: string;
  /** Requests received, by path. */
  readonly requests: Map<string, http2.IncomingHttpHeaders[]>;
  close(): Promise<void>;
}

/** What a path does with its stream. */
export type RawBehaviour = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;

/** A gRPC message with its 5-byte prefix; `flag` 1 marks it compressed, `length` may lie. */
export function grpcFrame(payload: Buffer, options: { flag?: number; length?: number } = {}): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = options.flag ?? 0;
  prefix.writeUInt32BE(options.length ?? payload.length, 1);
  return Buffer.concat([prefix, payload]);
}

/** Responds 200 with gRPC headers, writes `data`, then sends `trailers`. */
export function respondGrpc(
  stream: http2.ServerHttp2Stream,
  data: Buffer[],
  trailers: http2.OutgoingHttpHeaders,
  headers: http2.OutgoingHttpHeaders = {},
): void {
  stream.respond(
    { ':status': 200, 'content-type': 'application/grpc', ...headers },
    { waitForTrailers: true },
  );
  stream.on('wantTrailers', () => stream.sendTrailers(trailers));
  for (const d of data) stream.write(d);
  stream.end();
}

/**
 * Writes `frame` `count` times, each as soon as flow control takes it
 * (waiting for 'drain' when the stream's buffer is full), calling
 * `onWrite` for each; stops when the stream is destroyed.
 */
export function flood(
  stream: http2.ServerHttp2Stream,
  frame: Buffer,
  count: number,
  onWrite: () => void,
): void {
  let written = 0;
  const pump = (): void => {
    while (written < count && !stream.destroyed) {
      written++;
      onWrite();
      if (!stream.write(frame)) {
        stream.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

/** Starts a raw peer on `host` with a behaviour per path (404 for others). */
export async function startRawPeer(
  host: string,
  behaviours: Record<string, RawBehaviour>,
  settings: http2.Settings = {},
): Promise<RawPeer> {
  const requests = new Map<string, http2.IncomingHttpHeaders[]>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer({ settings });
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const path = String(headers[':path']);
    requests.set(path, [...(requests.get(path) ?? []), headers]);
    // drain the request body
    stream.on('data', () => {});
    const behave = behaviours[path];
    if (behave === undefined) {
      stream.respond({ ':status': 404 }, { endStream: true });
      return;
    }
    behave(stream, headers);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  return {
    address: `${host}:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}
