// A real node:http2 server for this package's tests: answers every path
// with a status the test sets (200 unless told), names itself in
// `x-server`, can hang or reset, and counts what it saw.
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { pickHosts } from '@grpc-tower/testing';

/** What a path does: answer with a status, never answer, or reset the stream. */
export type Behaviour = number | 'hang' | 'reset';

/** One request the server saw. */
export interface Seen {
  readonly path: string;
  readonly headers: http2.IncomingHttpHeaders;
  /** The status it answered with, or how it did not answer. */
  readonly outcome: Behaviour;
}

export interface TestHttp2Server {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly address: string;
  /** Every request so far, in order. */
  readonly seen: readonly Seen[];
  /** Requests for `path` so far (answered with `outcome`, when given). */
  count(path: string, outcome?: Behaviour): number;
  /** Hung requests whose stream the client has closed. */
  readonly abandoned: number;
  /** How `path` answers from now on (`'*'`: every path without a behaviour of its own). */
  set(path: string, behaviour: Behaviour): void;
  /** How the next requests for `path` answer, one each, before what `set` says applies again. */
  script(path: string, behaviours: readonly Behaviour[]): void;
  stop(): Promise<void>;
}

/** Starts a server on a fresh loopback host (or on `host:port`, to come back after a stop). */
export async function startHttp2Server(
  name: string,
  at: { host: string; port: number } | undefined = undefined,
): Promise<TestHttp2Server> {
  const host = at?.host ?? pickHosts(1)[0]!;
  const behaviours = new Map<string, Behaviour>();
  const scripts = new Map<string, Behaviour[]>();
  const seen: Seen[] = [];
  const sessions = new Set<http2.ServerHttp2Session>();
  const hung = new Set<http2.ServerHttp2Stream>();
  let abandoned = 0;
  const server = http2.createServer();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    const outcome = scripts.get(path)?.shift() ?? behaviours.get(path) ?? behaviours.get('*') ?? 200;
    seen.push({ path, headers, outcome });
    stream.on('error', () => {});
    if (outcome === 'hang') {
      hung.add(stream);
      stream.on('close', () => {
        if (hung.delete(stream)) abandoned++;
      });
      stream.resume();
      return;
    }
    if (outcome === 'reset') {
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    stream.respond({ ':status': outcome, 'x-server': name });
    stream.end(`${name} ${outcome}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at?.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    host,
    port,
    address: `${host}:${port}`,
    seen,
    count: (path, outcome) =>
      seen.filter((s) => s.path === path && (outcome === undefined || s.outcome === outcome)).length,
    get abandoned() {
      return abandoned;
    },
    set: (path, behaviour) => behaviours.set(path, behaviour),
    script: (path, list) => scripts.set(path, [...(scripts.get(path) ?? []), ...list]),
    stop: () =>
      new Promise<void>((resolve) => {
        hung.clear();
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}
