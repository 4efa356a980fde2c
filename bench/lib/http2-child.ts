/**
 * The HTTP/2 server of the http2 scenario, run in a child process (so its
 * CPU is not the client's): TLS with the certificate it is given, ALPN h2,
 * and one answer for every request, `200 ok` with a small body, once the
 * request's body (if any) has been read. Prints `{"port":N}` when it
 * listens; exits when its stdin closes.
 *
 * Usage: node --import tsx http2-child.ts '{"host":"127.0.0.253","key":"…","cert":"…"}'
 *
 * @module
 */
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

const { host, key, cert } = JSON.parse(process.argv[2] ?? '{}') as {
  host: string;
  key: string;
  cert: string;
};
const BODY = Buffer.from('{"ok":true,"server":"http2"}');
const server = http2.createSecureServer({ key, cert, allowHTTP1: false });
server.on('stream', (stream) => {
  stream.on('error', () => undefined);
  stream.on('end', () => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-type': 'application/json', 'content-length': BODY.length });
    stream.end(BODY);
  });
  stream.resume();
});
server.listen(0, host, () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
