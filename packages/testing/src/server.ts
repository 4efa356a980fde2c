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
import {
  ECHO_SERVICE_NAME,
  type EchoMethod,
  type EchoReply,
  type EchoRequest,
  loadEchoPackage,
} from './echo.js';

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

/**
 * The server-side controls shared by the in-process and child-process
 * servers.
 */
interface Controls {
  /** The server name; the address, known once bound, unless a name was given. */
  name: string;
  latencyMs: number;
  failRemaining: number;
  failCode: number;
  failDetails: string;
  readonly counts: Record<EchoMethod, number>;
  total: number;
}

/** A failure decided when the call arrived. */
interface Fault {
  readonly code: number;
  readonly details: string;
}

/** The status a handler fails a call with. */
type StatusResponse = Partial<grpc.StatusObject>;

/** A call whose replies are written as a stream. */
type WritableCall =
  | grpc.ServerWritableStream<EchoRequest, EchoReply>
  | grpc.ServerDuplexStream<EchoRequest, EchoReply>;

/** A request with every field present. */
type FullRequest = Required<EchoRequest>;

/**
 * Encodes a `google.rpc.Status` message (`code` = field 1, `message` =
 * field 2, no details) — the bytes the echo server puts in the
 * `grpc-status-details-bin` trailer of every failure it sends.
 *
 * @example
 * ```ts
 * expect(err.metadata.get('grpc-status-details-bin')[0]).toEqual(encodeRpcStatus(14, 'down'));
 * ```
 */
export function encodeRpcStatus(code: number, message: string): Buffer {
  const text = Buffer.from(message, 'utf8');
  const parts: number[] = [];
  if (code !== 0) {
    parts.push(0x08, ...varint(code));
  }
  if (text.length > 0) {
    parts.push(0x12, ...varint(text.length));
  }
  return text.length > 0 ? Buffer.concat([Buffer.from(parts), text]) : Buffer.from(parts);
}

function varint(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
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

/** Waits `ms`; resolves true when the time passed, false when `signal` aborted first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** An AbortSignal that aborts when the call is cancelled (by the client, a deadline or shutdown). */
function cancelSignal(call: {
  readonly cancelled: boolean;
  once(event: 'cancelled', listener: () => void): unknown;
}): AbortSignal {
  const controller = new AbortController();
  if (call.cancelled) controller.abort();
  else call.once('cancelled', () => controller.abort());
  return controller.signal;
}

function fullRequest(request: EchoRequest): FullRequest {
  return {
    message: request.message ?? '',
    payload: request.payload ?? Buffer.alloc(0),
    delayMs: request.delayMs ?? 0,
    failCode: request.failCode ?? 0,
    failDetails: request.failDetails ?? '',
    count: request.count ?? 0,
    echoMetadata: request.echoMetadata ?? false,
    headersThenFail: request.headersThenFail ?? 0,
  };
}

/** The `x-` request metadata as response headers, and as trailers named `<key>-trailer`. */
function echoed(request: grpc.Metadata): { headers: grpc.Metadata; trailers: grpc.Metadata } {
  const headers = new grpc.Metadata();
  const trailers = new grpc.Metadata();
  for (const key of Object.keys(request.getMap())) {
    if (!key.startsWith('x-')) continue;
    const trailerKey = key.endsWith('-bin') ? `${key.slice(0, -4)}-trailer-bin` : `${key}-trailer`;
    for (const value of request.get(key)) {
      headers.add(key, value);
      trailers.add(trailerKey, value);
    }
  }
  return { headers, trailers };
}

/** The status of a failure: `x-fail-reason` and `grpc-status-details-bin` added to `trailers`. */
function failure(code: number, details: string, trailers?: grpc.Metadata): StatusResponse {
  const metadata = trailers?.clone() ?? new grpc.Metadata();
  metadata.set('x-fail-reason', details.replace(/[^ -~]/g, '?'));
  metadata.set('grpc-status-details-bin', encodeRpcStatus(code, details));
  return { code, details, metadata };
}

/** Waits until a writable call drains or is cancelled; false when cancelled. */
function drained(call: WritableCall, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => (): void => {
      call.off('drain', onDrain);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onDrain = done(true);
    const onAbort = done(false);
    call.once('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Reads a client stream one message at a time; `next()` resolves with the
 * next message, `undefined` at the end of the stream or on cancellation.
 */
function messageQueue(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, signal: AbortSignal) {
  const queue: EchoRequest[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const poke = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  call.on('data', (message: EchoRequest) => {
    queue.push(message);
    poke();
  });
  call.on('end', () => {
    ended = true;
    poke();
  });
  call.on('error', () => {
    ended = true;
    poke();
  });
  signal.addEventListener('abort', poke, { once: true });
  return {
    async next(): Promise<EchoRequest | undefined> {
      for (;;) {
        if (signal.aborted) return undefined;
        const message = queue.shift();
        if (message !== undefined) return message;
        if (ended) return undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
  };
}

/** Builds the echo handlers over shared controls. */
function echoHandlers(controls: Controls): grpc.UntypedServiceImplementation {
  const begin = (method: EchoMethod): { latencyMs: number; fault: Fault | undefined } => {
    controls.total += 1;
    controls.counts[method] += 1;
    let fault: Fault | undefined;
    if (controls.failRemaining > 0) {
      controls.failRemaining -= 1;
      fault = { code: controls.failCode, details: controls.failDetails };
    }
    return { latencyMs: controls.latencyMs, fault };
  };
  const reply = (request: FullRequest, index: number): EchoReply => ({
    message: request.message,
    payload: Buffer.from(request.payload),
    server: controls.name,
    index,
    received: 0,
  });

  const unary: grpc.handleUnaryCall<EchoRequest, EchoReply> = (call, callback) => {
    const { latencyMs, fault } = begin('Unary');
    const signal = cancelSignal(call);
    void (async () => {
      if (!(await sleep(latencyMs, signal))) return;
      if (fault !== undefined) return callback(failure(fault.code, fault.details));
      const request = fullRequest(call.request);
      if (!(await sleep(request.delayMs, signal))) return;
      const { headers, trailers } = request.echoMetadata
        ? echoed(call.metadata)
        : { headers: new grpc.Metadata(), trailers: new grpc.Metadata() };
      if (request.failCode !== 0) {
        return callback(failure(request.failCode, request.failDetails, trailers));
      }
      call.sendMetadata(headers);
      if (request.headersThenFail !== 0) {
        return callback(failure(request.headersThenFail, request.failDetails, trailers));
      }
      callback(null, reply(request, 0), trailers);
    })().catch((err: unknown) => callback(failure(grpc.status.INTERNAL, String(err))));
  };

  const serverStream: grpc.handleServerStreamingCall<EchoRequest, EchoReply> = (call) => {
    const { latencyMs, fault } = begin('ServerStream');
    const signal = cancelSignal(call);
    const fail = (status: StatusResponse): void => {
      if (!signal.aborted) call.emit('error', status);
    };
    void (async () => {
      if (!(await sleep(latencyMs, signal))) return;
      if (fault !== undefined) return fail(failure(fault.code, fault.details));
      const request = fullRequest(call.request);
      const { headers, trailers } = request.echoMetadata
        ? echoed(call.metadata)
        : { headers: new grpc.Metadata(), trailers: new grpc.Metadata() };
      if (request.failCode !== 0) {
        if (!(await sleep(request.delayMs, signal))) return;
        return fail(failure(request.failCode, request.failDetails, trailers));
      }
      call.sendMetadata(headers);
      for (let index = 0; index < request.count; index++) {
        if (!(await sleep(request.delayMs, signal))) return;
        if (!call.write(reply(request, index)) && !(await drained(call, signal))) return;
      }
      if (request.headersThenFail !== 0) {
        if (request.count === 0 && !(await sleep(request.delayMs, signal))) return;
        return fail(failure(request.headersThenFail, request.failDetails, trailers));
      }
      if (!signal.aborted) call.end(trailers);
    })().catch((err: unknown) => fail(failure(grpc.status.INTERNAL, String(err))));
  };

  const clientStream: grpc.handleClientStreamingCall<EchoRequest, EchoReply> = (call, callback) => {
    const { latencyMs, fault } = begin('ClientStream');
    const signal = cancelSignal(call);
    const messages = messageQueue(call, signal);
    void (async () => {
      if (!(await sleep(latencyMs, signal))) return;
      if (fault !== undefined) return callback(failure(fault.code, fault.details));
      const texts: string[] = [];
      const payloads: Buffer[] = [];
      let echo = false;
      const metadata = (): { headers: grpc.Metadata; trailers: grpc.Metadata } =>
        echo ? echoed(call.metadata) : { headers: new grpc.Metadata(), trailers: new grpc.Metadata() };
      for (;;) {
        const raw = await messages.next();
        if (raw === undefined) break;
        const request = fullRequest(raw);
        echo ||= request.echoMetadata;
        if (!(await sleep(request.delayMs, signal))) return;
        if (request.failCode !== 0) {
          return callback(failure(request.failCode, request.failDetails, metadata().trailers));
        }
        if (request.headersThenFail !== 0) {
          const { headers, trailers } = metadata();
          call.sendMetadata(headers);
          return callback(failure(request.headersThenFail, request.failDetails, trailers));
        }
        texts.push(request.message);
        payloads.push(Buffer.from(request.payload));
      }
      if (signal.aborted) return;
      const { headers, trailers } = metadata();
      call.sendMetadata(headers);
      callback(
        null,
        {
          message: texts.join(','),
          payload: Buffer.concat(payloads),
          server: controls.name,
          index: 0,
          received: texts.length,
        },
        trailers,
      );
    })().catch((err: unknown) => callback(failure(grpc.status.INTERNAL, String(err))));
  };

  const bidi: grpc.handleBidiStreamingCall<EchoRequest, EchoReply> = (call) => {
    const { latencyMs, fault } = begin('Bidi');
    const signal = cancelSignal(call);
    const messages = messageQueue(call, signal);
    const fail = (status: StatusResponse): void => {
      if (!signal.aborted) call.emit('error', status);
    };
    void (async () => {
      if (!(await sleep(latencyMs, signal))) return;
      if (fault !== undefined) return fail(failure(fault.code, fault.details));
      let echo = false;
      let headersSent = false;
      const metadata = (): { headers: grpc.Metadata; trailers: grpc.Metadata } =>
        echo ? echoed(call.metadata) : { headers: new grpc.Metadata(), trailers: new grpc.Metadata() };
      const sendHeaders = (): void => {
        if (headersSent) return;
        headersSent = true;
        call.sendMetadata(metadata().headers);
      };
      for (let index = 0; ; index++) {
        const raw = await messages.next();
        if (raw === undefined) break;
        const request = fullRequest(raw);
        echo ||= request.echoMetadata;
        if (!(await sleep(request.delayMs, signal))) return;
        if (request.failCode !== 0) {
          return fail(failure(request.failCode, request.failDetails, metadata().trailers));
        }
        sendHeaders();
        if (request.headersThenFail !== 0) {
          return fail(failure(request.headersThenFail, request.failDetails, metadata().trailers));
        }
        if (!call.write(reply(request, index)) && !(await drained(call, signal))) return;
      }
      if (signal.aborted) return;
      sendHeaders();
      call.end(metadata().trailers);
    })().catch((err: unknown) => fail(failure(grpc.status.INTERNAL, String(err))));
  };

  return { Unary: unary, ServerStream: serverStream, ClientStream: clientStream, Bidi: bidi };
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
