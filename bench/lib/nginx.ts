/**
 * nginx as a layer-7 gRPC proxy for the proxy scenario: Debian's nginx
 * with its built-in `ngx_http_grpc_module` (`grpc_pass`) and HTTP/2 on the
 * listening side, a `least_conn` upstream with keepalive connections, one
 * worker process. Everything nginx writes (pid file, error log, temp
 * folders) stays in a temporary folder; it runs in the foreground
 * (`daemon off`) as a child of this process and is stopped after.
 *
 * @module
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../packages/discover/src/test/index.js';
import { descendants, processCpuUs } from './cpu.js';
import { nginxBinary } from './machine.js';

/**
 * A running nginx.
 *
 * @example
 * ```ts
 * const proxy = await startNginx({ host: '127.0.0.252', upstreams: servers.map((s) => s.address) });
 * const client = createEchoClient(proxy.address);
 * await proxy.stop();
 * ```
 */
export interface Nginx {
  /** `host:port` it listens on (plaintext HTTP/2, or TLS with `tls`). */
  readonly address: string;
  /** The master process id. */
  readonly pid: number;
  /** The worker process ids. */
  readonly workers: readonly number[];
  /** The configuration it runs with. */
  readonly config: string;
  /** CPU time used so far by the master and its workers, µs. */
  cpuUs(): number;
  /** Stops nginx (graceful, then forced) and removes its folder. */
  stop(): Promise<void>;
}

/**
 * Options of {@link startNginx}.
 *
 * @example
 * ```ts
 * const opts: NginxOptions = { host: '127.0.0.252', upstreams: ['127.0.0.249:40001'] };
 * ```
 */
export interface NginxOptions {
  readonly host: string;
  /** The servers behind it, `host:port`. */
  readonly upstreams: readonly string[];
  /** Idle keepalive connections kept to the upstreams; default 64. */
  readonly keepalive?: number;
  /** Streams a client connection may carry before nginx ends it with GOAWAY; default 10,000,000. */
  readonly keepaliveRequests?: number;
  /**
   * Listen with TLS (ALPN `h2`) with this key and certificate (PEM), instead
   * of plaintext HTTP/2.
   */
  readonly tls?: { readonly key: string | Buffer; readonly cert: string | Buffer };
  /**
   * More directives for the `server` block, each without its `;` (for
   * example `client_max_body_size 1k` or `grpc_read_timeout 1s`).
   */
  readonly directives?: readonly string[];
}

/**
 * Checks that nginx is installed and has HTTP/2 and the gRPC proxy module;
 * returns its version line, or throws saying what to install.
 *
 * @example
 * ```ts
 * checkNginx(); // 'nginx/1.22.1'
 * ```
 */
export function checkNginx(): string {
  const r = spawnSync(nginxBinary(), ['-V'], { encoding: 'utf8', timeout: 5_000 });
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(
      'nginx is not installed: the proxy scenario needs it (Debian: apt-get install nginx, or run scripts/setup-system.mjs)',
    );
  }
  const text = `${r.stdout}\n${r.stderr}`;
  if (!text.includes('--with-http_v2_module')) throw new Error('this nginx was built without HTTP/2');
  if (text.includes('--without-http_grpc_module'))
    throw new Error('this nginx was built without the gRPC module');
  return text.match(/nginx version: (\S+)/)?.[1] ?? 'nginx';
}

function configText(dir: string, listen: string, options: NginxOptions): string {
  const servers = options.upstreams.map((u) => `    server ${u};`).join('\n');
  const tlsLines =
    options.tls === undefined
      ? ''
      : `    ssl_certificate ${join(dir, 'server.crt')};\n    ssl_certificate_key ${join(dir, 'server.key')};\n`;
  const extra = (options.directives ?? []).map((d) => `    ${d};\n`).join('');
  return `# written by bench/lib/nginx.ts for one benchmark run
worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events {
  worker_connections 4096;
}
http {
  access_log off;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  # nginx closes a client connection after 1000 requests by default (GOAWAY)
  keepalive_requests ${options.keepaliveRequests ?? 10_000_000};
  keepalive_timeout 300s;
  http2_max_concurrent_streams 1024;
  upstream echo {
    least_conn;
${servers}
    keepalive ${options.keepalive ?? 64};
    keepalive_requests 10000000;
    keepalive_timeout 300s;
  }
  server {
    listen ${listen}${options.tls === undefined ? '' : ' ssl'} http2;
${tlsLines}${extra}    location / {
      grpc_pass grpc://echo;
    }
  }
}
`;
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Writes a configuration into a new temporary folder and starts nginx on
 * `host` with a free port; resolves once it accepts connections.
 *
 * @example
 * ```ts
 * const proxy = await startNginx({ host: '127.0.0.252', upstreams: ['127.0.0.249:40001', '127.0.0.250:40002'] });
 * ```
 */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  checkNginx();
  const dir = await mkdtemp(join(tmpdir(), 'grpc-tower-bench-nginx-'));
  // the worker runs as an unprivileged user when nginx starts as root
  await chmod(dir, 0o755);
  const port = await freePort(options.host);
  const address = `${options.host}:${port}`;
  const config = configText(dir, address, options);
  const confFile = join(dir, 'nginx.conf');
  await writeFile(confFile, config);
  if (options.tls !== undefined) {
    await writeFile(join(dir, 'server.crt'), options.tls.cert);
    await writeFile(join(dir, 'server.key'), options.tls.key);
  }
  const child: ChildProcess = spawn(
    nginxBinary(),
    ['-p', dir, '-e', join(dir, 'error.log'), '-c', confFile],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4096);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const errorLog = async (): Promise<string> =>
    `${stderr}${await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')}`.trim();
  const cleanup = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = performance.now() + 10_000;
  while (!(await canConnect(options.host, port))) {
    if (child.exitCode !== null || child.signalCode !== null || performance.now() > deadline) {
      const log = await errorLog();
      child.kill('SIGKILL');
      await exited;
      await cleanup();
      throw new Error(`nginx did not start on ${address}: ${log || 'no output'}`);
    }
    await sleep(20);
  }
  const pid = child.pid ?? -1;
  // the master listens before it forks its worker: wait for the worker too
  let workers = descendants(pid);
  while (workers.length === 0 && performance.now() < deadline) {
    await sleep(20);
    workers = descendants(pid);
  }
  return {
    address,
    pid,
    workers,
    config,
    cpuUs: () => processCpuUs([pid, ...workers]),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
        child.kill('SIGQUIT');
        await exited;
        clearTimeout(force);
      }
      await cleanup();
    },
  };
}
