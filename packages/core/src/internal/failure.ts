/**
 * Who produced a failed call's outcome, for the decisions that judge an
 * endpoint by its calls (outlier ejection, load estimates): only what the
 * server or the connection to it produced may count against it, never the
 * caller's own deadline or cancellation, nor an error raised in this
 * process.
 *
 * A deadline is both: the caller chose it, but a server that hangs also
 * ends in one. It counts against the endpoint only when the endpoint had a
 * fair chance to answer ({@link deadlineHadFairChance}): the call had been
 * on it for at least `minMs`, or for at least `latencyFactor` times its
 * typical latency.
 *
 * @internal
 * @module
 */
import {
  CancelledError,
  ClosedError,
  ConfigError,
  GrpcTowerError,
  OverloadedError,
  ResourceExhaustedError,
} from '../errors.js';
import { GrpcStatusError } from '../grpc/types.js';
import { Status } from '../status.js';
import type { FailureOrigin } from '../protocol.js';
import type { OptionChecks } from './options.js';

/*
 * Where a failure came from (the `FailureOrigin` of the protocol seam, `../protocol.ts`):
 * - `server`: a status the server sent (a {@link GrpcStatusError} with
 *   `serverResponded`), or an error this module does not know, taken at its
 *   code (a custom endpoint's failure, a committed stream's final status);
 * - `connection`: the connection or the stream failed below gRPC (connect
 *   failure, a dropped connection, an HTTP/2 RST_STREAM: the transport's
 *   `delivery` `unconnected` or `lost`; an UNAVAILABLE it did not account
 *   for);
 * - `deadline`: `DEADLINE_EXCEEDED`, from the call's own deadline timer or
 *   from the server enforcing the deadline the call sent it; it counts only
 *   when the endpoint had a fair chance ({@link deadlineHadFairChance});
 * - `caller`: the call was cancelled, or stopped by its caller or a layer
 *   above (a hedge that lost, a retry that gave up on the attempt);
 * - `local`: raised in this process before or instead of reaching the
 *   server: a request the transport could not start (`delivery`
 *   `not-sent`: a connection-specific header, call credentials that
 *   failed), a draining or closed endpoint, a refused option, a local limit,
 *   or a request the server did not take (`delivery` `refused` or `goaway`),
 *   which says nothing of the server's
 *   health: a server that sends GOAWAY to drain is doing its job.
 *
 * Only the transport's facts are read, never an error's wording: the
 * grpc-js endpoint turns grpc-js's words into the same `delivery`, and the
 * HTTP/2 endpoint sets it as the native gRPC one does.
 */
export type { FailureOrigin } from '../protocol.js';

const codeOf = (failure: unknown): unknown =>
  typeof failure === 'object' && failure !== null ? (failure as { code?: unknown }).code : undefined;

/**
 * Classifies a failed call's error (or the final status of a committed
 * response, `{ code, details }`). `stopped` is whether the call's context
 * had aborted once the call settled (`ctx.aborted`): whatever a stopped call
 * ended with, other than its deadline, is the caller's doing. Allocates
 * nothing.
 *
 * @internal
 * @example
 * ```ts
 * promise.catch((err) => {
 *   if (failureOrigin(err, ctx.aborted) === 'server') failures++;
 * });
 * ```
 */
export function failureOrigin(failure: unknown, stopped: boolean): FailureOrigin {
  const code = codeOf(failure);
  if (code === Status.DEADLINE_EXCEEDED) return 'deadline';
  if (code === Status.CANCELLED || failure instanceof CancelledError) return 'caller';
  if (stopped) return 'caller';
  if (failure instanceof GrpcStatusError && failure.serverResponded) return 'server';
  // the transport's own account of how far the attempt got, when it gives one
  const delivery = failure instanceof GrpcTowerError ? failure.delivery : undefined;
  if (delivery !== undefined)
    return delivery === 'lost' || delivery === 'unconnected' ? 'connection' : 'local';
  if (failure instanceof GrpcStatusError) {
    // a status without a response that the transport did not account for:
    // UNAVAILABLE is the connection's (a proxy's 503 page), any other one
    // was made up here ("authorization" metadata with several values, a
    // message too large to send)
    return code === Status.UNAVAILABLE ? 'connection' : 'local';
  }
  if (
    failure instanceof ClosedError ||
    failure instanceof ConfigError ||
    failure instanceof OverloadedError ||
    failure instanceof ResourceExhaustedError
  ) {
    return 'local';
  }
  if (failure instanceof GrpcTowerError && code === Status.UNAVAILABLE) return 'connection';
  return 'server';
}

/**
 * When a deadline counts against an endpoint (see
 * {@link deadlineHadFairChance}).
 *
 * @internal
 * @example
 * ```ts
 * const rule: DeadlineRule = { minMs: 1_000, latencyFactor: 10 };
 * ```
 */
export interface DeadlineRule {
  /** A deadline after at least this long on the endpoint counts, whatever its latency. */
  readonly minMs: number;
  /** A deadline after at least this many times the endpoint's typical latency counts. */
  readonly latencyFactor: number;
}

/**
 * The defaults of {@link DeadlineRule}: 1 s, or 10 × the typical latency.
 *
 * @internal
 * @example
 * ```ts
 * deadlineHadFairChance(elapsed, typical, DEFAULT_DEADLINE_RULE);
 * ```
 */
export const DEFAULT_DEADLINE_RULE: DeadlineRule = Object.freeze({ minMs: 1_000, latencyFactor: 10 });

/**
 * The least typical latency the factor is applied to, in ms: a server that
 * answers in a fraction of a millisecond is not judged by a few
 * milliseconds of scheduling delay in this process.
 *
 * @internal
 * @example
 * ```ts
 * const least = rule.latencyFactor * TYPICAL_LATENCY_FLOOR_MS; // 100 ms with the defaults
 * ```
 */
export const TYPICAL_LATENCY_FLOOR_MS = 10;

/**
 * Whether an endpoint had a fair chance to answer a call that ended at its
 * deadline after `elapsedMs` on it: `elapsedMs ≥ rule.minMs`, or
 * `elapsedMs ≥ rule.latencyFactor × max(typicalMs, 10 ms)` when its typical
 * latency is known. A call whose deadline left the endpoint less time than
 * that failed because of its caller.
 *
 * @internal
 * @example
 * ```ts
 * deadlineHadFairChance(2, 20, DEFAULT_DEADLINE_RULE); // false: 2 ms for a 20 ms server
 * deadlineHadFairChance(400, 20, DEFAULT_DEADLINE_RULE); // true: 20 × its latency
 * ```
 */
export function deadlineHadFairChance(
  elapsedMs: number,
  typicalMs: number | undefined,
  rule: DeadlineRule,
): boolean {
  if (elapsedMs >= rule.minMs) return true;
  if (typicalMs === undefined || !(typicalMs >= 0)) return false;
  return elapsedMs >= rule.latencyFactor * Math.max(typicalMs, TYPICAL_LATENCY_FLOOR_MS);
}

/**
 * Reads the two options of a {@link DeadlineRule} (`deadlineMinMs`,
 * `deadlineLatencyFactor`), with the defaults of
 * {@link DEFAULT_DEADLINE_RULE}.
 *
 * @internal
 * @example
 * ```ts
 * const rule = deadlineRuleOptions(optionChecks('peakEwma'), options);
 * ```
 */
export function deadlineRuleOptions(
  check: OptionChecks,
  options: { readonly deadlineMinMs?: number; readonly deadlineLatencyFactor?: number },
): DeadlineRule {
  const minMs = check.number('deadlineMinMs', options.deadlineMinMs, { min: 0 }, DEFAULT_DEADLINE_RULE.minMs);
  const latencyFactor = check.number(
    'deadlineLatencyFactor',
    options.deadlineLatencyFactor,
    { min: 1 },
    DEFAULT_DEADLINE_RULE.latencyFactor,
  );
  if (minMs === DEFAULT_DEADLINE_RULE.minMs && latencyFactor === DEFAULT_DEADLINE_RULE.latencyFactor) {
    return DEFAULT_DEADLINE_RULE;
  }
  return Object.freeze({ minMs, latencyFactor });
}
