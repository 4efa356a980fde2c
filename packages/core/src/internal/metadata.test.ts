import { describe, expect, test } from 'vitest';
import { ConfigError } from '../errors.js';
import { checkEndpointMetadata } from './metadata.js';

const where = 'insert of key "a"';

describe('checkEndpointMetadata', () => {
  test('none, or valid members, are returned as they are', () => {
    expect(checkEndpointMetadata(where, undefined)).toBeUndefined();
    const m = { weight: 3, zone: 'eu-1a', forZones: ['eu-1a', 'eu-1b'] };
    expect(checkEndpointMetadata(where, m)).toBe(m);
    const standby = { priority: 2, group: 'canary', groupWeight: 10 };
    expect(checkEndpointMetadata(where, standby)).toBe(standby);
    expect(checkEndpointMetadata(where, { priority: 0 })).toEqual({ priority: 0 });
    expect(checkEndpointMetadata(where, { weight: 0 })).toEqual({ weight: 0 });
    expect(checkEndpointMetadata(where, {})).toEqual({});
  });

  test.each([-1, Number.NaN, Number.POSITIVE_INFINITY, '2'])(
    'weight %j is a ConfigError naming it',
    (weight) => {
      expect(() => checkEndpointMetadata(where, { weight })).toThrow(ConfigError);
      expect(() => checkEndpointMetadata(where, { weight })).toThrow(
        /insert of key "a": option "metadata.weight" must be a finite number >= 0/,
      );
    },
  );

  test.each(['', 3, null])('zone %j is a ConfigError naming it', (zone) => {
    expect(() => checkEndpointMetadata(where, { zone })).toThrow(
      /insert of key "a": option "metadata.zone" must be a non-empty string/,
    );
  });

  test.each([['eu-1a', ''], 'eu-1a', [1], null])('forZones %j is a ConfigError naming it', (forZones) => {
    expect(() => checkEndpointMetadata(where, { forZones })).toThrow(
      /insert of key "a": option "metadata.forZones" must be an array of non-empty strings/,
    );
  });

  test.each([-1, 1.5, Number.NaN, '1', null])('priority %j is a ConfigError naming it', (priority) => {
    expect(() => checkEndpointMetadata(where, { priority })).toThrow(
      /insert of key "a": option "metadata.priority" must be an integer >= 0/,
    );
  });

  test.each(['', 3, null])('group %j is a ConfigError naming it', (group) => {
    expect(() => checkEndpointMetadata(where, { group })).toThrow(
      /insert of key "a": option "metadata.group" must be a non-empty string/,
    );
  });

  test.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY, '2'])(
    'groupWeight %j is a ConfigError naming it',
    (groupWeight) => {
      expect(() => checkEndpointMetadata(where, { groupWeight })).toThrow(
        /insert of key "a": option "metadata.groupWeight" must be a finite number > 0/,
      );
    },
  );

  test.each([null, 3, 'w', [1]])('metadata %j that is not an object is a ConfigError', (metadata) => {
    expect(() => checkEndpointMetadata(where, metadata)).toThrow(/option "metadata" must be an object/);
  });
});
