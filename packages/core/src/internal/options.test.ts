// The one options validator: what each check accepts, what its error says,
// and that a component's own ConfigError subclass is thrown.
import { describe, expect, test } from 'vitest';
import { ConfigError } from '../errors.js';
import { TIMER_RULE, describeRule, optionChecks } from './options.js';
import { MAX_TIMER_MS } from './timers.js';

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const check = optionChecks('widget');

describe('number', () => {
  test.each([
    [{ min: 1, integer: true }, 'an integer >= 1'],
    [{ min: 0, exclusive: true }, 'a finite number > 0'],
    [{ min: 1, max: 10, integer: true }, 'an integer from 1 to 10'],
    [{ min: 0, exclusive: true, max: 1000 }, 'a finite number > 0 and <= 1000'],
    [{ max: 5 }, 'a finite number <= 5'],
    [{}, 'a finite number'],
    [TIMER_RULE, `a finite number from 0 to ${MAX_TIMER_MS}`],
  ])('%j is described as %s', (rule, words) => {
    expect(describeRule(rule)).toBe(words);
  });

  test('refuses NaN, infinities, non-numbers and values out of bounds, naming all', () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, '5', null, undefined, 0, 11, 2.5]) {
      const err = thrown(() => check.number('size', value, { min: 1, max: 10, integer: true }));
      expect(err.where).toBe('widget');
      expect(err.option).toBe('size');
      expect(Object.is(err.value, value)).toBe(true);
      expect(err.message).toContain('widget: option "size" must be an integer from 1 to 10, got ');
    }
    expect(check.number('size', 1, { min: 1, max: 10, integer: true })).toBe(1);
    expect(check.number('size', 10, { min: 1, max: 10, integer: true })).toBe(10);
    expect(() => check.number('size', 0, { min: 0, exclusive: true })).toThrow(ConfigError);
  });

  test('a fallback stands for undefined only; null is checked', () => {
    expect(check.number('size', undefined, { min: 1 }, 3)).toBe(3);
    expect(() => check.number('size', null, { min: 1 }, 3)).toThrow(/got null/);
  });

  test('the timer limit is the one setTimeout honours', () => {
    expect(MAX_TIMER_MS).toBe(2 ** 31 - 1);
    expect(check.number('ms', MAX_TIMER_MS, TIMER_RULE)).toBe(MAX_TIMER_MS);
    expect(() => check.number('ms', MAX_TIMER_MS + 1, TIMER_RULE)).toThrow(ConfigError);
  });
});

describe('the other checks', () => {
  test('object: a plain object, not null nor an array', () => {
    const given = { a: 1 };
    expect(check.object('options', given)).toBe(given);
    expect(check.object('options', undefined, {})).toEqual({});
    for (const value of [null, [], 'x', 1, undefined]) {
      expect(thrown(() => check.object('options', value as never)).message).toContain(
        'option "options" must be an object',
      );
    }
  });

  test('boolean, function, string and oneOf', () => {
    expect(check.boolean('wait', false, true)).toBe(false);
    expect(check.boolean('wait', undefined, true)).toBe(true);
    expect(thrown(() => check.boolean('wait', 'yes')).message).toBe(
      'widget: option "wait" must be a boolean, got "yes"',
    );
    const f = (): number => 1;
    expect(check.function('random', f)).toBe(f);
    expect(check.function('random', undefined, 'a function', Math.random)).toBe(Math.random);
    expect(thrown(() => check.function('random', 1, 'a function returning [0, 1)')).message).toBe(
      'widget: option "random" must be a function returning [0, 1), got 1',
    );
    expect(check.string('name', undefined, 'default')).toBe('default');
    expect(thrown(() => check.string('name', '')).message).toBe(
      'widget: option "name" must be a non-empty string, got ""',
    );
    expect(check.oneOf('mode', 'check', ['watch', 'check'] as const, 'watch')).toBe('check');
    expect(thrown(() => check.oneOf('mode', 'poll', ['watch', 'check'] as const)).message).toBe(
      'widget: option "mode" must be "watch" or "check", got "poll"',
    );
    expect(thrown(() => check.oneOf('family', 5, ['any', 4, 6] as const)).message).toContain(
      'must be "any", 4 or 6',
    );
  });

  test("a component's own ConfigError subclass is thrown, also by error()", () => {
    class WidgetError extends ConfigError {}
    const own = optionChecks('widget', WidgetError);
    expect(() => own.number('size', -1, { min: 0 })).toThrow(WidgetError);
    const err = own.error('size', -1, 'something else');
    expect(err).toBeInstanceOf(WidgetError);
    expect(err.message).toBe('widget: option "size" must be something else, got -1');
  });
});
