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
 * array of non-empty strings, each when present. Throws `ConfigError`
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
    throw new ConfigError(where, 'metadata', metadata, 'an object ({ weight?, zone?, forZones? })');
  }
  const { weight, zone, forZones } = metadata as Record<string, unknown>;
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
  return metadata as EndpointMetadata;
}
