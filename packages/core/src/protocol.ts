/**
 * The protocol seam: what every layer that judges calls (retry, hedging,
 * outlier detection, telemetry) asks of the protocol an endpoint speaks,
 * answered once per endpoint kind, next to the endpoint:
 * `grpcProtocol` (`@grpc-tower/core/grpc`, gRPC A6) and `httpProtocol`
 * (`@grpc-tower/core/http2`, HTTP semantics). A layer takes a
 * {@link Protocol} and never reads a response or an error of its own
 * accord.
 *
 * Whether an attempt reached the server is the transport's typed fact
 * (`GrpcTowerError.delivery`), set by the endpoint that ran it;
 * {@link neverReachedServer} reads it for every protocol.
 *
 * @module
 */
import { ClosedError, GrpcTowerError } from './errors.js';
import type { StatusCode } from './status.js';

/**
 * What the server said about retrying:
 * - `none`: nothing, use the backoff;
 * - `delay`: a valid value: retry after exactly `ms`, and restart the
 *   backoff from its first step;
 * - `stop`: a value that says not to retry (negative, malformed, or longer
 *   than allowed).
 *
 * @example
 * ```ts
 * const p: Pushback = grpcProtocol.pushback(err);
 * const delay = p.kind === 'delay' ? p.ms : undefined;
 * ```
 */
export type Pushback =
  | { readonly kind: 'none' }
  | { readonly kind: 'delay'; readonly ms: number }
  | { readonly kind: 'stop'; readonly value: string };

/**
 * The final status of a response, as a gRPC status code and details
 * (`UNAVAILABLE (HTTP 503)` for an HTTP answer).
 *
 * @example
 * ```ts
 * const s: ResponseStatus = { code: Status.UNAVAILABLE, details: 'HTTP 503' };
 * ```
 */
export interface ResponseStatus {
  readonly code: StatusCode;
  readonly details: string;
}

/**
 * Who produced a failed call's outcome:
 * - `server`: a status the server sent (or an error of unknown origin, taken at its code);
 * - `connection`: the connection or the stream failed below the protocol
 *   (no connection, a dropped connection, a reset);
 * - `deadline`: the call's deadline, counted against an endpoint only when
 *   it had a fair chance to answer;
 * - `caller`: the caller (or a layer above) stopped the call;
 * - `local`: raised in this process, or refused by the server before its
 *   application saw it: says nothing of the server's health.
 *
 * @example
 * ```ts
 * if (protocol.origin(err, ctx.aborted) === 'server') failures++;
 * ```
 */
export type FailureOrigin = 'server' | 'connection' | 'deadline' | 'caller' | 'local';

/**
 * The status codes a policy retries, as {@link Protocol.retryable} reads
 * them (a retry policy's resolved settings are one).
 *
 * @example
 * ```ts
 * const rules: RetryableCodes = { retryableStatusCodes: new Set([Status.UNAVAILABLE]) };
 * ```
 */
export interface RetryableCodes {
  readonly retryableStatusCodes: ReadonlySet<StatusCode>;
}

/**
 * What the layers ask of the protocol of an endpoint kind. Every member is
 * a plain function that does not read `this` (layers pass `whenDone` and
 * `abandon` on by themselves), and none allocates for a call that
 * succeeds.
 *
 * @example
 * ```ts
 * const layer = retryWith(grpcProtocol, compileRetryPolicy({ maxAttempts: 3 }));
 * const detector = outlierDetection({ protocol: httpProtocol() });
 * ```
 */
export interface Protocol<Req, Res> {
  /** The protocol's name, such as `'grpc'` or `'http'`. */
  readonly name: string;

  // the request: naming, replay, the commit point

  /** The call's name in events and in a policy's overrides: `/package.Service/Method`, `GET /items`. */
  method(req: Req): string;
  /** The number of the attempt `req` already is (a gRPC request below a hedging layer may be one of its hedges); 0 otherwise. */
  attemptOf(req: Req): number;
  /** The request of attempt `n` (counted from the call's first, transparent re-sends included). */
  attempt(req: Req, n: number): Req;
  /** Whether the request can still be sent again (its body or messages are held). */
  replayable(req: Req): boolean;
  /** Whether the request may be sent more than once at a time (hedged): HTTP, idempotent requests only. */
  hedgeable(req: Req): boolean;
  /**
   * Whether an attempt resolves only with its whole response (a gRPC unary
   * call): the commit point is its status, so a per-attempt time limit
   * spans it; otherwise it commits at the response headers.
   */
  wholeResponse(req: Req): boolean;

  // the response: its outcome, when it is done

  /**
   * The final status of a response that resolved, when it is known now (a
   * whole gRPC response; any HTTP answer, 5xx mapped to a failure);
   * `undefined` while it streams: {@link Protocol.whenStatus} tells it then.
   */
  statusOf(res: Res): ResponseStatus | undefined;
  /** Calls `fn` with the final status once the response is over (at once when it is known). */
  whenStatus(res: Res, fn: (status: ResponseStatus) => void): void;
  /**
   * An answer that counts as a failed attempt for retries (an HTTP 503):
   * the error standing for it, carrying the response; else `undefined`.
   */
  failureOf(res: Res, req: Req): FailedResponseError<Res> | undefined;
  /** Calls `done(ok)` once the response is over (at once when it is already whole). */
  whenDone(res: Res, done: (ok: boolean) => void): void;
  /** Frees a response nobody will read (an attempt abandoned after it resolved, or retried past). */
  abandon(res: Res): void;
  /** The address of the endpoint that answered. */
  endpointOf(res: Res): string;

  // a failure: who caused it, whether it reached the server, whether to retry

  /**
   * Who produced a failure (a rejection, or a final status that is not
   * OK); `stopped` is whether the call's context had aborted.
   */
  origin(failure: unknown, stopped: boolean): FailureOrigin;
  /** Whether the attempt never reached a server application (the transport's `delivery`), so sending it again at once is safe. */
  neverReachedServer(error: unknown): boolean;
  /**
   * Whether a failed attempt may be retried by the protocol's rules and
   * `rules` (the policy's retryable codes); `timedOut` says that it ran
   * past its per-attempt time limit.
   */
  retryable(error: GrpcTowerError, req: Req, rules: RetryableCodes, timedOut: boolean): boolean;
  /** What the server said about retrying. */
  pushback(error: GrpcTowerError): Pushback;
}

/**
 * An answer that arrived but counts as a failed attempt (an HTTP 502, 503
 * or 504, say): a retry layer judges it like any failure and, when it
 * gives up, returns the response itself.
 *
 * @example
 * ```ts
 * if (err instanceof FailedResponseError) console.log(err.response);
 * ```
 */
export class FailedResponseError<Res> extends GrpcTowerError {
  /** The response that stands for the failure. */
  readonly response: Res;

  constructor(code: StatusCode, message: string, response: Res, options: { endpoint?: string } = {}) {
    super(code, message, options);
    this.response = response;
  }
}

/**
 * Whether `err` shows that the attempt never reached a server application,
 * so re-sending it cannot run the method twice: a `ClosedError` (an
 * endpoint that was draining or closed refused it before opening a
 * stream), or an error whose transport says so (`delivery` `not-sent`,
 * `unconnected`, `refused` or `goaway`). False for everything else,
 * notably `delivery` `lost` (the method may have run) and a failure whose
 * transport does not say: the safe direction.
 *
 * @example
 * ```ts
 * if (neverReachedServer(err)) sendAgainOnAnotherEndpoint();
 * ```
 */
export function neverReachedServer(err: unknown): boolean {
  if (err instanceof ClosedError) return true;
  return err instanceof GrpcTowerError && err.delivery !== undefined && err.delivery !== 'lost';
}
