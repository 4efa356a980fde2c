/**
 * An in-process grpc-js server for the echo service (`proto/echo.proto`)
 * with the controls tests need: added latency, injected failures, echoed
 * metadata, status details, optional `grpc.health.v1` health service
 * (gRPC A17, through the `grpc-health-check` package), graceful stop and
 * hard kill.
 *
 * Every call goes through the same steps: it is counted; if a `failNext`
 * budget is left, the call is marked to fail; it waits the server-wide
 * latency; then the marked failure is sent, or the request's own controls
 * (`delay_ms`, `fail_code`, `headers_then_fail`, `echo_metadata`) apply.
 * A cancelled call stops at once and clears its timers.
 *
 * @module
 */
import * as grpc from '@grpc/grpc-js';
import { ECHO_SERVICE_NAME, type EchoMethod, loadEchoPackage } from './echo.js';

import { type Controls, echoHandlers } from './handlers.js';

export { encodeRpcStatus } from './handlers.js';

/** Largest message the echo server sends or receives: 64 MiB. */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Options of {@link startEchoServer}.
 *
 * @example
 * ```ts
 * const opts: EchoServerOptions = { host: '127.0.0.3', name: 'b', health: true };
 * ```
 */
export interface EchoServerOptions {
  /** Host to bind; default `'127.0.0.1'`. Use distinct 127.0.0.x hosts per server. */
  readonly host?: string;
  /** Port to bind; default 0 (any free port). */
  readonly port?: number;
  /** The name put in every reply's `server` field; default the address. */
  readonly name?: string;
  /** Latency added to every call before it is handled, in ms; default 0. */
  readonly latencyMs?: number;
  /** Also serve `grpc.health.v1.Health`, SERVING for `''` and the echo service; default false. */
  readonly health?: boolean;
  /** Server credentials; default insecure. */
  readonly credentials?: grpc.ServerCredentials;
  /**
   * Extra grpc-js server options (`grpc.max_concurrent_streams`,
   * `grpc.max_connection_age_ms`…), over the 64 MiB message limits.
   */
  readonly serverOptions?: grpc.ServerOptions;
}

/**
 * A health status the server can be switched to.
 *
 * @example
 * ```ts
 * const s: ServingStatus = 'NOT_SERVING';
 * ```
 */
export type ServingStatus = 'SERVING' | 'NOT_SERVING';

/**
 * Calls the echo service has started: all of them, and per method. Health
 * checks are not counted.
 *
 * @example
 * ```ts
 * expect(server.calls.byMethod.Unary).toBe(3);
 * ```
 */
export interface EchoCallCounts {
  /** All calls started. */
  readonly total: number;
  /** Calls started per method. */
  readonly byMethod: Readonly<Record<EchoMethod, number>>;
}

/**
 * A running echo server.
 *
 * @example
 * ```ts
 * const server = await startEchoServer({ host: '127.0.0.2' });
 * server.failNext(2, grpc.status.UNAVAILABLE);
 * await server.stop();
 * ```
 */
export interface EchoServer {
  /** `host:port` (IPv6 hosts in brackets). */
  readonly address: string;
  /** The bound host. */
  readonly host: string;
  /** The bound port. */
  readonly port: number;
  /** The name in replies' `server` field. */
  readonly name: string;
  /** The underlying grpc-js server. */
  readonly grpcServer: grpc.Server;
  /** Calls started so far (a snapshot). */
  readonly calls: EchoCallCounts;
  /** Sets the latency added to each call that starts from now on, in ms. */
  setLatency(ms: number): void;
  /**
   * Makes the next `n` echo calls (of any type) fail with `code` and
   * `details`; replaces any earlier budget; `n = 0` clears it.
   */
  failNext(n: number, code: number, details?: string): void;
  /** Sets the health status of `service` (default `''`); throws unless `health` was on. */
  setServing(status: ServingStatus, service?: string): void;
  /**
   * Stops taking calls, lets the calls in flight finish for at most
   * `graceMs` (default 5000), then cancels the rest. Resolves once closed.
   */
  stop(graceMs?: number): Promise<void>;
  /** Closes every connection and cancels every call now. */
  kill(): void;
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function checkMs(where: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${where}: expected a finite number of ms >= 0, got ${String(value)}`);
  }
  return value;
}

function checkCode(where: string, code: number): number {
  if (!Number.isInteger(code) || code < 1 || code > 16) {
    throw new RangeError(`${where}: expected a gRPC status code from 1 to 16, got ${String(code)}`);
  }
  return code;
}

/**
 * Starts an echo server on `host:port` and resolves once it listens.
 * Rejects with an error naming the address when it cannot bind.
 *
 * @example
 * ```ts
 * const server = await startEchoServer({ host: '127.0.0.2', health: true });
 * const client = createEchoClient(server.address);
 * // ...
 * client.close();
 * await server.stop();
 * ```
 */
export async function startEchoServer(options: EchoServerOptions = {}): Promise<EchoServer> {
  const host = options.host ?? '127.0.0.1';
  const requestedPort = options.port ?? 0;
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
    throw new RangeError(`startEchoServer: port must be an integer from 0 to 65535, got ${requestedPort}`);
  }
  const controls: Controls = {
    name: options.name ?? '',
    latencyMs: checkMs('startEchoServer latencyMs', options.latencyMs ?? 0),
    failRemaining: 0,
    failCode: 0,
    failDetails: '',
    counts: { Unary: 0, ServerStream: 0, ClientStream: 0, Bidi: 0 },
    total: 0,
  };
  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    ...options.serverOptions,
  });
  grpcServer.addService(loadEchoPackage().EchoService, echoHandlers(controls));

  let health: { setStatus(service: string, status: ServingStatus): void } | undefined;
  if (options.health === true) {
    const { HealthImplementation } = await import('grpc-health-check');
    const impl = new HealthImplementation({ '': 'SERVING', [ECHO_SERVICE_NAME]: 'SERVING' });
    impl.addToServer(grpcServer);
    health = impl;
  }

  const bound = formatAddress(host, requestedPort);
  const port = await new Promise<number>((resolve, reject) => {
    grpcServer.bindAsync(bound, options.credentials ?? grpc.ServerCredentials.createInsecure(), (err, p) => {
      if (err !== null) {
        grpcServer.forceShutdown();
        reject(new Error(`echo server could not bind ${bound}: ${err.message}`, { cause: err }));
      } else {
        resolve(p);
      }
    });
  });
  const address = formatAddress(host, port);
  const name = options.name ?? address;
  controls.name = name;
  let stopped: Promise<void> | undefined;
  const stop = (graceMs = 5000): Promise<void> => {
    checkMs('EchoServer.stop graceMs', graceMs);
    stopped ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        grpcServer.forceShutdown();
        resolve();
      }, graceMs);
      grpcServer.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return stopped;
  };

  return {
    address,
    host,
    port,
    name,
    grpcServer,
    get calls(): EchoCallCounts {
      return { total: controls.total, byMethod: { ...controls.counts } };
    },
    setLatency(ms: number): void {
      controls.latencyMs = checkMs('EchoServer.setLatency', ms);
    },
    failNext(n: number, code: number, details = `injected failure from ${name}`): void {
      if (!Number.isInteger(n) || n < 0) {
        throw new RangeError(`EchoServer.failNext: n must be an integer >= 0, got ${String(n)}`);
      }
      controls.failRemaining = n;
      controls.failCode = n === 0 ? 0 : checkCode('EchoServer.failNext', code);
      controls.failDetails = details;
    },
    setServing(status: ServingStatus, service = ''): void {
      if (health === undefined) {
        throw new Error(`EchoServer.setServing: ${name} was started without health: true`);
      }
      health.setStatus(service, status);
    },
    stop,
    kill(): void {
      grpcServer.forceShutdown();
      stopped ??= Promise.resolve();
    },
  };
}

/**
 * Starts one echo server with the health service per host, all on one port
 * (as the pods of a Kubernetes Deployment share a container port), named
 * `pod-1`, `pod-2`…; tries another port when one is taken on some host.
 *
 * @example
 * ```ts
 * const pods = await startPods(pickHosts(4));
 * pods[0].port === pods[3].port; // true
 * ```
 */
export async function startPods(hosts: readonly string[]): Promise<EchoServer[]> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const started: EchoServer[] = [];
    try {
      for (const [i, host] of hosts.entries()) {
        started.push(
          await startEchoServer({ host, port: started[0]?.port ?? 0, name: `pod-${i + 1}`, health: true }),
        );
      }
      return started;
    } catch {
      for (const s of started) s.kill();
    }
  }
  throw new Error('could not start the pods on one port');
}
