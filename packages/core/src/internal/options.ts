/**
 * The one options validator of grpc-tower's packages. Each check throws,
 * at the moment a layer, source or policy is built, a {@link ConfigError}
 * (or the component's own subclass of it) that names the component, the
 * option, the value given and what was expected:
 * `retry: option "maxAttempts" must be an integer >= 1, got 0`.
 *
 * A check that is given a `fallback` returns it when the value is
 * `undefined`; `null` and every other value are checked.
 *
 * @internal
 * @module
 */
import { ConfigError } from '../errors.js';
import { MAX_TIMER_MS } from './timers.js';

/**
 * A {@link ConfigError} class: `ConfigError` itself, or a component's own
 * subclass with the same constructor (such as `RetryPolicyError`).
 *
 * @internal
 * @example
 * ```ts
 * class RetryPolicyError extends ConfigError {}
 * const errorClass: ConfigErrorClass = RetryPolicyError;
 * ```
 */
export type ConfigErrorClass = new (
  where: string,
  option: string,
  value: unknown,
  expected: string,
) => ConfigError;

/**
 * What a numeric option must be. Every bound is optional; the value is
 * always a finite number (`NaN` and `Infinity` are refused).
 *
 * @internal
 * @example
 * ```ts
 * const percent: NumberRule = { min: 0, max: 100 };
 * const positiveMs: NumberRule = { min: 0, exclusive: true, max: MAX_TIMER_MS };
 * ```
 */
export interface NumberRule {
  /** The smallest value allowed. */
  readonly min?: number;
  /** When true, `min` itself is refused. */
  readonly exclusive?: boolean;
  /** The largest value allowed. */
  readonly max?: number;
  /** When true, the value must be a whole number. */
  readonly integer?: boolean;
}

/**
 * A delay or time limit handed to `setTimeout`: from 0 to
 * {@link MAX_TIMER_MS} ms.
 *
 * @internal
 * @example
 * ```ts
 * const ms = check.number('closeGraceMs', options.closeGraceMs, TIMER_RULE, 0);
 * ```
 */
export const TIMER_RULE: NumberRule = Object.freeze({ min: 0, max: MAX_TIMER_MS });

/**
 * A delay that must pass before anything happens: more than 0 ms, at most
 * {@link MAX_TIMER_MS}.
 *
 * @internal
 * @example
 * ```ts
 * const timeoutMs = check.number('timeoutMs', options.timeoutMs, POSITIVE_TIMER_RULE, 1000);
 * ```
 */
export const POSITIVE_TIMER_RULE: NumberRule = Object.freeze({ ...TIMER_RULE, exclusive: true });

/**
 * Backoff settings between attempts of something that fails: the first
 * wait, the longest, the growth per failure and the relative jitter.
 *
 * @internal
 * @example
 * ```ts
 * const defaults: BackoffValues = { initialMs: 1000, maxMs: 30_000, multiplier: 2, jitter: 0.1 };
 * ```
 */
export interface BackoffValues {
  /** The first wait, in ms: > 0 and at most {@link MAX_TIMER_MS}. */
  readonly initialMs: number;
  /** The longest wait, in ms: from `initialMs` to {@link MAX_TIMER_MS}. */
  readonly maxMs: number;
  /** Growth per failure: from 1 to 100. */
  readonly multiplier: number;
  /** Relative spread of each wait: from 0 to 1. */
  readonly jitter: number;
}

/**
 * The checks of one component, made by {@link optionChecks}.
 *
 * @internal
 * @example
 * ```ts
 * const check: OptionChecks = optionChecks('rateLimit');
 * const wait = check.boolean('wait', options.wait, true);
 * ```
 */
export interface OptionChecks {
  /** The component the checks speak for, such as `'timeout'`. */
  readonly where: string;
  /** A plain object (not `null`, not an array). */
  object<T extends object>(option: string, value: T | undefined, fallback?: T): T;
  /** A finite number within `rule`. */
  number(option: string, value: unknown, rule?: NumberRule, fallback?: number): number;
  /** `true` or `false`. */
  boolean(option: string, value: unknown, fallback?: boolean): boolean;
  /** A function; `expected` says which one (default `'a function'`). */
  function<F extends (...args: never[]) => unknown>(
    option: string,
    value: unknown,
    expected?: string,
    fallback?: F,
  ): F;
  /** A string of at least one character. */
  string(option: string, value: unknown, fallback?: string): string;
  /** One of `choices` (compared with `===`). */
  oneOf<T extends string | number | boolean>(
    option: string,
    value: unknown,
    choices: readonly T[],
    fallback?: T,
  ): T;
  /**
   * A backoff object (`option.initialMs`, `option.maxMs`, …), each field
   * checked and filled in from `defaults`; `maxMs` defaults to at least
   * `initialMs`.
   */
  backoff(option: string, value: unknown, defaults: BackoffValues): BackoffValues;
  /** The component's error for a check of its own, to throw: `throw check.error(…)`. */
  error(option: string, value: unknown, expected: string): ConfigError;
}

/**
 * The option checks of the component `where`, throwing `errorClass`
 * (default {@link ConfigError}).
 *
 * @internal
 * @example
 * ```ts
 * const check = optionChecks('concurrencyLimit');
 * const opts = check.object('options', options);
 * const max = check.number('max', opts.max, { min: 1, integer: true });
 * const queue = check.number('queue', opts.queue, { min: 0, integer: true }, 0);
 * ```
 */
export function optionChecks(where: string, errorClass: ConfigErrorClass = ConfigError): OptionChecks {
  const error = (option: string, value: unknown, expected: string): ConfigError =>
    new errorClass(where, option, value, expected);
  const fail = (option: string, value: unknown, expected: string): never => {
    throw error(option, value, expected);
  };
  const checks: OptionChecks = {
    where,
    error,
    object<T extends object>(option: string, value: T | undefined, fallback?: T): T {
      if (value === undefined && fallback !== undefined) return fallback;
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        return fail(option, value, 'an object');
      }
      return value;
    },
    number(option: string, value: unknown, rule: NumberRule = {}, fallback?: number): number {
      if (value === undefined && fallback !== undefined) return fallback;
      if (!satisfies(value, rule)) return fail(option, value, describeRule(rule));
      return value;
    },
    boolean(option: string, value: unknown, fallback?: boolean): boolean {
      if (value === undefined && fallback !== undefined) return fallback;
      if (typeof value !== 'boolean') return fail(option, value, 'a boolean');
      return value;
    },
    function<F extends (...args: never[]) => unknown>(
      option: string,
      value: unknown,
      expected = 'a function',
      fallback?: F,
    ): F {
      if (value === undefined && fallback !== undefined) return fallback;
      if (typeof value !== 'function') return fail(option, value, expected);
      return value as F;
    },
    string(option: string, value: unknown, fallback?: string): string {
      if (value === undefined && fallback !== undefined) return fallback;
      if (typeof value !== 'string' || value.length === 0) return fail(option, value, 'a non-empty string');
      return value;
    },
    oneOf<T extends string | number | boolean>(
      option: string,
      value: unknown,
      choices: readonly T[],
      fallback?: T,
    ): T {
      if (value === undefined && fallback !== undefined) return fallback;
      if (!choices.includes(value as T)) return fail(option, value, describeChoices(choices));
      return value as T;
    },
    backoff(option: string, value: unknown, defaults: BackoffValues): BackoffValues {
      const b = checks.object<Partial<BackoffValues>>(
        option,
        value as Partial<BackoffValues> | undefined,
        {},
      );
      const at = (field: string): string => `${option}.${field}`;
      const initialMs = checks.number(at('initialMs'), b.initialMs, POSITIVE_TIMER_RULE, defaults.initialMs);
      const maxMs = checks.number(
        at('maxMs'),
        b.maxMs,
        { ...TIMER_RULE, min: initialMs },
        Math.max(defaults.maxMs, initialMs),
      );
      const multiplier = checks.number(
        at('multiplier'),
        b.multiplier,
        { min: 1, max: 100 },
        defaults.multiplier,
      );
      const jitter = checks.number(at('jitter'), b.jitter, { min: 0, max: 1 }, defaults.jitter);
      return { initialMs, maxMs, multiplier, jitter };
    },
  };
  return checks;
}

function satisfies(value: unknown, rule: NumberRule): value is number {
  return (
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (rule.integer !== true || Number.isInteger(value)) &&
    (rule.min === undefined || (rule.exclusive === true ? value > rule.min : value >= rule.min)) &&
    (rule.max === undefined || value <= rule.max)
  );
}

/**
 * What a rule asks for, in words: `an integer from 1 to 10`,
 * `a finite number > 0 and <= 1000`, `a finite number >= 0`.
 *
 * @internal
 * @example
 * ```ts
 * describeRule({ min: 0, exclusive: true }); // 'a finite number > 0'
 * ```
 */
export function describeRule(rule: NumberRule): string {
  const kind = rule.integer === true ? 'an integer' : 'a finite number';
  const { min, max } = rule;
  if (min !== undefined && max !== undefined) {
    return rule.exclusive === true ? `${kind} > ${min} and <= ${max}` : `${kind} from ${min} to ${max}`;
  }
  if (min !== undefined) return `${kind} ${rule.exclusive === true ? '>' : '>='} ${min}`;
  if (max !== undefined) return `${kind} <= ${max}`;
  return kind;
}

function describeChoices(choices: readonly (string | number | boolean)[]): string {
  const words = choices.map((c) => (typeof c === 'string' ? JSON.stringify(c) : String(c)));
  return words.length <= 1 ? (words[0] ?? 'nothing') : `${words.slice(0, -1).join(', ')} or ${words.at(-1)}`;
}
