/**
 * gRPC's answers to the {@link Protocol} seam (gRPC A6), next to the
 * endpoints that speak it:
 * - a call is named by its method; attempt n carries
 *   `grpc-previous-rpc-attempts` (the endpoint writes it from
 *   `GrpcRequest.attempt`); the replay buffer of the call's messages
 *   decides whether it can be sent again; every call may be hedged;
 * - unary and client-streaming responses are whole (held until their
 *   status, their commit point) while streams commit at their headers; a
 *   whole response's status is known as it resolves, a stream's once
 *   `done` settles;
 * - a response that arrived is never a failure (the endpoint rejects with
 *   the status before the commit point); the policy's status codes are
 *   the retryable ones; `grpc-retry-pushback-ms` is the server's pushback;
 * - whether an attempt reached the server is the endpoint's `delivery`.
 *
 * @module
 */
import type { GrpcTowerError } from '../errors.js';
import { failureOrigin } from '../internal/failure.js';
import { MAX_TIMER_MS } from '../internal/timers.js';
import {
  type Protocol,
  type Pushback,
  type ResponseStatus,
  type RetryableCodes,
  neverReachedServer,
} from '../protocol.js';
import { Status } from '../status.js';
import { type GrpcRequest, type GrpcResponse, GrpcStatusError } from './types.js';

/**
 * The pushback header of gRPC A6.
 *
 * @example
 * ```ts
 * trailers.set(PUSHBACK_HEADER, '500'); // server side: retry after 500 ms
 * ```
 */
export const PUSHBACK_HEADER = 'grpc-retry-pushback-ms';

const NONE: Pushback = Object.freeze({ kind: 'none' });

/** The status of a response made elsewhere without `done` (a stand-in): it counts as OK. */
const OK_STATUS: ResponseStatus = Object.freeze({ code: Status.OK, details: '' });

/**
 * Reads the server pushback from a failed attempt's trailing metadata. Only
 * a `GrpcStatusError` carries trailers; any other failure has no pushback.
 * A value is valid when it is a decimal integer of digits only (no sign,
 * no spaces, no fraction) that fits a timer (at most 2^31 − 1 ms).
 *
 * @example
 * ```ts
 * const p = readPushback(err);
 * if (p.kind === 'stop') giveUp();
 * ```
 */
export function readPushback(err: GrpcTowerError | unknown): Pushback {
  if (!(err instanceof GrpcStatusError)) return NONE;
  const values = err.metadata.get(PUSHBACK_HEADER);
  if (values.length === 0) return NONE;
  const first = values[0];
  const text = typeof first === 'string' ? first : String(first);
  if (!/^\d{1,10}$/.test(text)) return { kind: 'stop', value: text };
  const ms = Number(text);
  if (ms > MAX_TIMER_MS) return { kind: 'stop', value: text };
  return { kind: 'delay', ms };
}

const whenStatus = (res: GrpcResponse, fn: (status: ResponseStatus) => void): void => {
  if (res.unary !== undefined) fn(res.unary.status as ResponseStatus);
  else if (res.done === undefined) fn(OK_STATUS);
  else void res.done.then(fn as (status: unknown) => void);
};

/**
 * The gRPC protocol (see the module documentation): what `retry()`,
 * `hedge()`, outlier detection and the telemetry's call layers read gRPC
 * calls by.
 *
 * @example
 * ```ts
 * grpcProtocol.wholeResponse({ ...req, kind: 'unary' }); // true: it commits at its status
 * const layer = retryWith(grpcProtocol, compileRetryPolicy({ maxAttempts: 3 })); // retry({ maxAttempts: 3 })
 * ```
 */
export const grpcProtocol: Protocol<GrpcRequest, GrpcResponse> = Object.freeze({
  name: 'grpc',
  method: (req: GrpcRequest) => req.method,
  attemptOf: (req: GrpcRequest) => req.attempt,
  attempt: (req: GrpcRequest, n: number): GrpcRequest => (n === req.attempt ? req : { ...req, attempt: n }),
  replayable: (req: GrpcRequest) => req.messages.replayable,
  hedgeable: () => true,
  wholeResponse: (req: GrpcRequest) => req.kind === 'unary' || req.kind === 'clientStream',
  statusOf: (res: GrpcResponse): ResponseStatus | undefined =>
    res.unary === undefined
      ? res.done === undefined
        ? OK_STATUS
        : undefined
      : (res.unary.status as ResponseStatus),
  whenStatus,
  failureOf: () => undefined,
  whenDone(res: GrpcResponse, done: (ok: boolean) => void): void {
    if (res.unary !== undefined) done(res.unary.status.code === Status.OK);
    else void res.done.then((status) => done(status.code === Status.OK));
  },
  abandon(res: GrpcResponse): void {
    if (res.unary === undefined) res.stream.cancel(Status.CANCELLED, 'attempt abandoned');
  },
  endpointOf: (res: GrpcResponse) => res.endpoint,
  origin: failureOrigin,
  neverReachedServer,
  retryable: (error: GrpcTowerError, _req: GrpcRequest, rules: RetryableCodes, timedOut: boolean) =>
    rules.retryableStatusCodes.has(error.code) || timedOut,
  pushback: readPushback,
});
