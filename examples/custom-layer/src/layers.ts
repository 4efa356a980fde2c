// Two layers written by hand for the gRPC path.
//
// A layer is a function from the inner service to an outer one; its
// configuration lives in the closure, the work happens in `call`. On the
// gRPC path requests are `GrpcRequest` (method, metadata, serialized
// messages) and responses `GrpcResponse` (the endpoint that answered, the
// headers, the message stream and its final status).
import {
  type CallContext,
  type Layer,
  type Service,
  Status,
  type StatusCode,
  toGrpcTowerError,
} from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, GrpcStatusError } from '@grpc-tower/core/grpc';

// #region auth
/** Where the auth layer gets tokens: your identity provider's client. */
export type TokenSource = (signal: AbortSignal) => Promise<string>;

/**
 * Adds `authorization: Bearer <token>` to every call. The token is fetched
 * once and shared by all calls; when a call fails with UNAUTHENTICATED, the
 * token is dropped, a fresh one is fetched and the call is sent once more
 * (only if its request messages are still held for replay, which a unary
 * call's always are).
 */
export function bearerAuth(fetchToken: TokenSource): Layer<GrpcRequest, GrpcResponse> {
  let current: Promise<string> | undefined;
  const token = (ctx: CallContext): Promise<string> => {
    if (current === undefined) {
      const fetching = fetchToken(ctx.signal);
      current = fetching;
      // a failed fetch is not kept: the next call asks again
      fetching.catch(() => {
        if (current === fetching) current = undefined;
      });
    }
    return current;
  };
  const withToken = (req: GrpcRequest, value: string): GrpcRequest => {
    // the metadata may be shared with other attempts: change a copy
    const metadata = req.metadata.clone();
    metadata.set('authorization', `Bearer ${value}`);
    return { ...req, metadata };
  };
  return (inner: Service<GrpcRequest, GrpcResponse>) => ({
    async call(req, ctx) {
      const used = token(ctx);
      try {
        return await inner.call(withToken(req, await used), ctx);
      } catch (err) {
        const rejected = err instanceof GrpcStatusError && err.code === Status.UNAUTHENTICATED;
        if (!rejected || !req.messages.replayable) throw err;
        if (current === used) current = undefined; // the first call to see it refreshes it
        return inner.call(withToken(req, await token(ctx)), ctx);
      }
    },
  });
}
// #endregion auth

// #region log
/** One attempt as the log layer saw it. */
export interface AttemptLog {
  readonly method: string;
  /** 0 for the first attempt of a call, then 1, 2… (set by the retry layer above). */
  readonly attempt: number;
  /** The server that answered or failed, when known. */
  readonly endpoint: string | undefined;
  /** The final status code (for a stream: when it ended, not when it committed). */
  readonly code: StatusCode;
  readonly ms: number;
}

/**
 * Reports every attempt that passes through it. Put it below the retry
 * layer to see each attempt, above it to see each call. A call's response
 * resolves at its commit point; `done` settles with its final status, so the
 * log waits for that without holding the response back.
 */
export function logAttempts(log: (entry: AttemptLog) => void): Layer<GrpcRequest, GrpcResponse> {
  return (inner) => ({
    async call(req, ctx) {
      const started = performance.now();
      const ms = () => Math.round((performance.now() - started) * 10) / 10;
      try {
        const res = await inner.call(req, ctx);
        void res.done.then((status) =>
          log({
            method: req.method,
            attempt: req.attempt,
            endpoint: res.endpoint,
            code: status.code as StatusCode,
            ms: ms(),
          }),
        );
        return res;
      } catch (err) {
        const e = toGrpcTowerError(err);
        log({ method: req.method, attempt: req.attempt, endpoint: e.endpoint, code: e.code, ms: ms() });
        throw err;
      }
    },
  });
}
// #endregion log
