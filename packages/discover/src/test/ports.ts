/**
 * Free loopback ports for test servers. A port is found by binding port 0
 * (the kernel picks an unused one) and releasing it; the caller then starts
 * its server on it, and retries with another port if something took it in
 * between.
 *
 * @module
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

function tcpPort(host: string, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      const address = server.address();
      const found = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(found));
    });
  });
}

function udpFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind({ address: host, port, exclusive: true }, () => socket.close(() => resolve(true)));
  });
}

/**
 * A TCP port that is free on `host` now (and, with `udp: true`, free for UDP
 * too, as a DNS server needs).
 *
 * @example
 * ```ts
 * const port = await freePort('127.0.0.1', { udp: true });
 * ```
 */
export async function freePort(host = '127.0.0.1', options: { udp?: boolean } = {}): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await tcpPort(host);
    if (!options.udp || (await udpFree(host, port))) return port;
  }
  throw new Error(`no free ${options.udp ? 'TCP+UDP ' : ''}port found on ${host}`);
}
