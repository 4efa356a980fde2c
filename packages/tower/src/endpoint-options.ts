/**
 * The endpoint options of one discovered address, shared by the gRPC
 * channel and the undici dispatcher.
 *
 * @internal
 * @module
 */
import type { DiscoveredAddress } from '@grpc-tower/discover';

/** What both endpoint kinds take from a discovered address. */
interface PlacedOptions {
  readonly weight?: number | undefined;
  readonly zone?: string | undefined;
  readonly forZones?: readonly string[] | undefined;
  readonly priority?: number | undefined;
  readonly group?: string | undefined;
  readonly groupWeight?: number | undefined;
}

/**
 * `base` with the address's weight, zone, topology hints, priority and group, when it has
 * them (`base` itself when it has none).
 *
 * @example
 * ```ts
 * grpcEndpoint(a.address, endpointOptionsFor(endpointOptions, a));
 * ```
 */
export function endpointOptionsFor<T extends PlacedOptions>(base: T, a: DiscoveredAddress): T {
  const { weight, zone, forZones, priority, group, groupWeight } = a;
  if ([weight, zone, forZones, priority, group, groupWeight].every((v) => v === undefined)) return base;
  return {
    ...base,
    ...(a.weight === undefined ? {} : { weight: a.weight }),
    ...(a.zone === undefined ? {} : { zone: a.zone }),
    ...(a.forZones === undefined ? {} : { forZones: a.forZones }),
    ...(a.priority === undefined ? {} : { priority: a.priority }),
    ...(a.group === undefined ? {} : { group: a.group }),
    ...(a.groupWeight === undefined ? {} : { groupWeight: a.groupWeight }),
  };
}
