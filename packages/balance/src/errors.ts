/**
 * The errors a balancer raises itself (errors from an endpoint pass through
 * with their endpoint address).
 *
 * @module
 */
import { DeadlineExceededError, type ErrorOptions, UnavailableError } from '@grpc-tower/core';

/**
 * How many endpoints a balancer knows, by readiness. `known` is the number
 * of discovered keys; the other five add up to it.
 *
 * @example
 * ```ts
 * const c: EndpointCounts = { known: 4, ready: 0, connecting: 2, failed: 1, ejected: 1, closed: 0 };
 * ```
 */
export interface EndpointCounts {
  readonly known: number;
  readonly ready: number;
  readonly connecting: number;
  /** Not ready, and its connection is down (it reconnects with backoff). */
  readonly failed: number;
  /**
   * Not ready although its connection is up: held out by a health check
   * (NOT_SERVING) or by outlier detection (the endpoint's `connected` is true).
   */
  readonly ejected: number;
  readonly closed: number;
}

/**
 * Formats counts for an error message, such as
 * `4 known: 0 ready, 2 connecting, 1 failed, 1 ejected, 0 closed`.
 */
export function describeCounts(counts: EndpointCounts): string {
  if (counts.known === 0) return 'no endpoint known';
  return (
    `${counts.known} known: ${counts.ready} ready, ${counts.connecting} connecting, ` +
    `${counts.failed} failed, ${counts.ejected} ejected, ${counts.closed} closed`
  );
}

/**
 * No endpoint could take the call: none became ready within the fail-fast
 * time (`failFastMs`), or none could at all (every known endpoint failed to
 * connect or is held out, or discovery is failing with none known), which
 * fails the call at once. The message and the fields name the target and
 * how many endpoints were known, connecting, failed, ejected and closed;
 * the message then names why: the last errors of the endpoints that are
 * not ready (`10.0.0.7:50051: connect ECONNREFUSED 10.0.0.7:50051`), the
 * discovery failure, or that no endpoint was discovered yet. Status
 * UNAVAILABLE, marked `retryable: false`: a retry layer does not send the
 * call again, since the next attempt would meet the same pool.
 *
 * @example
 * ```ts
 * try { await balancer.call(req, ctx); } catch (err) {
 *   if (err instanceof NoReadyEndpointError) console.log(err.target, err.counts.connecting);
 * }
 * ```
 */
export class NoReadyEndpointError extends UnavailableError {
  /** The balancer's target, as given in its options. */
  readonly target: string;
  /** The endpoints known when the call gave up. */
  readonly counts: EndpointCounts;
  /** How long the call waited, in ms. */
  readonly waitedMs: number;

  constructor(
    target: string,
    counts: EndpointCounts,
    waitedMs: number,
    detail = '',
    options: ErrorOptions = {},
  ) {
    super(
      `no ready endpoint for target "${target}"${waitedMs > 0 ? ` after ${waitedMs} ms` : ''} ` +
        `(${describeCounts(counts)})${detail}`,
      options,
    );
    this.target = target;
    this.counts = counts;
    this.waitedMs = waitedMs;
  }
}

/** How many endpoints' last errors a {@link NoReadyEndpointError} names. */
export const MAX_NAMED_ERRORS = 3;

/**
 * @internal The error of a call that gave up waiting for a ready endpoint:
 * {@link NoReadyEndpointDeadlineError} when its deadline passed (`cause`,
 * the context's deadline error), else a {@link NoReadyEndpointError} marked
 * not to be retried (every endpoint was tried or none exists: another
 * attempt would meet the same pool). `lastErrors` names the endpoints'
 * last errors; the discovery failure, or that nothing was discovered yet,
 * is added to it.
 *
 * @example
 * ```ts
 * const err = gaveUpError('orders', counts, 0, set.describeLastErrors(MAX_NAMED_ERRORS), undefined, true);
 * ```
 */
export function gaveUpError(
  target: string,
  counts: EndpointCounts,
  waitedMs: number,
  lastErrors: string,
  discoveryFailure: unknown,
  sawChange: boolean,
  deadline?: { readonly cause: unknown },
): Error {
  let detail = lastErrors;
  if (discoveryFailure !== undefined) {
    const message = discoveryFailure instanceof Error ? discoveryFailure.message : String(discoveryFailure);
    detail += `; discovery failed: ${message}`;
  } else if (!sawChange) {
    detail += '; no endpoint discovered yet';
  }
  if (deadline !== undefined) {
    const options = deadline.cause === undefined ? {} : { cause: deadline.cause };
    return new NoReadyEndpointDeadlineError(target, counts, waitedMs, detail, options);
  }
  return new NoReadyEndpointError(target, counts, waitedMs, detail, { retryable: false });
}

/**
 * The call's deadline passed while it waited for a ready endpoint. Status
 * DEADLINE_EXCEEDED, with the same fields as {@link NoReadyEndpointError};
 * `cause` is the deadline error of the call's context when there was one.
 *
 * @example
 * ```ts
 * if (err instanceof NoReadyEndpointDeadlineError) console.log(err.message);
 * // deadline passed after 200 ms waiting for a ready endpoint for target "orders" (2 known: ...)
 * ```
 */
export class NoReadyEndpointDeadlineError extends DeadlineExceededError {
  /** The balancer's target, as given in its options. */
  readonly target: string;
  /** The endpoints known when the call gave up. */
  readonly counts: EndpointCounts;
  /** How long the call waited, in ms. */
  readonly waitedMs: number;

  constructor(
    target: string,
    counts: EndpointCounts,
    waitedMs: number,
    detail = '',
    options: ErrorOptions = {},
  ) {
    super(
      `deadline passed after ${waitedMs} ms waiting for a ready endpoint for target "${target}" ` +
        `(${describeCounts(counts)})${detail}`,
      options,
    );
    this.target = target;
    this.counts = counts;
    this.waitedMs = waitedMs;
  }
}
