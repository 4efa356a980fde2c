/**
 * Option checks shared by this package: each throws a `ConfigError` that
 * names where the option belongs, the option, the value and what was
 * expected.
 *
 * @internal
 * @module
 */
import { ConfigError } from '@grpc-tower/core';

/** Bounds of a numeric option. */
export interface NumberRule {
  /** Smallest allowed value. */
  readonly min?: number;
  /** Whether `min` itself is refused. */
  readonly minExclusive?: boolean;
  /** Largest allowed value. */
  readonly max?: number;
  /** Whether only integers are allowed. */
  readonly integer?: boolean;
}

function describe(rule: NumberRule): string {
  const kind = rule.integer === true ? 'an integer' : 'a finite number';
  const parts: string[] = [];
  if (rule.min !== undefined) parts.push(`${rule.minExclusive === true ? '>' : '>='} ${rule.min}`);
  if (rule.max !== undefined) parts.push(`<= ${rule.max}`);
  return parts.length === 0 ? kind : `${kind} ${parts.join(' and ')}`;
}

/** `value` when it is given and valid, `fallback` when it is `undefined`; throws otherwise. */
export function numberOption(
  where: string,
  option: string,
  value: unknown,
  fallback: number,
  rule: NumberRule,
): number {
  if (value === undefined) return fallback;
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (rule.integer !== true || Number.isInteger(value)) &&
    (rule.min === undefined || (rule.minExclusive === true ? value > rule.min : value >= rule.min)) &&
    (rule.max === undefined || value <= rule.max);
  if (!ok) throw new ConfigError(where, option, value, describe(rule));
  return value as number;
}

/** The options object itself: `undefined` becomes `{}`, anything but a plain object throws. */
export function optionsObject<T extends object>(where: string, option: string, value: T | undefined): T {
  if (value === undefined) return {} as T;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(where, option, value, 'an options object');
  }
  return value;
}

/** A random source: a function returning numbers in [0, 1). */
export function randomOption(where: string, value: unknown): () => number {
  if (value === undefined) return Math.random;
  if (typeof value !== 'function')
    throw new ConfigError(where, 'random', value, 'a function returning [0, 1)');
  return value as () => number;
}
