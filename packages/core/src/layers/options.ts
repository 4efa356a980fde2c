/**
 * Option checks shared by the generic layers. Each check throws a
 * {@link ConfigError} that names the layer, the option, the value given and
 * what was expected, at the moment the layer is built.
 *
 * @internal
 * @module
 */
import { ConfigError } from '../errors.js';

/** The longest delay `setTimeout` honours; a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Checks that `options` is a plain object and returns it.
 *
 * @internal
 * @example
 * ```ts
 * const opts = checkObject('timeout', options);
 * ```
 */
export function checkObject<T extends object>(where: string, options: T | undefined): T {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ConfigError(where, 'options', options, 'an object');
  }
  return options;
}

/** What a numeric option must be. */
export interface NumberRule {
  /** The smallest value allowed. */
  readonly min: number;
  /** When true, `min` itself is not allowed. */
  readonly exclusive?: boolean;
  /** The largest value allowed (finite numbers only in any case). */
  readonly max?: number;
  /** When true, the value must be a whole number. */
  readonly integer?: boolean;
}

/**
 * Checks a numeric option: a finite number (an integer when asked) within
 * the rule's bounds. `NaN`, `Infinity` and non-numbers are refused.
 *
 * @internal
 * @example
 * ```ts
 * const max = checkNumber('concurrencyLimit', 'max', options.max, { min: 1, integer: true });
 * ```
 */
export function checkNumber(where: string, option: string, value: unknown, rule: NumberRule): number {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (rule.exclusive === true ? value > rule.min : value >= rule.min) &&
    (rule.max === undefined || value <= rule.max) &&
    (rule.integer !== true || Number.isInteger(value));
  if (!ok) throw new ConfigError(where, option, value, describeRule(rule));
  return value as number;
}

function describeRule(rule: NumberRule): string {
  const kind = rule.integer === true ? 'an integer' : 'a finite number';
  const low = `${rule.exclusive === true ? '>' : '>='} ${rule.min}`;
  return rule.max === undefined ? `${kind} ${low}` : `${kind} ${low} and <= ${rule.max}`;
}
