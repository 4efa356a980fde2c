/**
 * A loopback TCP relay for tests that need to cut a client off its server
 * without stopping the server: `pause()` drops every relayed connection and
 * refuses new ones (a network partition, as the client sees it), `resume()`
 * accepts again on the same port.
 *
 * @module
 */
import { type Server, type Socket, connect, createServer } from 'node:net';

/**
 * A running relay. Always `close()` it in `afterAll`.
 *
 * @example
 * ```ts
 * const proxy = await startTcpProxy(etcdServer.clientPort);
 * const src = etcd(`http://${proxy.address}`, '/svc/');
 * await proxy.pause();   // the client loses its connection
 * await proxy.resume();
 * ```
 */
export class TcpProxy {
  readonly host = '127.0.0.1';
  readonly targetPort: number;
  port = 0;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();

  /** @internal use {@link startTcpProxy} */
  constructor(targetPort: number) {
    this.targetPort = targetPort;
  }

  /** `127.0.0.1:<port>`. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Whether the relay accepts connections. */
  get accepting(): boolean {
    return this.#server !== undefined;
  }

  /** Accepts connections (on the same port as before, after a pause). */
  async resume(): Promise<void> {
    if (this.#server !== undefined) return;
    const server = createServer((client) => {
      const upstream = connect({ host: this.host, port: this.targetPort });
      this.#sockets.add(client);
      this.#sockets.add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.host, port: this.port }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (typeof address === 'object' && address !== null) this.port = address.port;
    this.#server = server;
  }

  /** Drops every relayed connection and stops accepting new ones. */
  async pause(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Same as {@link TcpProxy.pause}; the relay cannot be resumed afterwards by intent. */
  async close(): Promise<void> {
    await this.pause();
  }
}

/**
 * Starts a relay from a free port on 127.0.0.1 to `127.0.0.1:targetPort`.
 *
 * @example
 * ```ts
 * const proxy = await startTcpProxy(2379);
 * ```
 */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const proxy = new TcpProxy(targetPort);
  await proxy.resume();
  return proxy;
}
