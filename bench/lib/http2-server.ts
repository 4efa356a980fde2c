/**
 * Starts the http2 scenario's server (`http2-child.ts`) in a child process
 * and stops it.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./http2-child.ts', import.meta.url));

/** A running HTTP/2 server child. */
export interface Http2Child {
  /** `host:port`. */
  readonly address: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/**
 * Spawns the server on `host` with TLS `key` and `cert` (PEM); resolves once it listens.
 *
 * @example
 * ```ts
 * const server = await spawnHttp2Server('127.0.0.253', key, cert);
 * ```
 */
export async function spawnHttp2Server(host: string, key: Buffer, cert: Buffer): Promise<Http2Child> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', CHILD, JSON.stringify({ host, key: key.toString(), cert: cert.toString() })],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      out += chunk;
      const line = out.split('\n')[0];
      if (out.includes('\n') && line !== undefined) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`the HTTP/2 server exited (${code}) before it listened`)));
    child.once('error', reject);
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return {
    address: `${host}:${port}`,
    pid: child.pid as number,
    async stop() {
      child.stdin?.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}
