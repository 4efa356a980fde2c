/**
 * The echo service's handlers (`Unary`, `ServerStream`, `ClientStream`,
 * `Bidi`) over the controls a server shares between them, and what they
 * share: the metadata they echo, the failures they send (with a
 * `google.rpc.Status` in `grpc-status-details-bin`), waits that end when a
 * call is cancelled, and a stream's backpressure.
 *
 * @module
 */
import * as grpc from '@grpc/grpc-js';
import type { EchoMethod, EchoReply, EchoRequest } from './echo.js';

/**
 * The server-side controls shared by the in-process and child-process
 * servers.
 */
export interface Controls {
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
export function echoHandlers(controls: Controls): grpc.UntypedServiceImplementation {
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
