/**
 * A fleet of echo servers in child processes, on distinct loopback hosts,
 * that a test can crash, freeze, stop gracefully and start again on the
 * same address, and an in-memory registry that a `poll` source reads (what
 * a real registry would hold).
 *
 * @module
 */
import { poll, type DiscoverySource } from '@grpc-tower/discover';
import { type ChildEchoServer, pickHosts, spawnEchoServer } from '@grpc-tower/testing';

/** One member of a {@link Fleet}. */
export interface Member {
  readonly name: string;
  readonly host: string;
  /** Fixed after the first start, so restarts keep the address. */
  port: number;
  server: ChildEchoServer | undefined;
}

/**
 * Echo servers `s0`, `s1`… in child processes.
 *
 * @example
 * ```ts
 * const fleet = await Fleet.start(3);
 * await fleet.kill('s0');
 * await fleet.restart('s0');
 * await fleet.close();
 * ```
 */
export class Fleet {
  readonly members: Member[];
  readonly #health: boolean;

  private constructor(members: Member[], health: boolean) {
    this.members = members;
    this.#health = health;
  }

  /** Starts `count` servers (with the health service unless `health: false`). */
  static async start(count: number, options: { health?: boolean; prefix?: string } = {}): Promise<Fleet> {
    const hosts = pickHosts(count);
    const prefix = options.prefix ?? 's';
    const fleet = new Fleet(
      hosts.map((host, i) => ({ name: `${prefix}${i}`, host, port: 0, server: undefined })),
      options.health ?? true,
    );
    try {
      await Promise.all(fleet.members.map((m) => fleet.#spawn(m)));
    } catch (err) {
      await fleet.close();
      throw err;
    }
    return fleet;
  }

  async #spawn(m: Member): Promise<ChildEchoServer> {
    // the port may still be held for a moment by the previous process
    let lastError: unknown;
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        const server = await spawnEchoServer({
          host: m.host,
          port: m.port,
          name: m.name,
          health: this.#health,
        });
        m.server = server;
        m.port = server.port;
        return server;
      } catch (err) {
        lastError = err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    throw lastError;
  }

  /** The member called `name`. */
  member(name: string): Member {
    const m = this.members.find((x) => x.name === name);
    if (m === undefined) throw new Error(`no server ${name}`);
    return m;
  }

  /** `host:port` of `name`. */
  address(name: string): string {
    const m = this.member(name);
    return `${m.host}:${m.port}`;
  }

  /** Every address. */
  addresses(): string[] {
    return this.members.map((m) => `${m.host}:${m.port}`);
  }

  /** Every server name. */
  names(): Set<string> {
    return new Set(this.members.map((m) => m.name));
  }

  /** The running child of `name`. */
  server(name: string): ChildEchoServer {
    const s = this.member(name).server;
    if (s === undefined) throw new Error(`server ${name} is not running`);
    return s;
  }

  /** Crashes `name` (SIGKILL). */
  async kill(name: string): Promise<void> {
    const m = this.member(name);
    const s = m.server;
    m.server = undefined;
    await s?.kill('SIGKILL');
  }

  /** Stops `name` gracefully (GOAWAY, calls in flight finish within `graceMs`). */
  async stop(name: string, graceMs = 5000): Promise<void> {
    const m = this.member(name);
    const s = m.server;
    m.server = undefined;
    await s?.stop(graceMs);
  }

  /** Starts `name` again on the same host and port. */
  async restart(name: string): Promise<ChildEchoServer> {
    const m = this.member(name);
    if (m.server !== undefined) return m.server;
    return this.#spawn(m);
  }

  /** Kills every server still running. */
  async close(): Promise<void> {
    await Promise.all(
      this.members.map(async (m) => {
        const s = m.server;
        m.server = undefined;
        await s?.kill('SIGKILL');
      }),
    );
  }
}

/**
 * What a registry (Consul, etcd, a DNS zone) would hold, in memory, read by
 * a real `poll` source.
 *
 * @example
 * ```ts
 * const registry = new Registry(fleet.addresses());
 * const stack = fullStack({ source: registry.source(50) });
 * registry.remove(fleet.address('s0'));
 * ```
 */
export class Registry {
  readonly #addresses: Set<string>;

  constructor(addresses: Iterable<string> = []) {
    this.#addresses = new Set(addresses);
  }

  add(address: string): void {
    this.#addresses.add(address);
  }

  remove(address: string): void {
    this.#addresses.delete(address);
  }

  /** A `poll` source over the registry, every `intervalMs`. */
  source(intervalMs: number): DiscoverySource {
    return poll(() => [...this.#addresses], { name: 'registry', intervalMs, keepLastOnEmpty: false });
  }
}
