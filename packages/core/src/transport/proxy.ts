/**
 * HTTP CONNECT proxies, as grpc-js uses them by default: the proxy comes
 * from the environment (`grpc_proxy`, else `https_proxy`, else
 * `http_proxy`; an `http://` URL, with optional user info for Basic
 * authentication), a server whose host ends with an entry of
 * `no_grpc_proxy` (else `no_proxy`), or whose IPv4 address falls in a CIDR
 * block listed there, is reached directly, and `grpc.enable_http_proxy: 0`
 * turns proxies off. The tunnel is opened with `CONNECT host:port` before
 * TLS and HTTP/2 run through it.
 *
 * @internal
 * @module
 */
import { isIPv4, type Socket } from 'node:net';

/** A proxy to go through. */
export interface HttpProxy {
  readonly host: string;
  readonly port: number;
  /** `host:port`, for messages. */
  readonly address: string;
  /** `user:password` for Basic authentication, when the URL has them. */
  readonly credentials: string | undefined;
  /** The environment variable it came from. */
  readonly from: string;
}

const ipToInt = (ip: string): number => ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);

/** Whether `host` is excluded from proxying by `no_grpc_proxy` / `no_proxy`. */
function excluded(host: string, env: NodeJS.ProcessEnv): boolean {
  const list = env.no_grpc_proxy || env.no_proxy;
  if (!list) return false;
  for (const raw of list.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const [ip, bits] = entry.split('/');
    if (bits !== undefined && ip !== undefined && isIPv4(ip) && isIPv4(host)) {
      const prefix = Number(bits);
      if (Number.isInteger(prefix) && prefix >= 0 && prefix <= 32) {
        const size = 2 ** (32 - prefix);
        if (Math.floor(ipToInt(host) / size) === Math.floor(ipToInt(ip) / size)) return true;
        continue;
      }
    }
    if (host.endsWith(entry)) return true;
  }
  return false;
}

/**
 * The proxy the environment names for a server on `host`, or `undefined`
 * (none set, excluded, or not an `http://` URL: grpc-js ignores those too).
 *
 * @example
 * ```ts
 * proxyFor('10.0.0.7', { grpc_proxy: 'http://proxy.internal:3128' }); // { host: 'proxy.internal', port: 3128, … }
 * ```
 */
export function proxyFor(host: string, env: NodeJS.ProcessEnv = process.env): HttpProxy | undefined {
  const from = env.grpc_proxy
    ? 'grpc_proxy'
    : env.https_proxy
      ? 'https_proxy'
      : env.http_proxy
        ? 'http_proxy'
        : '';
  if (from === '') return undefined;
  let url: URL;
  try {
    url = new URL(env[from] as string);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' || excluded(host, env)) return undefined;
  const port = url.port === '' ? 80 : Number(url.port);
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const credentials =
    url.username === ''
      ? undefined
      : decodeURIComponent(url.password === '' ? url.username : `${url.username}:${url.password}`);
  return { host: hostname, port, address: `${url.hostname}:${port}`, credentials, from };
}

/** The most a proxy's answer to CONNECT may be before its end, in bytes. */
const MAX_RESPONSE_HEAD = 16 * 1024;

/**
 * Asks the proxy `socket` is connected to for a tunnel to `target`
 * (`host:port`); resolves once it answered 2xx, with the bytes after its
 * answer put back into the socket.
 *
 * @example
 * ```ts
 * await openTunnel(socket, '10.0.0.7:50051', proxy);
 * ```
 */
export function openTunnel(socket: Socket, target: string, proxy: HttpProxy): Promise<void> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    const done = (err?: Error): void => {
      socket.off('data', onData);
      socket.off('error', done);
      socket.off('close', onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onClose = (): void =>
      done(new Error(`proxy ${proxy.address} closed the connection before answering CONNECT`));
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_RESPONSE_HEAD)
          done(new Error(`proxy ${proxy.address} sent an answer without an end`));
        return;
      }
      socket.pause();
      const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const rest = head.subarray(end + 4);
      if (!/^HTTP\/1\.[01] 2\d\d/.test(statusLine)) {
        done(new Error(`proxy ${proxy.address} (${proxy.from}) refused CONNECT ${target}: ${statusLine}`));
        return;
      }
      if (rest.length > 0) socket.unshift(rest);
      done();
    };
    socket.on('data', onData);
    socket.on('error', done);
    socket.on('close', onClose);
    const auth =
      proxy.credentials === undefined
        ? ''
        : `Proxy-Authorization: Basic ${Buffer.from(proxy.credentials).toString('base64')}\r\n`;
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
  });
}
