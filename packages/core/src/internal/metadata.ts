/**
 * The check of an insert change's {@link EndpointMetadata}, for the
 * packages that take changes from their users (a balancer's discovery
 * stream) and name what is wrong in a metadata object.
 *
 * @internal
 * @module
 */
import type { EndpointMetadata } from '../discover.js';
import { ConfigError } from '../errors.js';

/**
 * Checks an insert change's `metadata`: `undefined`, or an object whose
 * `weight` is a finite number ≥ 0 (0 is an SRV record's "very small
 * chance"), whose `zone` is a non-empty string and whose `forZones` is an
 * array of non-empty strings, whose `priority` is an integer ≥ 0, whose
 * `group` is a non-empty string and whose `groupWeight` is a finite number
 * > 0, each when present. Throws `ConfigError`
 * naming `where` and the member (`metadata.weight`, …).
 *
 * @internal
 * @example
 * ```ts
 * checkEndpointMetadata('insert of key "a"', change.metadata);
 * ```
 */
export function checkEndpointMetadata(where: string, metadata: unknown): EndpointMetadata | undefined {
  if (metadata === undefined) return undefined;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new ConfigError(
      where,
      'metadata',
      metadata,
      'an object ({ weight?, zone?, forZones?, priority?, group?, groupWeight? })',
    );
  }
  const { weight, zone, forZones, priority, group, groupWeight } = metadata as Record<string, unknown>;
  if (weight !== undefined && (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0)) {
    throw new ConfigError(where, 'metadata.weight', weight, 'a finite number >= 0');
  }
  if (zone !== undefined && (typeof zone !== 'string' || zone.length === 0)) {
    throw new ConfigError(where, 'metadata.zone', zone, 'a non-empty string');
  }
  if (
    forZones !== undefined &&
    (!Array.isArray(forZones) || !forZones.every((z) => typeof z === 'string' && z.length > 0))
  ) {
    throw new ConfigError(where, 'metadata.forZones', forZones, 'an array of non-empty strings');
  }
  if (
    priority !== undefined &&
    (typeof priority !== 'number' || !Number.isSafeInteger(priority) || priority < 0)
  ) {
    throw new ConfigError(where, 'metadata.priority', priority, 'an integer >= 0');
  }
  if (group !== undefined && (typeof group !== 'string' || group.length === 0)) {
    throw new ConfigError(where, 'metadata.group', group, 'a non-empty string');
  }
  if (
    groupWeight !== undefined &&
    (typeof groupWeight !== 'number' || !Number.isFinite(groupWeight) || groupWeight <= 0)
  ) {
    throw new ConfigError(where, 'metadata.groupWeight', groupWeight, 'a finite number > 0');
  }
  return metadata as EndpointMetadata;
}
