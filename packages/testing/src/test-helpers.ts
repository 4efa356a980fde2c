/**
 * Promise wrappers around grpc-js client calls, used by this package's own
 * tests: each resolves once the call's status arrived, with the replies,
 * the response headers and the status (never rejects on a gRPC error).
 *
 * @module
 */
import type * as grpc from '@grpc/grpc-js';

/**
 * What a finished call produced.
 *
 * @example
 * ```ts
 * const out: Outcome<EchoReply> = await streamOutcome(client.ServerStream({ count: 2 }));
 * ```
 */
export interface Outcome<T> {
  /** Replies in arrival order. */
  readonly replies: T[];
  /** Response headers, when any arrived. */
  readonly headers: grpc.Metadata | undefined;
  /** The final status, with trailers in `metadata`. */
  readonly status: grpc.StatusObject;
  /** The error the call ended with (status not OK). */
  readonly error: grpc.ServiceError | undefined;
}

/** A call's callback, as grpc-js clients take it. */
type Callback<T> = (error: grpc.ServiceError | null, reply?: T) => void;

/** The events of any client call object. */
interface CallEvents {
  on(event: 'metadata', listener: (metadata: grpc.Metadata) => void): unknown;
  on(event: 'status', listener: (status: grpc.StatusObject) => void): unknown;
}

/**
 * Starts a call that answers through a callback (unary, client streaming)
 * and waits for both its callback and its status.
 *
 * @example
 * ```ts
 * const out = await callbackOutcome<EchoReply>((cb) => client.Unary({ message: 'a' }, md, {}, cb));
 * ```
 */
export function callbackOutcome<T>(start: (callback: Callback<T>) => CallEvents): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    let result: { error: grpc.ServiceError | undefined; reply: T | undefined } | undefined;
    let status: grpc.StatusObject | undefined;
    const settle = (): void => {
      if (result === undefined || status === undefined) return;
      resolve({
        replies: result.reply === undefined ? [] : [result.reply],
        headers,
        status,
        error: result.error,
      });
    };
    const call = start((error, reply) => {
      result = { error: error ?? undefined, reply: error === null ? reply : undefined };
      settle();
    });
    call.on('metadata', (m) => {
      headers = m;
    });
    call.on('status', (s) => {
      status = s;
      settle();
    });
  });
}

/**
 * Reads a call that answers with a stream (server streaming, bidi) to its status.
 *
 * @example
 * ```ts
 * const out = await streamOutcome(client.ServerStream({ count: 3 }));
 * out.replies.length; // 3
 * ```
 */
export function streamOutcome<T>(call: grpc.ClientReadableStream<T>): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    const replies: T[] = [];
    let headers: grpc.Metadata | undefined;
    let error: grpc.ServiceError | undefined;
    let status: grpc.StatusObject | undefined;
    let ended = false;
    const settle = (): void => {
      if (status !== undefined && ended) resolve({ replies, headers, status, error });
    };
    call.on('metadata', (m: grpc.Metadata) => {
      headers = m;
    });
    call.on('data', (reply: T) => {
      replies.push(reply);
    });
    call.on('error', (e: grpc.ServiceError) => {
      error = e;
    });
    // grpc-js ends the readable side before it emits 'status'; the last replies come before 'end'
    call.on('end', () => {
      ended = true;
      settle();
    });
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      settle();
    });
  });
}
