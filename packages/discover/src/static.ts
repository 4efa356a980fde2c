/**
 * `staticList`: a fixed set of addresses as a source, for development, tests
 * and services whose servers never move.
 *
 * @module
 */
import { optionChecks } from '@grpc-tower/core/internal';
import { type DiscoveredAddress, toDiscoveredAddress } from './address.js';
import { InvalidAddressError } from './errors.js';
import { type DiscoverySource, sharedSource } from './source.js';

/**
 * Options of {@link staticList}.
 *
 * @example
 * ```ts
 * const opts: StaticListOptions = { name: 'static:orders' };
 * ```
 */
export interface StaticListOptions {
  /** The source's name in events; default `'static'`. */
  readonly name?: string;
}

/**
 * A source that inserts each address once per subscriber and never changes
 * (and never completes, as a source must not). Each entry is checked at
 * construction: an invalid address or the same address twice throws
 * a `ConfigError` naming the entry.
 *
 * @example
 * ```ts
 * const src = staticList(['127.0.0.2:50051', { address: '[::1]:50051', weight: 2 }]);
 * ```
 */
export function staticList(
  addresses: Iterable<string | DiscoveredAddress>,
  options: StaticListOptions = {},
): DiscoverySource {
  const check = optionChecks('staticList');
  const name = check.string('name', check.object('options', options).name, 'static');
  if (addresses === null || typeof addresses !== 'object' || !(Symbol.iterator in addresses)) {
    throw check.error('addresses', addresses, 'a list of addresses');
  }
  const set = new Map<string, DiscoveredAddress>();
  let index = 0;
  for (const entry of addresses) {
    let value: DiscoveredAddress;
    try {
      value = toDiscoveredAddress(entry, name);
    } catch (err) {
      const reason = err instanceof InvalidAddressError ? err.message : String(err);
      throw check.error(`addresses[${index}]`, entry, `a valid address (${reason})`);
    }
    if (set.has(value.address)) {
      throw check.error(`addresses[${index}]`, entry, 'an address not already listed');
    }
    set.set(value.address, value);
    index++;
  }
  return sharedSource(name, (ctx) => {
    ctx.replace(set);
    ctx.emit(() => ({ type: 'resolved', source: name, count: set.size, inserted: set.size, removed: 0 }));
    return () => {};
  });
}
