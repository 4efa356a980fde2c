/**
 * nginx as a real HTTP/2 peer for the dispatcher's tests: Debian's nginx
 * serving cleartext HTTP/2 (h2c, `listen … http2`) on several loopback
 * addresses, one `server` per address answering with its own name
 * (`return 200`), one worker process. Everything it writes (pid file,
 * logs, temp folders) stays in a temporary folder; it runs in the
 * foreground as a child of this process. `reload()` is `nginx -s reload`:
 * new workers take over and the old ones close their connections with
 * GOAWAY once their streams are done. The access log names each request's
 * connection, so a test can count the connections clients opened.
 *
 * Started as bench/lib/nginx.ts starts it (the bench's gRPC proxy), with
 * a configuration of its own.
 *
 * @module
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The nginx binary: `/usr/sbin/nginx`, else `nginx` on PATH. */
export const NGINX = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';

/** One request in nginx's access log. */
export interface NginxRequest {
  /** nginx's connection serial number: a new number is a new connection. */
  readonly connection: number;
  readonly server: string;
  readonly method: string;
  readonly uri: string;
  readonly status: number;
}

/** A running nginx. */
export interface NginxPool {
  /** `host:port` of each server, in the order of the names. */
  readonly addresses: readonly string[];
  readonly port: number;
  /** The master's process id. */
  readonly pid: number;
  /** `nginx -s reload`; resolves once a new worker runs and the old ones were told to leave. */
  reload(): Promise<void>;
  /** The requests logged so far. */
  requests(): Promise<NginxRequest[]>;
  /** Stops nginx (graceful, then forced) and removes its folder. */
  stop(): Promise<void>;
}

/** Options of {@link startNginxPool}. */
export interface NginxPoolOptions {
  /** One server per host, all on `port`. */
  readonly hosts: readonly string[];
  readonly port: number;
  /** Each server's name, in its answers; default `nginx-1`, `nginx-2`… */
  readonly names?: readonly string[];
  /** Requests per connection before nginx closes it with GOAWAY; default 1000, nginx's own. */
  readonly keepaliveRequests?: number;
}

function configText(dir: string, options: NginxPoolOptions, names: readonly string[]): string {
  const servers = options.hosts
    .map(
      (host, i) => `  server {
    listen ${host}:${options.port} http2;
    server_name ${names[i]};
    location / {
      default_type application/json;
      return 200 '{"server":"${names[i]}","uri":"$request_uri"}';
    }
  }`,
    )
    .join('\n');
  return `# written by packages/tower/src/undici/test/nginx.ts for one test file
worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events {
  worker_connections 1024;
}
http {
  log_format requests '$connection $server_name $request_method $request_uri $status';
  access_log ${join(dir, 'access.log')} requests;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  keepalive_requests ${options.keepaliveRequests ?? 1000};
  http2_max_concurrent_streams 128;
${servers}
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

/** The worker processes of the master `pid`. */
async function workersOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(Number);
}

/**
 * Writes the configuration into a new temporary folder and starts nginx;
 * resolves once every address accepts connections and the worker runs.
 *
 * @example
 * ```ts
 * const pool = await startNginxPool({ hosts: ['127.0.0.20', '127.0.0.21'], port: await freePort('127.0.0.20') });
 * ```
 */
export async function startNginxPool(options: NginxPoolOptions): Promise<NginxPool> {
  const names = options.names ?? options.hosts.map((_, i) => `nginx-${i + 1}`);
  const dir = await mkdtemp(join(tmpdir(), 'grpc-tower-undici-nginx-'));
  // the worker runs as an unprivileged user when nginx starts as root
  await chmod(dir, 0o755);
  const confFile = join(dir, 'nginx.conf');
  await writeFile(confFile, configText(dir, options, names));
  const args = ['-p', dir, '-e', join(dir, 'error.log'), '-c', confFile];
  const child: ChildProcess = spawn(NGINX, args, { stdio: ['ignore', 'ignore', 'pipe'] });
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
  const cleanup = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
  };
  const errorLog = async (): Promise<string> =>
    `${stderr}${await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')}`.trim();
  const pid = child.pid ?? -1;
  const deadline = performance.now() + 10_000;
  const up = async (): Promise<boolean> =>
    (await Promise.all(options.hosts.map((h) => canConnect(h, options.port)))).every(Boolean) &&
    (await workersOf(pid)).length > 0;
  while (!(await up())) {
    if (child.exitCode !== null || child.signalCode !== null || performance.now() > deadline) {
      const log = await errorLog();
      child.kill('SIGKILL');
      await exited;
      await cleanup();
      throw new Error(`nginx did not start: ${log || 'no output'}`);
    }
    await sleep(20);
  }
  return {
    addresses: options.hosts.map((h) => `${h}:${options.port}`),
    port: options.port,
    pid,
    async reload() {
      const before = new Set(await workersOf(pid));
      await new Promise<void>((resolve, reject) =>
        execFile(NGINX, [...args, '-s', 'reload'], (err) => (err ? reject(err) : resolve())),
      );
      const until = performance.now() + 10_000;
      while ((await workersOf(pid)).every((w) => before.has(w))) {
        if (performance.now() > until) throw new Error(`nginx did not reload: ${await errorLog()}`);
        await sleep(10);
      }
    },
    async requests() {
      const text = await readFile(join(dir, 'access.log'), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => {
          const [connection, server, method, uri, status] = line.split(' ');
          return {
            connection: Number(connection),
            server: String(server),
            method: String(method),
            uri: String(uri),
            status: Number(status),
          };
        });
    },
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
