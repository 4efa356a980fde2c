// Real node:http2 servers on loopback addresses for the endpoint's tests.
import { createHash } from 'node:crypto';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { writable } from '../body.js';

export const MiB = 1024 * 1024;

/** A server whose streams `onStream` answers; `stop()` destroys its sessions and closes it. */
export interface TestServer {
  readonly server: http2.Http2Server;
  readonly sessions: http2.ServerHttp2Session[];
  readonly address: string;
  readonly port: number;
  stop(): Promise<void>;
}

export async function startServer(
  host: string,
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
  port = 0,
): Promise<TestServer> {
  const sessions: http2.ServerHttp2Session[] = [];
  const server = http2.createServer();
  server.on('session', (s) => sessions.push(s));
  server.on('stream', (stream, headers) => {
    // a stream the test resets or cancels errors on the server side too
    stream.on('error', () => undefined);
    onStream(stream, headers);
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    server,
    sessions,
    address: `${host}:${bound}`,
    port: bound,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** What {@link writeBody} has written so far, and whether it waits for 'drain'. */
export interface WriteState {
  written: number;
  waiting: boolean;
  /** How many times `write()` returned false. */
  blocked: number;
}

const PATTERN = Buffer.alloc(64 * 1024, 0x61);

/**
 * Writes `total` bytes (or until the stream closes, with `Infinity`) in
 * 64 KiB chunks, honouring backpressure, then ends the stream (which
 * sends trailers when they were asked for with `waitForTrailers`).
 */
export async function writeBody(stream: http2.Http2Stream, total: number, state: WriteState): Promise<void> {
  while (state.written < total && !stream.destroyed && !stream.closed) {
    const n = Math.min(PATTERN.length, total - state.written);
    const ok = stream.write(n === PATTERN.length ? PATTERN : PATTERN.subarray(0, n));
    state.written += n;
    if (!ok) {
      state.blocked++;
      state.waiting = true;
      await writable(stream);
      state.waiting = false;
    }
  }
  if (!stream.destroyed && !stream.closed) stream.end();
}

/** Reads a request body whole: its size and SHA-256. */
export function readBody(stream: http2.Http2Stream): Promise<{ bytes: number; sha: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    stream.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    stream.on('end', () => resolve({ bytes, sha: hash.digest('hex') }));
    stream.on('error', reject);
  });
}

/** The SHA-256 of the chunks, as {@link readBody} gives it. */
export function shaOf(chunks: Iterable<Uint8Array>): string {
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(c);
  return hash.digest('hex');
}
