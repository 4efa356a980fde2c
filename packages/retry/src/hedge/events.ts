/**
 * What the hedging layer reports: its events and its counters.
 *
 * @module
 */
import type { StatusCode } from '@grpc-tower/core';
import type { GiveUpReason } from '../retry/events.js';

/**
 * Why a hedged call ended without a response:
 * - `fatal`: an attempt failed with a code not in `nonFatalStatusCodes`;
 * - `max-attempts`: every attempt failed;
 * - `budget`: the budget or throttle refused another hedge;
 * - `deadline`: the deadline passed, or the next hedge would have started after it;
 * - `not-replayable`: the request passed the replay buffer;
 * - `pushback`: the server forbade more attempts;
 * - `cancelled`: the caller cancelled.
 *
 * @example
 * ```ts
 * layer.events$.subscribe((e) => e.type === 'give-up' && console.log(e.reason satisfies HedgeEndReason));
 * ```
 */
export type HedgeEndReason = 'fatal' | Exclude<GiveUpReason, 'non-retryable'>;

/**
 * What the hedging layer reports.
 *
 * @example
 * ```ts
 * layer.events$.subscribe((e) => {
 *   if (e.type === 'hedge-won') console.log(`attempt ${e.attempt} won on ${e.endpoint}`);
 * });
 * ```
 */
export type HedgeEvent =
  | {
      /** An attempt is being sent. */
      readonly type: 'hedge';
      readonly method: string;
      /** 0 for the first attempt. */
      readonly attempt: number;
      readonly transparent: boolean;
      /** The endpoints it asks the balancer to avoid. */
      readonly avoid: readonly string[];
      readonly budgetLevel: number | undefined;
    }
  | {
      /** An attempt failed before committing. */
      readonly type: 'hedge-failed';
      readonly method: string;
      readonly attempt: number;
      readonly code: StatusCode;
      readonly endpoint: string | undefined;
      readonly fatal: boolean;
    }
  | {
      /** An attempt committed; the others were cancelled. */
      readonly type: 'hedge-won';
      readonly method: string;
      readonly attempt: number;
      readonly endpoint: string;
      /** How many attempts still running were cancelled. */
      readonly cancelled: number;
    }
  | {
      /** The call failed. */
      readonly type: 'give-up';
      readonly method: string;
      readonly attempts: number;
      readonly reason: HedgeEndReason;
      readonly code: StatusCode;
      readonly budgetLevel: number | undefined;
    };

/**
 * Counters of a hedging layer.
 *
 * @example
 * ```ts
 * const s = layer.stats();
 * console.log(`${s.hedges} hedges for ${s.calls} calls, ${s.wonByHedge} won by a hedge`);
 * ```
 */
export interface HedgeStats {
  readonly calls: number;
  /** Attempts sent, the first ones and transparent re-sends included. */
  readonly attempts: number;
  /** Attempts after the first (counted ones). */
  readonly hedges: number;
  readonly transparentRetries: number;
  /** Calls won by an attempt other than the first. */
  readonly wonByHedge: number;
  /** Attempts cancelled because another won or the call failed. */
  readonly cancelled: number;
  readonly committed: number;
  readonly failed: number;
  /** Hedges refused by the budget or throttle. */
  readonly budgetExhausted: number;
  readonly budgetLevel: number | undefined;
}
