/**
 * What the retry layer reports: its events, one per step of a call, and
 * its counters.
 *
 * @module
 */
import type { GrpcTowerError, StatusCode } from '@grpc-tower/core';

/**
 * Why a call stopped retrying:
 * - `non-retryable`: the code is not retryable (or the predicate said no);
 * - `max-attempts`: `maxAttempts` attempts were made;
 * - `budget`: the budget or throttle refused a retry;
 * - `deadline`: the call's deadline passed, or the next delay would end after it;
 * - `not-replayable`: the request passed the replay buffer, the call is committed;
 * - `pushback`: the server sent a negative or malformed `grpc-retry-pushback-ms`;
 * - `cancelled`: the caller cancelled.
 *
 * @example
 * ```ts
 * layer.events$.pipe(filter((e) => e.type === 'give-up' && e.reason === 'budget')).subscribe(alert);
 * ```
 */
export type GiveUpReason =
  | 'non-retryable'
  | 'max-attempts'
  | 'budget'
  | 'deadline'
  | 'not-replayable'
  | 'pushback'
  | 'cancelled';

/**
 * What the retry layer reports, one event per step of a call.
 *
 * @example
 * ```ts
 * layer.events$.subscribe((e) => {
 *   if (e.type === 'give-up') console.log(e.method, e.reason, e.attempts);
 * });
 * ```
 */
export type RetryEvent =
  | {
      /** An attempt is being sent. */
      readonly type: 'attempt';
      readonly method: string;
      /** The attempt's number, 0 for the first (transparent re-sends included). */
      readonly attempt: number;
      /** Whether this is a transparent re-send. */
      readonly transparent: boolean;
      /** The endpoints this attempt asks the balancer to avoid. */
      readonly avoid: readonly string[];
    }
  | {
      /** An attempt failed before it committed. */
      readonly type: 'attempt-failed';
      readonly method: string;
      readonly attempt: number;
      readonly code: StatusCode;
      readonly endpoint: string | undefined;
      readonly error: GrpcTowerError;
    }
  | {
      /** Another attempt will be sent after `delayMs`. */
      readonly type: 'retry';
      readonly method: string;
      /** The number of the attempt that will be sent. */
      readonly attempt: number;
      readonly delayMs: number;
      /** `backoff` (jittered), `pushback` (the server's value) or `transparent` (at once, not counted). */
      readonly cause: 'backoff' | 'pushback' | 'transparent';
      /** The budget's level after this retry was granted, when there is a budget. */
      readonly budgetLevel: number | undefined;
    }
  | {
      /** The call failed for good. */
      readonly type: 'give-up';
      readonly method: string;
      /** Attempts counted against `maxAttempts`. */
      readonly attempts: number;
      readonly reason: GiveUpReason;
      readonly code: StatusCode;
      readonly budgetLevel: number | undefined;
    }
  | {
      /** An attempt committed; its response goes to the caller. */
      readonly type: 'committed';
      readonly method: string;
      readonly attempts: number;
      readonly endpoint: string;
    };

/**
 * Counters of a retry layer since it was created, over every service it
 * wrapped.
 *
 * @example
 * ```ts
 * const { calls, retries } = layer.stats();
 * console.log(`retry ratio ${(retries / calls).toFixed(2)}`);
 * ```
 */
export interface RetryStats {
  /** Calls that entered the layer. */
  readonly calls: number;
  /** Attempts sent, transparent re-sends included. */
  readonly attempts: number;
  /** Retries sent after a backoff or pushback (counted ones). */
  readonly retries: number;
  /** Transparent re-sends. */
  readonly transparentRetries: number;
  /** Calls that committed (returned a response). */
  readonly committed: number;
  /** Calls that failed. */
  readonly failed: number;
  /** Retries the budget or throttle refused. */
  readonly budgetExhausted: number;
  /** The budget's level now, when there is one. */
  readonly budgetLevel: number | undefined;
}
