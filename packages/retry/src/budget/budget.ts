/**
 * The retry budget of Finagle (`RetryBudget`) and tower (`retry::budget::
 * TpsBudget`): retries may add at most a fixed share of the traffic, plus a
 * small reserve so that a quiet client can still retry. Every call deposits
 * `percent` of a retry; every retry withdraws one whole retry; both fall out
 * of a sliding window of `ttlMs`. A constant reserve of `minPerSec × ttlMs /
 * 1000` retries is always added. So over any window, retries ≤ reserve +
 * percent × calls, which is what keeps an outage from turning into a
 * retry storm: when every call fails, the servers see at most
 * `(1 + percent)` times the offered load, plus the reserve.
 *
 * One budget is meant to be shared by every call of a channel (and may be
 * shared by a retry layer and a hedging layer): create it once and pass it
 * in the policies.
 *
 * @module
 */
import { policyChecks } from '../retry/policy.js';

/**
 * What the retry and hedging layers ask of a budget or a throttle. Both
 * {@link RetryBudget} and {@link RetryThrottling} implement it; a user may
 * bring their own.
 *
 * @example
 * ```ts
 * const limiter: RetryLimiter = retryBudget();
 * limiter.onCall();
 * if (limiter.tryAcquire()) sendRetry();
 * ```
 */
export interface RetryLimiter {
  /** `'budget'`, `'throttling'`, or a name of the user's choosing. */
  readonly kind: string;
  /** A call started (not called for its retries or hedges). */
  onCall(): void;
  /**
   * An attempt ended: `success` when it succeeded (OK status, or a committed
   * stream that ended OK), `failure` when it failed with a retryable (or,
   * for hedging, non-fatal) code or a pushback that forbids retrying.
   */
  onOutcome(outcome: 'success' | 'failure'): void;
  /** Asks for one retry or hedge; `true` grants it (and takes what it costs). */
  tryAcquire(): boolean;
  /** How much is left now: retries available (budget) or tokens (throttling). */
  readonly level: number;
}

/**
 * Options of {@link retryBudget}.
 *
 * @example
 * ```ts
 * const options: RetryBudgetOptions = { ttlMs: 10_000, minPerSec: 10, percent: 0.2 };
 * ```
 */
export interface RetryBudgetOptions {
  /** How long a deposit or a withdrawal counts, in ms: 1000 to 60000; default 10000. */
  readonly ttlMs?: number;
  /** Retries per second always allowed (the reserve is `minPerSec × ttlMs / 1000`): ≥ 0; default 10. */
  readonly minPerSec?: number;
  /** The share of calls that may be retried, 0 to 1000 (1 = one retry per call); default 0.2. */
  readonly percent?: number;
}

/** The window is kept as this many buckets; a bucket expires as a whole. */
const BUCKETS = 10;

const EPSILON = 1e-9;

/**
 * A retry budget: see the module documentation for the algorithm.
 *
 * @example
 * ```ts
 * const budget = new RetryBudget({ percent: 0.1 });
 * ```
 */
export class RetryBudget implements RetryLimiter {
  readonly kind = 'budget';
  /** The window in ms. */
  readonly ttlMs: number;
  /** Retries always allowed per window. */
  readonly reserve: number;
  /** The share of calls that may be retried. */
  readonly percent: number;
  readonly #bucketMs: number;
  readonly #now: () => number;
  readonly #deposits = new Float64Array(BUCKETS);
  readonly #withdrawals = new Float64Array(BUCKETS);
  #epoch = 0; // the bucket number of slot #head
  #head = 0;

  constructor(options: RetryBudgetOptions = {}, now: () => number = () => performance.now()) {
    const check = policyChecks('retryBudget');
    check.object('options', options);
    this.ttlMs = check.number('ttlMs', options.ttlMs, { min: 1_000, max: 60_000 }, 10_000);
    const minPerSec = check.number('minPerSec', options.minPerSec, { min: 0, max: 1_000_000 }, 10);
    this.percent = check.number('percent', options.percent, { min: 0, max: 1_000 }, 0.2);
    this.reserve = (minPerSec * this.ttlMs) / 1000;
    this.#bucketMs = this.ttlMs / BUCKETS;
    this.#now = now;
    this.#epoch = Math.floor(now() / this.#bucketMs);
  }

  onCall(): void {
    this.#advance();
    this.#deposits[this.#head] = (this.#deposits[this.#head] ?? 0) + this.percent;
  }

  onOutcome(_outcome: 'success' | 'failure'): void {
    // the budget counts calls and retries, not outcomes
  }

  tryAcquire(): boolean {
    this.#advance();
    if (this.#balance() + EPSILON < 1) return false;
    this.#withdrawals[this.#head] = (this.#withdrawals[this.#head] ?? 0) + 1;
    return true;
  }

  /** Whole retries available now. */
  get level(): number {
    this.#advance();
    return Math.max(0, Math.floor(this.#balance() + EPSILON));
  }

  #balance(): number {
    let deposits = 0;
    let withdrawals = 0;
    for (let i = 0; i < BUCKETS; i++) {
      deposits += this.#deposits[i] ?? 0;
      withdrawals += this.#withdrawals[i] ?? 0;
    }
    return this.reserve + deposits - withdrawals;
  }

  /** Moves the head to the current bucket, clearing the buckets that expired. */
  #advance(): void {
    const epoch = Math.floor(this.#now() / this.#bucketMs);
    const steps = Math.min(BUCKETS, epoch - this.#epoch);
    for (let i = 0; i < steps; i++) {
      this.#head = (this.#head + 1) % BUCKETS;
      this.#deposits[this.#head] = 0;
      this.#withdrawals[this.#head] = 0;
    }
    if (epoch > this.#epoch) this.#epoch = epoch;
  }
}

/**
 * Creates a {@link RetryBudget}; defaults `{ ttlMs: 10_000, minPerSec: 10,
 * percent: 0.2 }` (Finagle's and tower's).
 *
 * @throws RetryPolicyError naming the option that is out of range.
 *
 * @example
 * ```ts
 * const budget = retryBudget({ ttlMs: 10_000, minPerSec: 10, percent: 0.2 });
 * const stack = new ServiceBuilder().layer(retry({ budget })).service(balancer);
 * ```
 */
export function retryBudget(options: RetryBudgetOptions = {}): RetryBudget {
  return new RetryBudget(options);
}

/**
 * @internal What a retry or hedging layer calls when a response is over:
 * tells `budget` of a success. `undefined` without a budget.
 *
 * @example
 * ```ts
 * const done = budgetDone(policy.budget);
 * if (done !== undefined) protocol.whenDone(res, done);
 * ```
 */
export function budgetDone(budget: RetryLimiter | undefined): ((ok: boolean) => void) | undefined {
  if (budget === undefined) return undefined;
  return (ok) => {
    if (ok) budget.onOutcome('success');
  };
}
