/**
 * Addresses as discovery keys. A key is `host:port` with IPv6 in brackets
 * (`[2001:db8::1]:50051`), the form grpc-js accepts as a target. Parsing,
 * checking and formatting are `@grpc-tower/core`'s (one address module for
 * every package): host names follow RFC 1123, IPv6 is written in its
 * canonical form (RFC 5952), zone ids are refused, so two spellings of one
 * address are one key. This module adds the discovery entry
 * ({@link DiscoveredAddress}) and errors named for discovery
 * ({@link InvalidAddressError}).
 *
 * @module
 */
import { type HostPort, formatAddress, tryParseAddress } from '@grpc-tower/core';
import { InvalidAddressError } from './errors.js';

export {
  type HostPort,
  formatAddress,
  isHost,
  isHostName,
  isPort,
  isServiceName,
} from '@grpc-tower/core';

/**
 * One discovered server: the address calls go to, an optional weight (from a
 * DNS SRV record or a registry entry) and optional metadata.
 *
 * @example
 * ```ts
 * const a: DiscoveredAddress = { address: '10.0.0.7:50051', weight: 10, metadata: { zone: 'b' } };
 * ```
 */
export interface DiscoveredAddress {
  /** `host:port`, IPv6 as `[::1]:50051`. */
  readonly address: string;
  /** A relative weight, when the registry gives one. */
  readonly weight?: number;
  /** Free-form data from the registry (JSON values). */
  readonly metadata?: Readonly<Record<string, unknown>>;
  /**
   * The zone the server runs in (a Kubernetes endpoint's `zone`, the node's
   * `topology.kubernetes.io/zone`), for zone-aware routing.
   */
  readonly zone?: string;
  /**
   * Topology hints: the zones whose clients this server is meant for (an
   * EndpointSlice endpoint's `hints.forZones`).
   */
  readonly forZones?: readonly string[];
  /**
   * The priority level of the server, an integer ≥ 0 (0 the highest; an
   * xDS locality's `priority`): the balancer fails over to a lower level
   * when a higher one has too few ready servers.
   */
  readonly priority?: number;
  /** The group the server belongs to (an xDS weighted cluster's name): calls are split across groups first. */
  readonly group?: string;
  /** The group's share of the calls relative to the other groups' (> 0; a weighted cluster's weight). */
  readonly groupWeight?: number;
}

/**
 * Parses `host:port` or `[v6]:port` (surrounding white space is ignored),
 * the host in canonical form (RFC 5952 for IPv6; see `@grpc-tower/core`'s
 * address module). Throws {@link InvalidAddressError} naming the input and
 * what is wrong with it.
 *
 * @example
 * ```ts
 * parseAddress('[0:0::1]:50051'); // { host: '::1', port: 50051, family: 6 }
 * ```
 */
export function parseAddress(input: unknown, source?: string): HostPort {
  const parsed = tryParseAddress(typeof input === 'string' ? input.trim() : input);
  if (!parsed.ok) throw new InvalidAddressError(input, parsed.reason, { source });
  return parsed.address;
}

/**
 * Normalizes a registry entry (an address string, or an object with
 * `address` and optional `weight` and `metadata`) into a
 * {@link DiscoveredAddress} with a canonical address. Throws
 * {@link InvalidAddressError} for anything else.
 *
 * @example
 * ```ts
 * toDiscoveredAddress('[0:0::1]:80'); // { address: '[::1]:80' }
 * toDiscoveredAddress({ address: 'a.internal:80', weight: 5 });
 * ```
 */
export function toDiscoveredAddress(input: unknown, source?: string): DiscoveredAddress {
  if (typeof input === 'string') {
    const hp = parseAddress(input, source);
    return { address: formatAddress(hp.host, hp.port) };
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidAddressError(input, 'expected a "host:port" string or an object with an "address"', {
      source,
    });
  }
  const entry = input as {
    address?: unknown;
    weight?: unknown;
    metadata?: unknown;
    zone?: unknown;
    forZones?: unknown;
    priority?: unknown;
    group?: unknown;
    groupWeight?: unknown;
  };
  const hp = parseAddress(entry.address, source);
  const address = formatAddress(hp.host, hp.port);
  const { weight, metadata, zone, forZones, priority, group, groupWeight } = entry;
  if (weight !== undefined && (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0)) {
    throw new InvalidAddressError(input, `weight ${String(weight)} is not a finite number >= 0`, { source });
  }
  if (
    metadata !== undefined &&
    (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
  ) {
    throw new InvalidAddressError(input, 'metadata must be an object', { source });
  }
  if (zone !== undefined && (typeof zone !== 'string' || zone.length === 0)) {
    throw new InvalidAddressError(input, 'zone must be a non-empty string', { source });
  }
  if (
    forZones !== undefined &&
    (!Array.isArray(forZones) || !forZones.every((z) => typeof z === 'string' && z.length > 0))
  ) {
    throw new InvalidAddressError(input, 'forZones must be an array of non-empty strings', { source });
  }
  if (
    priority !== undefined &&
    (typeof priority !== 'number' || !Number.isSafeInteger(priority) || priority < 0)
  ) {
    throw new InvalidAddressError(input, `priority ${String(priority)} is not an integer >= 0`, { source });
  }
  if (group !== undefined && (typeof group !== 'string' || group.length === 0)) {
    throw new InvalidAddressError(input, 'group must be a non-empty string', { source });
  }
  if (
    groupWeight !== undefined &&
    (typeof groupWeight !== 'number' || !Number.isFinite(groupWeight) || groupWeight <= 0)
  ) {
    throw new InvalidAddressError(input, `groupWeight ${String(groupWeight)} is not a finite number > 0`, {
      source,
    });
  }
  return {
    address,
    ...(weight === undefined ? {} : { weight }),
    ...(metadata === undefined ? {} : { metadata: metadata as Record<string, unknown> }),
    ...(zone === undefined ? {} : { zone }),
    ...(forZones === undefined ? {} : { forZones: [...(forZones as string[])] }),
    ...(priority === undefined ? {} : { priority }),
    ...(group === undefined ? {} : { group }),
    ...(groupWeight === undefined ? {} : { groupWeight }),
  };
}
