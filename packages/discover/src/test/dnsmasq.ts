/**
 * A real DNS server for tests: dnsmasq on 127.0.0.1 with a random free port,
 * its own folder, no upstream servers and no system hosts file. A and AAAA
 * records live in an extra hosts file (`--addn-hosts`) that
 * {@link Dnsmasq.setHosts} rewrites before sending SIGHUP, which makes
 * dnsmasq clear its cache and read that file again (see dnsmasq(8), SIGNALS).
 * SRV records live in the config file, which dnsmasq reads only at start,
 * so {@link Dnsmasq.setSrv} restarts it on the same port. Names under the
 * local domain (default `test`) that have no record answer NXDOMAIN, unless
 * `unanswered` asks dnsmasq to refuse them or to forward them to a server
 * that never answers ({@link startSilentDnsServer}), which is how a test
 * makes one address family fail while the other answers.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { stopChild } from './stop-child.js';

/**
 * One SRV record.
 *
 * @example
 * ```ts
 * const r: SrvRecordSpec = { name: '_grpc._tcp.svc.test', target: 'a.svc.test', port: 50051, weight: 10 };
 * ```
 */
export interface SrvRecordSpec {
  readonly name: string;
  readonly target: string;
  readonly port: number;
  readonly priority?: number;
  readonly weight?: number;
}

/**
 * Options of {@link startDnsmasq}.
 *
 * @example
 * ```ts
 * const opts: DnsmasqOptions = { hosts: { 'svc.test': ['127.0.0.11', '::11'] }, ttl: 1 };
 * ```
 */
export interface DnsmasqOptions {
  /** A/AAAA records: name → IP addresses. */
  readonly hosts?: Readonly<Record<string, readonly string[]>>;
  /** SRV records. */
  readonly srv?: readonly SrvRecordSpec[];
  /** TTL of every answer, in seconds (`--local-ttl`); default 1. */
  readonly ttl?: number;
  /** The domain answered locally (NXDOMAIN for unknown names); default `'test'`. */
  readonly localDomain?: string;
  /**
   * What dnsmasq does with a query under the local domain that its records
   * do not answer (an unknown name, or the family a name has no record of):
   * - `'nxdomain'` (default, `--local`): NXDOMAIN, or NODATA for a known
   *   name, as an authoritative server answers;
   * - `'refused'` (no `--local` and no upstream): REFUSED, as dnsmasq does
   *   when it serves names from a hosts file without `--local`;
   * - `{ forwardTo }` (`--server=/domain/ip#port`): forwarded there, so a
   *   server that never answers makes the query time out.
   */
  readonly unanswered?: 'nxdomain' | 'refused' | { readonly forwardTo: { host: string; port: number } };
  /** The dnsmasq binary; default `/usr/sbin/dnsmasq` (or `dnsmasq` on PATH). */
  readonly binary?: string;
}

const START_TIMEOUT_MS = 10_000;

function hostsText(hosts: Readonly<Record<string, readonly string[]>>): string {
  const lines: string[] = [];
  for (const [name, ips] of Object.entries(hosts)) for (const ip of ips) lines.push(`${ip} ${name}`);
  return `${lines.join('\n')}\n`;
}

function confText(srv: readonly SrvRecordSpec[]): string {
  return `${srv
    .map((r) => `srv-host=${r.name},${r.target},${r.port},${r.priority ?? 0},${r.weight ?? 0}`)
    .join('\n')}\n`;
}

/**
 * A running (or stopped) dnsmasq. Always `close()` it in `afterAll`.
 *
 * @example
 * ```ts
 * const server = await startDnsmasq({ hosts: { 'svc.test': ['127.0.0.11'] } });
 * const src = dns('svc.test', 50051, { servers: [server.address] });
 * await server.setHosts({ 'svc.test': ['127.0.0.11', '127.0.0.12'] });
 * await server.close();
 * ```
 */
export class Dnsmasq {
  /** The address dnsmasq listens on. */
  readonly host = '127.0.0.1';
  /** The UDP and TCP port it listens on. */
  port: number;
  /** Its folder (config and hosts files). */
  readonly dir: string;
  readonly #binary: string;
  readonly #ttl: number;
  readonly #domain: string;
  readonly #unanswered: NonNullable<DnsmasqOptions['unanswered']>;
  #child: ChildProcess | undefined;
  #output: string[] = [];
  #onLine: ((line: string) => void) | undefined;
  readonly #killOnExit = (): void => {
    this.#child?.kill('SIGKILL');
  };

  /** @internal use {@link startDnsmasq} */
  constructor(dir: string, port: number, options: DnsmasqOptions) {
    this.dir = dir;
    this.port = port;
    this.#ttl = options.ttl ?? 1;
    this.#domain = options.localDomain ?? 'test';
    this.#unanswered = options.unanswered ?? 'nxdomain';
    this.#binary = options.binary ?? (existsSync('/usr/sbin/dnsmasq') ? '/usr/sbin/dnsmasq' : 'dnsmasq');
  }

  /** `127.0.0.1:<port>`, the form `dns(…, { servers })` takes. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Whether the process is running. */
  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** The last lines dnsmasq printed (for failure messages). */
  get output(): string {
    return this.#output.join('\n');
  }

  get #hostsFile(): string {
    return join(this.dir, 'hosts');
  }

  get #confFile(): string {
    return join(this.dir, 'dnsmasq.conf');
  }

  /** @internal */
  async writeRecords(options: Pick<DnsmasqOptions, 'hosts' | 'srv'>): Promise<void> {
    await writeFile(this.#hostsFile, hostsText(options.hosts ?? {}));
    await writeFile(this.#confFile, confText(options.srv ?? []));
  }

  /** Starts dnsmasq on its port; resolves once it has read its hosts file (its sockets are bound by then). */
  async start(): Promise<void> {
    if (this.running) return;
    const args = [
      '--keep-in-foreground',
      '--log-facility=-',
      `--conf-file=${this.#confFile}`,
      '--no-resolv',
      '--no-hosts',
      '--no-poll',
      `--addn-hosts=${this.#hostsFile}`,
      `--listen-address=${this.host}`,
      '--bind-interfaces',
      `--port=${this.port}`,
      `--local-ttl=${this.#ttl}`,
      '--pid-file=',
      '--cache-size=0',
    ];
    const unanswered = this.#unanswered;
    if (unanswered === 'nxdomain') args.push(`--local=/${this.#domain}/`);
    else if (typeof unanswered === 'object') {
      const { host, port } = unanswered.forwardTo;
      args.push(`--server=/${this.#domain}/${host}#${port}`);
    }
    if (process.getuid?.() === 0) args.push('--user=root');
    const child = spawn(this.#binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    process.once('exit', this.#killOnExit);
    const feed = (chunk: Buffer): void => {
      for (const line of chunk.toString().split('\n')) {
        if (line.length === 0) continue;
        this.#output.push(line);
        if (this.#output.length > 200) this.#output.shift();
        this.#onLine?.(line);
      }
    };
    child.stdout?.on('data', feed);
    child.stderr?.on('data', feed);
    await this.#waitFor((line) => line.includes(`read ${this.#hostsFile}`), 'start');
  }

  /** Replaces the A/AAAA records and waits until dnsmasq has re-read them. */
  async setHosts(hosts: Readonly<Record<string, readonly string[]>>): Promise<void> {
    await writeFile(this.#hostsFile, hostsText(hosts));
    if (!this.running) return;
    const reread = this.#waitFor((line) => line.includes(`read ${this.#hostsFile}`), 'SIGHUP');
    this.#child?.kill('SIGHUP');
    await reread;
  }

  /** Replaces the SRV records; restarts dnsmasq (on the same port) when it runs. */
  async setSrv(srv: readonly SrvRecordSpec[]): Promise<void> {
    await writeFile(this.#confFile, confText(srv));
    if (!this.running) return;
    await this.stop();
    await this.start();
  }

  /** Stops dnsmasq (SIGTERM, then SIGKILL after 2 s). The port and folder stay for `start()`. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    process.removeListener('exit', this.#killOnExit);
    await stopChild(child, 2000);
  }

  /** Stops dnsmasq and removes its folder. */
  async close(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  #waitFor(match: (line: string) => boolean, what: string): Promise<void> {
    const child = this.#child;
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.#onLine = undefined;
        child?.removeListener('exit', onExit);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onExit = (code: number | null): void =>
        done(new Error(`dnsmasq exited (code ${code}) during ${what}:\n${this.output}`));
      const timer = setTimeout(
        () =>
          done(new Error(`dnsmasq did not finish ${what} within ${START_TIMEOUT_MS} ms:\n${this.output}`)),
        START_TIMEOUT_MS,
      );
      this.#onLine = (line) => {
        if (match(line)) done();
      };
      child?.once('exit', onExit);
    });
  }
}

/**
 * Starts dnsmasq on 127.0.0.1 with a free port, a temporary folder and the
 * given records. Retries with another port if the chosen one was taken.
 *
 * @example
 * ```ts
 * const server = await startDnsmasq({
 *   hosts: { 'a.svc.test': ['127.0.0.11'] },
 *   srv: [{ name: '_grpc._tcp.svc.test', target: 'a.svc.test', port: 50051, weight: 5 }],
 * });
 * ```
 */
export async function startDnsmasq(options: DnsmasqOptions = {}): Promise<Dnsmasq> {
  const dir = await mkdtemp(join(tmpdir(), 'grpc-tower-dnsmasq-'));
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const server = new Dnsmasq(dir, await freePort('127.0.0.1', { udp: true }), options);
    await server.writeRecords(options);
    try {
      await server.start();
      return server;
    } catch (err) {
      lastError = err;
      await server.stop();
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

/**
 * A DNS server that reads every query and never answers (UDP on a loopback
 * address): the upstream of a dnsmasq whose forwarded queries must time out.
 *
 * @example
 * ```ts
 * const hole = await startSilentDnsServer();
 * const server = await startDnsmasq({ unanswered: { forwardTo: hole } });
 * ```
 */
export interface SilentDnsServer {
  readonly host: string;
  readonly port: number;
  /** Queries received so far. */
  readonly queries: number;
  close(): Promise<void>;
}

/**
 * Starts a {@link SilentDnsServer} on `host` (default `127.0.0.2`) with a
 * port the kernel picks.
 *
 * @example
 * ```ts
 * const hole = await startSilentDnsServer('127.0.0.3');
 * await hole.close();
 * ```
 */
export function startSilentDnsServer(host = '127.0.0.2'): Promise<SilentDnsServer> {
  const socket = createSocket('udp4');
  let queries = 0;
  socket.on('message', () => {
    queries++;
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: host, port: 0 }, () => {
      socket.removeListener('error', reject);
      resolve({
        host,
        port: socket.address().port,
        get queries() {
          return queries;
        },
        close: () => new Promise<void>((done) => socket.close(() => done())),
      });
    });
  });
}
