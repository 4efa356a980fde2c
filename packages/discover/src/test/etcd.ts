/**
 * A real etcd for tests: a single-member cluster on 127.0.0.1 with random
 * free client and peer ports and its own temporary data folder. It can be
 * stopped and started again on the same ports with the same data (a
 * restart), and compacted, through `etcdctl`.
 *
 * @module
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { stopChild } from './stop-child.js';

/**
 * Options of {@link startEtcd}.
 *
 * @example
 * ```ts
 * const opts: EtcdServerOptions = { binary: '/usr/local/bin/etcd' };
 * ```
 */
export interface EtcdServerOptions {
  /** The etcd binary; default `/usr/bin/etcd` (or `etcd` on PATH). */
  readonly binary?: string;
  /** The etcdctl binary; default `/usr/bin/etcdctl` (or `etcdctl` on PATH). */
  readonly etcdctl?: string;
}

const READY_TIMEOUT_MS = 20_000;

function binary(name: string, given: string | undefined): string {
  if (given !== undefined) return given;
  for (const dir of ['/usr/bin', '/usr/local/bin']) if (existsSync(join(dir, name))) return join(dir, name);
  return name;
}

/**
 * A running (or stopped) etcd server. Always `close()` it in `afterAll`.
 *
 * @example
 * ```ts
 * const server = await startEtcd();
 * await server.put('/svc/a', '127.0.0.2:50051');
 * const src = etcd(server.url, '/svc/');
 * await server.restart();
 * await server.close();
 * ```
 */
export class EtcdServer {
  /** The client port. */
  readonly clientPort: number;
  /** The peer port. */
  readonly peerPort: number;
  /** The data folder (kept across restarts). */
  readonly dataDir: string;
  readonly #dir: string;
  readonly #etcd: string;
  readonly #etcdctl: string;
  #child: ChildProcess | undefined;
  #output: string[] = [];
  readonly #killOnExit = (): void => {
    this.#child?.kill('SIGKILL');
  };

  /** @internal use {@link startEtcd} */
  constructor(dir: string, clientPort: number, peerPort: number, options: EtcdServerOptions) {
    this.#dir = dir;
    this.dataDir = join(dir, 'data');
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.#etcd = binary('etcd', options.binary);
    this.#etcdctl = binary('etcdctl', options.etcdctl);
  }

  /** `http://127.0.0.1:<clientPort>`, for an etcd client's `hosts`. */
  get url(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  /** `127.0.0.1:<clientPort>`. */
  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  /** Whether the process is running. */
  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** The last lines etcd printed (for failure messages). */
  get output(): string {
    return this.#output.join('\n');
  }

  /** Starts etcd (again, with the same ports and data) and waits until `/health` says it is healthy. */
  async start(): Promise<void> {
    if (this.running) return;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const child = spawn(
      this.#etcd,
      [
        '--name=test',
        `--data-dir=${this.dataDir}`,
        `--listen-client-urls=${this.url}`,
        `--advertise-client-urls=${this.url}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=test=${peer}`,
        '--initial-cluster-state=new',
        '--logger=zap',
        '--log-level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch } },
    );
    this.#child = child;
    process.once('exit', this.#killOnExit);
    const feed = (chunk: Buffer): void => {
      for (const line of chunk.toString().split('\n')) {
        if (line.length === 0) continue;
        this.#output.push(line);
        if (this.#output.length > 100) this.#output.shift();
      }
    };
    child.stdout?.on('data', feed);
    child.stderr?.on('data', feed);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`etcd exited while starting:\n${this.output}`);
      try {
        const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: unknown };
        if (body.health === 'true') return;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await this.stop();
    throw new Error(`etcd was not healthy within ${READY_TIMEOUT_MS} ms:\n${this.output}`);
  }

  /** Stops etcd (SIGTERM, then SIGKILL after 5 s), keeping its data. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    process.removeListener('exit', this.#killOnExit);
    await stopChild(child, 5000);
  }

  /** Stops and starts etcd with the same ports and data. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Stops etcd and removes its folder. */
  async close(): Promise<void> {
    await this.stop();
    await rm(this.#dir, { recursive: true, force: true });
  }

  /** Runs `etcdctl` against this server; resolves with its standard output. */
  etcdctl(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        this.#etcdctl,
        [`--endpoints=${this.endpoint}`, '--dial-timeout=2s', '--command-timeout=5s', ...args],
        { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10_000 },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`etcdctl ${args.join(' ')} failed: ${stderr || err.message}`));
          else resolve(stdout);
        },
      );
    });
  }

  /** Sets `key` to `value`. */
  async put(key: string, value: string): Promise<void> {
    await this.etcdctl('put', '--', key, value);
  }

  /** Deletes `key`. */
  async del(key: string): Promise<void> {
    await this.etcdctl('del', key);
  }

  /** The store's current revision. */
  async revision(): Promise<number> {
    const out = await this.etcdctl('endpoint', 'status', '-w', 'json');
    const status = JSON.parse(out) as { Status: { header: { revision: number } } }[];
    const rev = status[0]?.Status.header.revision;
    if (typeof rev !== 'number') throw new Error(`unexpected etcdctl endpoint status output: ${out}`);
    return rev;
  }

  /** Compacts the history up to `revision` (default: the current revision); returns it. */
  async compact(revision?: number): Promise<number> {
    const rev = revision ?? (await this.revision());
    await this.etcdctl('compaction', '--physical', String(rev));
    return rev;
  }
}

/**
 * Starts a single-member etcd on 127.0.0.1 with free ports and a temporary
 * data folder, and waits until it is healthy.
 *
 * @example
 * ```ts
 * const server = await startEtcd();
 * afterAll(() => server.close());
 * ```
 */
export async function startEtcd(options: EtcdServerOptions = {}): Promise<EtcdServer> {
  const dir = await mkdtemp(join(tmpdir(), 'grpc-tower-etcd-'));
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const clientPort = await freePort();
    let peerPort = await freePort();
    while (peerPort === clientPort) peerPort = await freePort();
    const server = new EtcdServer(dir, clientPort, peerPort, options);
    try {
      await server.start();
      return server;
    } catch (err) {
      lastError = err;
      await server.stop();
      await rm(server.dataDir, { recursive: true, force: true });
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}
