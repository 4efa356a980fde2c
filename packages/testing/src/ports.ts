/**
 * Ports for tests that need an address nobody answers on, or a server
 * started later on an address a client already uses.
 *
 * @module
 */
import { type Server, createServer } from 'node:net';

/**
 * A TCP port that nothing listens on, on `hosts` (one host or several: the
 * same port free on each), found by binding it and releasing it. A
 * connection to it is refused until a server binds it, which a test may do
 * later (a client built before its servers). Tries another port when one
 * is taken on some host; rejects after five tries.
 *
 * @example
 * ```ts
 * const [a, b] = pickHosts(2);
 * const port = await closedPort([a, b]); // `${a}:${port}` and `${b}:${port}` refuse connections
 * ```
 */
export async function closedPort(hosts: string | readonly string[]): Promise<number> {
  const list = typeof hosts === 'string' ? [hosts] : hosts;
  if (list.length === 0) throw new RangeError('closedPort: give at least one host');
  for (let attempt = 0; attempt < 5; attempt++) {
    const bound: Server[] = [];
    try {
      let port = 0;
      for (const host of list) {
        const server = createServer();
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, host, resolve);
        });
        bound.push(server);
        port = (server.address() as { port: number }).port;
      }
      return port;
    } catch {
      // taken on one of the hosts: another port
    } finally {
      await Promise.all(bound.map((s) => new Promise((resolve) => s.close(resolve))));
    }
  }
  throw new Error(`closedPort: no port free on every one of ${list.join(', ')}`);
}
