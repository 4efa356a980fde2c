/**
 * The demo's servers: echo servers in child processes (so SIGKILL is a
 * real crash), each on its own loopback address and all on one port, which
 * is what a DNS name with several A records needs.
 */
import { type ChildEchoServer, spawnEchoServer } from '@grpc-tower/testing';

/** One server of the story, which may be restarted on the same address. */
export interface DemoServer {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly address: string;
  /** The running process, or undefined after a crash or a stop. */
  child: ChildEchoServer | undefined;
}

/** What every server is started with. */
export interface ServerSettings {
  /** Latency of every call, in ms (a server that does some work). */
  readonly latencyMs: number;
}

const spawnOne = (name: string, host: string, port: number, settings: ServerSettings) =>
  spawnEchoServer({ host, port, name, latencyMs: settings.latencyMs, health: true });

/**
 * Starts one server per `[name, host]` pair, all on one free port: the
 * first binds port 0, the others take its port; if one of them finds it
 * taken, all stop and the next attempt picks another port.
 */
export async function startFleet(
  hosts: readonly (readonly [name: string, host: string])[],
  settings: ServerSettings,
): Promise<DemoServer[]> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const started: ChildEchoServer[] = [];
    try {
      const [first, ...rest] = hosts;
      if (first === undefined) return [];
      const head = await spawnOne(first[0], first[1], 0, settings);
      started.push(head);
      const others = await Promise.allSettled(
        rest.map(([name, host]) => spawnOne(name, host, head.port, settings)),
      );
      for (const r of others) if (r.status === 'fulfilled') started.push(r.value);
      const failed = others.find((r) => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      return started.map((child) => ({
        name: child.name,
        host: child.host,
        port: child.port,
        address: child.address,
        child,
      }));
    } catch (err) {
      lastError = err;
      await Promise.all(started.map((c) => c.kill()));
    }
  }
  const hint = /EADDRNOTAVAIL|assign requested address/.test(String(lastError))
    ? ` (the loopback addresses ${hosts.map(([, h]) => h).join(', ')} are not configured here;` +
      ' on macOS add them with `sudo ifconfig lo0 alias <address>`)'
    : '';
  throw new Error(`could not start the demo servers on one shared port: ${String(lastError)}${hint}`, {
    cause: lastError,
  });
}

/** Starts `server` again on its address (after a crash or a stop). */
export async function restart(server: DemoServer, settings: ServerSettings): Promise<void> {
  let lastError: unknown;
  // the port was just released; a few tries cover a slow release
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      server.child = await spawnOne(server.name, server.host, server.port, settings);
      return;
    } catch (err) {
      lastError = err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  throw lastError;
}
