/**
 * The retry counts the retry and hedging layers keep for a layer above
 * them (telemetry's call layer): their side of that contract.
 *
 * @module
 */
import { type ContextKey, contextKey } from '@grpc-tower/core';

/**
 * A call's retry counts (gRPC A96), kept for a layer above the retry and
 * hedging layers that reports them when the call ends: a telemetry layer
 * puts one in the call's context under {@link CallRetries}, and the retry
 * and hedging layers add to it. Transparent re-sends are counted apart
 * from retries and hedges.
 *
 * @example
 * ```ts
 * const tally: RetryTally = { retries: 0, transparentRetries: 0, hedges: 0, delayMs: 0 };
 * await stack.call(req, ctx.withValue(CallRetries, tally));
 * if (tally.retries > 0) console.log(`${tally.retries} retries, ${tally.delayMs} ms of backoff`);
 * ```
 */
export interface RetryTally {
  /** Attempts sent after a backoff or pushback (not the first, not transparent ones). */
  retries: number;
  /** Attempts re-sent at once because the one before never reached a server application. */
  transparentRetries: number;
  /** Hedged attempts after the first. */
  hedges: number;
  /** Milliseconds the call waited with no attempt in flight (retry backoffs and pushbacks). */
  delayMs: number;
}

/**
 * Where the retry and hedging layers find the call's {@link RetryTally},
 * when a layer above them asked for the counts.
 *
 * @example
 * ```ts
 * ctx.get(CallRetries)?.retries; // in a layer below the one that set it
 * ```
 */
export const CallRetries: ContextKey<RetryTally> = contextKey<RetryTally>('grpc-tower.call-retries');
