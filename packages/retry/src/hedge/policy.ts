/**
 * The hedging policy of gRPC A6 ("Hedging Policy"): how many attempts, how
 * long to wait between them, and which codes let the next one go out. It is
 * checked when the layer is built; a bad field throws `RetryPolicyError`
 * naming it.
 *
 * @module
 */
import type { StatusCode } from '@grpc-tower/core';
import { type OptionChecks, TIMER_RULE } from '@grpc-tower/core/internal';
import type { RetryLimiter } from '../budget/budget.js';
import { ATTEMPTS, type StatusSpec, compilePolicy, parseStatusList } from '../retry/policy.js';

/**
 * The hedging fields that may differ per service or method.
 *
 * @example
 * ```ts
 * const settings: HedgeSettings = { maxAttempts: 3, hedgingDelayMs: 20 };
 * ```
 */
export interface HedgeSettings {
  /** All attempts of a call, the first included: an integer ≥ 1, capped at `maxAttemptsLimit`. Default 2. */
  readonly maxAttempts?: number;
  /**
   * How long to wait after an attempt before sending the next, in ms (≥ 0).
   * Default 0: as in A6, every attempt goes out at once.
   */
  readonly hedgingDelayMs?: number;
  /**
   * Codes after which the next attempt goes out at once instead of ending
   * the call; any other failure ends the call with that failure. Default `[]`.
   */
  readonly nonFatalStatusCodes?: readonly StatusSpec[];
}

/**
 * The policy of {@link hedge}.
 *
 * @example
 * ```ts
 * const policy: HedgePolicy = {
 *   maxAttempts: 3,
 *   hedgingDelayMs: 15,
 *   nonFatalStatusCodes: ['UNAVAILABLE'],
 *   budget: retryThrottling({ maxTokens: 10, tokenRatio: 0.1 }),
 * };
 * ```
 */
export interface HedgePolicy extends HedgeSettings {
  /** The cap on `maxAttempts` (A6 caps at 5); an integer ≥ 1. Default 5. */
  readonly maxAttemptsLimit?: number;
  /** A budget or throttle shared by the channel; each hedge after the first asks it. */
  readonly budget?: RetryLimiter;
  /** Re-send once, at once, an attempt that never reached a server application (not counted). Default true. */
  readonly transparentRetry?: boolean;
  /** Settings per service (`'package.Service'`) or method (`'package.Service/Method'`). */
  readonly overrides?: Readonly<Record<string, HedgeSettings>>;
}

/**
 * The hedging settings in force for one method.
 *
 * @example
 * ```ts
 * const s: ResolvedHedgeSettings = hedge().policy.forMethod('/pkg.Echo/Unary');
 * ```
 */
export interface ResolvedHedgeSettings {
  readonly maxAttempts: number;
  readonly hedgingDelayMs: number;
  readonly nonFatalStatusCodes: ReadonlySet<StatusCode>;
}

/**
 * A checked hedging policy.
 *
 * @example
 * ```ts
 * const compiled: CompiledHedgePolicy = compileHedgePolicy({ hedgingDelayMs: 15 });
 * ```
 */
export interface CompiledHedgePolicy {
  readonly defaults: ResolvedHedgeSettings;
  readonly budget: RetryLimiter | undefined;
  readonly transparentRetry: boolean;
  forMethod(method: string): ResolvedHedgeSettings;
}

const SETTINGS_FIELDS = new Set(['maxAttempts', 'hedgingDelayMs', 'nonFatalStatusCodes']);

/**
 * Checks a hedging policy and fills in the defaults.
 *
 * @throws RetryPolicyError naming the first bad field.
 *
 * @example
 * ```ts
 * compileHedgePolicy({ maxAttempts: 3 }).forMethod('/pkg.Echo/Unary').hedgingDelayMs; // 0
 * ```
 */
export function compileHedgePolicy(policy: HedgePolicy = {}): CompiledHedgePolicy {
  const { defaults, budget, transparentRetry, forMethod } = compilePolicy(
    'hedge',
    policy,
    SETTINGS_FIELDS,
    resolve,
  );
  return { defaults, budget, transparentRetry, forMethod };
}

function resolve(
  check: OptionChecks,
  prefix: string,
  s: HedgeSettings,
  base: ResolvedHedgeSettings | undefined,
  limit: number,
): ResolvedHedgeSettings {
  return {
    maxAttempts:
      s.maxAttempts === undefined
        ? (base?.maxAttempts ?? Math.min(2, limit))
        : Math.min(limit, check.number(`${prefix}maxAttempts`, s.maxAttempts, ATTEMPTS)),
    hedgingDelayMs: check.number(
      `${prefix}hedgingDelayMs`,
      s.hedgingDelayMs,
      TIMER_RULE,
      base?.hedgingDelayMs ?? 0,
    ),
    nonFatalStatusCodes:
      s.nonFatalStatusCodes === undefined
        ? (base?.nonFatalStatusCodes ?? new Set())
        : parseStatusList(check, `${prefix}nonFatalStatusCodes`, s.nonFatalStatusCodes),
  };
}
