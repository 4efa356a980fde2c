/**
 * What the retry layer asks of a protocol. The attempt loop (backoff,
 * budget, deadline, avoiding failed endpoints, transparent re-sends) is the
 * same for every protocol; what differs is a handful of judgements, which a
 * {@link RetryProtocol} makes: what the call is called, how a request is
 * re-sent, whether it can be, where the commit point is, which failures
 * may be retried, what the server's pushback says, and whether an answer
 * that arrived is in fact a failure (an HTTP 503 is a response, not an
 * exception). `grpcRetryProtocol` (gRPC A6) and `httpRetryProtocol`
 * (HTTP semantics) are the two this package ships.
 *
 * @module
 */
import { GrpcTowerError, type StatusCode } from '@grpc-tower/core';
import type { Pushback } from '../retry/backoff.js';
import type { ResolvedRetrySettings } from '../retry/policy.js';

/**
 * The judgements the retry layer leaves to a protocol.
 *
 * @example
 * ```ts
 * const layer = retryWith(httpRetryProtocol(), { maxAttempts: 3 });
 * ```
 */
export interface RetryProtocol<Req, Res> {
  /** The protocol's name, such as `'grpc'` or `'http'`. */
  readonly name: string;
  /** The call's name in events and in the policy's overrides: `/package.Service/Method`, `GET /items`. */
  method(req: Req): string;
  /** The number of the attempt `req` already is (a gRPC request below a hedging layer may be one of its hedges); 0 otherwise. */
  attemptOf(req: Req): number;
  /** The request of attempt `n` (counted from the call's first, transparent re-sends included). */
  attempt(req: Req, n: number): Req;
  /** Whether the request can still be sent again (its body or messages are held). */
  replayable(req: Req): boolean;
  /**
   * Whether an attempt resolves only with its whole response (a gRPC unary
   * call), so that a per-attempt time limit spans it; otherwise it commits
   * at the response headers and the limit ends there.
   */
  wholeResponse(req: Req): boolean;
  /**
   * An attempt that resolved with an answer the protocol counts as failed
   * (an HTTP 503): the error standing for it, carrying the response; else
   * `undefined`. A call that gives up on such a failure resolves with its
   * response, as the server sent it.
   */
  failureOf(res: Res, req: Req): FailedResponseError<Res> | undefined;
  /**
   * Whether a failed attempt may be retried by the protocol's rules and
   * `settings`; `timedOut` says that it ran past `perAttemptTimeoutMs`.
   */
  retryable(
    error: GrpcTowerError,
    req: Req,
    settings: ResolvedRetrySettings<Req>,
    timedOut: boolean,
  ): boolean;
  /** What the server said about retrying: nothing, a delay, or stop. */
  pushback(error: GrpcTowerError): Pushback;
  /** Whether the attempt never reached a server application, so sending it again at once is safe. */
  neverReachedServer(error: unknown): boolean;
  /** Calls `done(ok)` once the response is over (at once when it is already whole). */
  whenDone(res: Res, done: (ok: boolean) => void): void;
  /** Frees a response nobody will read (an attempt abandoned after it resolved, or retried past). */
  abandon(res: Res): void;
  /** The address of the endpoint that answered. */
  endpointOf(res: Res): string;
}

/**
 * An answer that arrived but counts as a failed attempt (an HTTP 502, 503
 * or 504, say): the retry layer judges it like any failure and, when it
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
