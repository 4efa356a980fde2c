/**
 * The retry policy: its fields, their defaults, their checks, and the
 * per-service and per-method overrides, in the spirit of a gRPC service
 * config's `retryPolicy` (gRPC A6, "Retry Policy"). Every check runs when
 * the layer is built and throws {@link RetryPolicyError} naming the field.
 *
 * @module
 */
import { type GrpcTowerError, type StatusCode, type StatusName, Status, parseStatus } from '@grpc-tower/core';
import type { GrpcRequest } from '@grpc-tower/core/grpc';
import {
  type NumberRule,
  type OptionChecks,
  POSITIVE_TIMER_RULE,
  TIMER_RULE,
  optionChecks,
} from '@grpc-tower/core/internal';
import type { RetryLimiter } from '../budget/budget.js';
import { type BackoffSettings, DEFAULT_BACKOFF } from './backoff.js';
import { RetryPolicyError } from './errors.js';

/**
 * What the retry predicate is told about a failed attempt.
 *
 * @example
 * ```ts
 * const predicate: RetryPredicate = ({ error, attempts }) => error.code === Status.ABORTED && attempts < 3;
 * ```
 */
export interface RetryPredicateInput<Req = GrpcRequest> {
  /** The attempt's failure, as a grpc-tower error (an HTTP response the protocol counts as failed: a `FailedResponseError`). */
  readonly error: GrpcTowerError;
  /** The call's name: the full gRPC method name, `/package.Service/Method`; for HTTP, `METHOD /path`. */
  readonly method: string;
  /** Attempts counted so far, the failed one included (transparent re-sends are not counted). */
  readonly attempts: number;
  /** The call's request. */
  readonly request: Req;
}

/**
 * A hook that decides whether a failed attempt is worth retrying: `true`
 * retries it, `false` does not, `undefined` leaves it to
 * `retryableStatusCodes`. A `true` is still bound by `maxAttempts`, the
 * replay buffer, the deadline, server pushback and the budget, and by an
 * error marked `retryable: false` (no endpoint could take the call).
 *
 * @example
 * ```ts
 * const onlyIdempotent: RetryPredicate = ({ request }) =>
 *   request.metadata.get('x-idempotent').length > 0 ? undefined : false;
 * ```
 */
export type RetryPredicate<Req = GrpcRequest> = (input: RetryPredicateInput<Req>) => boolean | undefined;

/**
 * A status code given by name (`'UNAVAILABLE'`, any case) or by number.
 *
 * @example
 * ```ts
 * const codes: StatusSpec[] = ['UNAVAILABLE', Status.RESOURCE_EXHAUSTED];
 * ```
 */
export type StatusSpec = StatusName | StatusCode;

/**
 * The fields of a retry policy that may differ per service or method.
 *
 * @example
 * ```ts
 * const slowMethod: RetrySettings = { maxAttempts: 2, perAttemptTimeoutMs: 2_000 };
 * ```
 */
export interface RetrySettings {
  /** All attempts of a call, the first included: an integer ≥ 1, capped at `maxAttemptsLimit`. Default 5. */
  readonly maxAttempts?: number;
  /** The codes that are retried; default `['UNAVAILABLE']`. OK cannot be listed. */
  readonly retryableStatusCodes?: readonly StatusSpec[];
  /** The first retry waits a random time up to this, in ms (≥ 0); default 25. */
  readonly initialBackoffMs?: number;
  /** The cap of the backoff ceiling, in ms (≥ `initialBackoffMs`); default 250. */
  readonly maxBackoffMs?: number;
  /** How much the ceiling grows per retry (≥ 1); default 2. */
  readonly backoffMultiplier?: number;
  /**
   * A time limit for each attempt until it commits, in ms (> 0). An attempt
   * that runs past it is cancelled with `AttemptTimeoutError` and retried
   * (while the call's own deadline allows). Default: none.
   */
  readonly perAttemptTimeoutMs?: number;
  /** Decides per failure; see {@link RetryPredicate}. */
  readonly shouldRetry?: RetryPredicate;
}

/**
 * The policy of {@link retry}.
 *
 * @example
 * ```ts
 * const policy: RetryPolicy = {
 *   maxAttempts: 4,
 *   retryableStatusCodes: ['UNAVAILABLE', 'RESOURCE_EXHAUSTED'],
 *   budget: retryBudget(),
 *   overrides: { 'shop.Orders/Create': { maxAttempts: 1 }, 'shop.Catalog': { perAttemptTimeoutMs: 300 } },
 * };
 * ```
 */
export interface RetryPolicy extends RetrySettings {
  /** The cap on `maxAttempts` (A6 caps at 5); an integer ≥ 1. Default 5. */
  readonly maxAttemptsLimit?: number;
  /** A budget or throttle shared by all calls of the channel; default none. */
  readonly budget?: RetryLimiter;
  /**
   * Re-send, once per call, at once and on another endpoint, an attempt
   * that never reached a server application; such a re-send is not counted
   * against `maxAttempts` nor paid from the budget. Default true.
   */
  readonly transparentRetry?: boolean;
  /**
   * Settings per service (`'package.Service'`) or per method
   * (`'package.Service/Method'`, with or without the leading `/`); a
   * method's entry wins over its service's. Unset fields keep the policy's.
   */
  readonly overrides?: Readonly<Record<string, RetrySettings>>;
}

/**
 * The settings in force for one method, checked and filled in.
 *
 * @example
 * ```ts
 * const s: ResolvedRetrySettings = retry().policy.forMethod('/pkg.Echo/Unary');
 * s.backoff.initialBackoffMs; // 25
 * ```
 */
export interface ResolvedRetrySettings<Req = GrpcRequest> {
  readonly maxAttempts: number;
  readonly retryableStatusCodes: ReadonlySet<StatusCode>;
  readonly backoff: BackoffSettings;
  readonly perAttemptTimeoutMs: number | undefined;
  readonly shouldRetry: RetryPredicate<Req> | undefined;
}

/**
 * A checked policy.
 *
 * @example
 * ```ts
 * const compiled: CompiledRetryPolicy = compileRetryPolicy({ maxAttempts: 9 });
 * compiled.defaults.maxAttempts; // 5: capped by maxAttemptsLimit
 * ```
 */
export interface CompiledRetryPolicy<Req = GrpcRequest> {
  /** Whether some method has settings of its own (else every call takes `defaults`). */
  readonly perMethod: boolean;
  /** The settings for methods without an override. */
  readonly defaults: ResolvedRetrySettings<Req>;
  readonly maxAttemptsLimit: number;
  readonly budget: RetryLimiter | undefined;
  readonly transparentRetry: boolean;
  /** The settings for `method` (`/package.Service/Method`). */
  forMethod(method: string): ResolvedRetrySettings<Req>;
}

/** The A6 cap on attempts. */
export const DEFAULT_MAX_ATTEMPTS_LIMIT = 5;

/** The fields a settings object may have. */
const SETTINGS_FIELDS = new Set([
  'maxAttempts',
  'retryableStatusCodes',
  'initialBackoffMs',
  'maxBackoffMs',
  'backoffMultiplier',
  'perAttemptTimeoutMs',
  'shouldRetry',
]);

/**
 * The option checks of a retry or hedging component, throwing
 * {@link RetryPolicyError}.
 *
 * @internal
 */
export function policyChecks(where: string): OptionChecks {
  return optionChecks(where, RetryPolicyError);
}

/** An attempt count: an integer ≥ 1. @internal */
export const ATTEMPTS: NumberRule = Object.freeze({ min: 1, integer: true });

/**
 * Checks a retry policy and fills in the defaults.
 *
 * @throws RetryPolicyError naming the first bad field.
 *
 * @example
 * ```ts
 * const compiled = compileRetryPolicy({ maxAttempts: 3 });
 * compiled.forMethod('/pkg.Echo/Unary').maxAttempts; // 3
 * ```
 */
export function compileRetryPolicy(policy: RetryPolicy = {}, where = 'retry'): CompiledRetryPolicy {
  return compilePolicy(where, policy, SETTINGS_FIELDS, resolveSettings);
}

/**
 * What the retry and the hedging policies have in common, checked: the
 * attempt cap, the budget, transparent retries, the defaults and the
 * overrides, each settings object resolved by `resolve` over its base.
 *
 * @internal
 */
export interface CompiledPolicy<R> {
  /** Whether some method has settings of its own (else every call takes `defaults`). */
  readonly perMethod: boolean;
  readonly defaults: R;
  readonly maxAttemptsLimit: number;
  readonly budget: RetryLimiter | undefined;
  readonly transparentRetry: boolean;
  forMethod(method: string): R;
}

/** The fields every policy has besides its settings. */
const COMMON_FIELDS = ['maxAttemptsLimit', 'budget', 'transparentRetry', 'overrides'];

/**
 * Checks the common fields of a policy and compiles its settings and
 * overrides; see {@link CompiledPolicy}.
 *
 * @internal
 */
export function compilePolicy<S extends object, R>(
  where: string,
  policy: S & {
    readonly maxAttemptsLimit?: number;
    readonly budget?: RetryLimiter;
    readonly transparentRetry?: boolean;
    readonly overrides?: Readonly<Record<string, S>>;
  },
  settingsFields: ReadonlySet<string>,
  resolve: (check: OptionChecks, prefix: string, settings: S, base: R | undefined, limit: number) => R,
): CompiledPolicy<R> {
  const check = policyChecks(where);
  check.object('policy', policy);
  checkKnownFields(check, '', policy, new Set([...settingsFields, ...COMMON_FIELDS]));
  const limit = check.number(
    'maxAttemptsLimit',
    policy.maxAttemptsLimit,
    ATTEMPTS,
    DEFAULT_MAX_ATTEMPTS_LIMIT,
  );
  const budget = checkLimiter(check, 'budget', policy.budget);
  const transparentRetry = check.boolean('transparentRetry', policy.transparentRetry, true);
  const defaults = resolve(check, '', policy, undefined, limit);
  const overrides = compileOverrides(check, policy.overrides, (prefix, settings) => {
    check.object(prefix.slice(0, -1), settings);
    checkKnownFields(check, prefix, settings, settingsFields);
    return resolve(check, prefix, settings, defaults, limit);
  });
  return {
    defaults,
    maxAttemptsLimit: limit,
    budget,
    transparentRetry,
    perMethod: overrides.size > 0,
    forMethod: (method) => lookupOverride(overrides, method) ?? defaults,
  };
}

function resolveSettings(
  check: OptionChecks,
  prefix: string,
  s: RetrySettings,
  base: ResolvedRetrySettings | undefined,
  limit: number,
): ResolvedRetrySettings {
  const maxAttempts =
    s.maxAttempts === undefined
      ? (base?.maxAttempts ?? Math.min(5, limit))
      : Math.min(limit, check.number(`${prefix}maxAttempts`, s.maxAttempts, ATTEMPTS));
  const codes =
    s.retryableStatusCodes === undefined
      ? (base?.retryableStatusCodes ?? new Set<StatusCode>([Status.UNAVAILABLE]))
      : parseStatusList(check, `${prefix}retryableStatusCodes`, s.retryableStatusCodes);
  const backoff = resolveBackoff(check, prefix, s, base?.backoff ?? DEFAULT_BACKOFF);
  const perAttemptTimeoutMs =
    s.perAttemptTimeoutMs === undefined
      ? base?.perAttemptTimeoutMs
      : check.number(`${prefix}perAttemptTimeoutMs`, s.perAttemptTimeoutMs, POSITIVE_TIMER_RULE);
  const shouldRetry =
    s.shouldRetry === undefined
      ? base?.shouldRetry
      : check.function<RetryPredicate>(`${prefix}shouldRetry`, s.shouldRetry);
  return { maxAttempts, retryableStatusCodes: codes, backoff, perAttemptTimeoutMs, shouldRetry };
}

/**
 * Checks backoff fields over `base`.
 *
 * @internal
 */
export function resolveBackoff(
  check: OptionChecks,
  prefix: string,
  s: { initialBackoffMs?: number; maxBackoffMs?: number; backoffMultiplier?: number },
  base: BackoffSettings,
): BackoffSettings {
  const initialBackoffMs = check.number(
    `${prefix}initialBackoffMs`,
    s.initialBackoffMs,
    TIMER_RULE,
    base.initialBackoffMs,
  );
  const maxBackoffMs = check.number(
    `${prefix}maxBackoffMs`,
    s.maxBackoffMs,
    TIMER_RULE,
    Math.max(base.maxBackoffMs, initialBackoffMs),
  );
  if (maxBackoffMs < initialBackoffMs) {
    throw check.error(
      `${prefix}maxBackoffMs`,
      maxBackoffMs,
      `a number >= initialBackoffMs (${initialBackoffMs})`,
    );
  }
  const backoffMultiplier = check.number(
    `${prefix}backoffMultiplier`,
    s.backoffMultiplier,
    { min: 1 },
    base.backoffMultiplier,
  );
  return { initialBackoffMs, maxBackoffMs, backoffMultiplier };
}

/**
 * Parses a list of status names or codes; OK and unknown names are refused.
 *
 * @internal
 */
export function parseStatusList(
  check: OptionChecks,
  option: string,
  value: unknown,
): ReadonlySet<StatusCode> {
  if (!Array.isArray(value)) throw check.error(option, value, 'an array of gRPC status names or codes');
  const out = new Set<StatusCode>();
  for (const [i, item] of (value as unknown[]).entries()) {
    const code = parseStatus(item);
    if (code === undefined || code === Status.OK) {
      throw check.error(
        `${option}[${i}]`,
        item,
        'a gRPC status name (such as "UNAVAILABLE") or code from 1 to 16',
      );
    }
    out.add(code);
  }
  return out;
}

/**
 * A {@link RetryLimiter} or nothing.
 *
 * @internal
 */
export function checkLimiter(check: OptionChecks, option: string, value: unknown): RetryLimiter | undefined {
  if (value === undefined) return undefined;
  const v = value as Partial<RetryLimiter> | null;
  if (
    typeof v !== 'object' ||
    v === null ||
    typeof v.onCall !== 'function' ||
    typeof v.onOutcome !== 'function' ||
    typeof v.tryAcquire !== 'function'
  ) {
    throw check.error(option, value, 'a retryBudget() or retryThrottling() (a RetryLimiter)');
  }
  return v as RetryLimiter;
}

/**
 * Refuses unknown fields, so that a misspelt option does not pass silently.
 *
 * @internal
 */
export function checkKnownFields(
  check: OptionChecks,
  prefix: string,
  value: object,
  known: ReadonlySet<string>,
): void {
  for (const key of Object.keys(value)) {
    if (!known.has(key)) {
      throw check.error(`${prefix}${key}`, (value as Record<string, unknown>)[key], 'a known field');
    }
  }
}

const SERVICE_KEY = /^[A-Za-z_][\w.]*$/;
const METHOD_KEY = /^[A-Za-z_][\w.]*\/[A-Za-z_]\w*$/;

/**
 * Checks the override keys and compiles each entry.
 *
 * @internal
 */
export function compileOverrides<S, R>(
  check: OptionChecks,
  overrides: Readonly<Record<string, S>> | undefined,
  compile: (prefix: string, settings: S) => R,
): ReadonlyMap<string, R> {
  const out = new Map<string, R>();
  if (overrides === undefined) return out;
  check.object('overrides', overrides);
  for (const [rawKey, settings] of Object.entries(overrides)) {
    const key = rawKey.startsWith('/') ? rawKey.slice(1) : rawKey;
    if (!SERVICE_KEY.test(key) && !METHOD_KEY.test(key)) {
      throw check.error(
        'overrides',
        rawKey,
        'keys of the form "package.Service" or "package.Service/Method"',
      );
    }
    if (out.has(key)) throw check.error('overrides', rawKey, 'each service or method named once');
    out.set(key, compile(`overrides[${JSON.stringify(rawKey)}].`, settings));
  }
  return out;
}

/**
 * The override for `/package.Service/Method`: the method's, else the service's.
 *
 * @internal
 */
export function lookupOverride<R>(overrides: ReadonlyMap<string, R>, method: string): R | undefined {
  if (overrides.size === 0) return undefined;
  const path = method.startsWith('/') ? method.slice(1) : method;
  const exact = overrides.get(path);
  if (exact !== undefined) return exact;
  const slash = path.lastIndexOf('/');
  return slash > 0 ? overrides.get(path.slice(0, slash)) : undefined;
}
