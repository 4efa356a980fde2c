/**
 * Several inputs may name the same address (two merged sources, two etcd
 * keys). A claim table remembers every input's claim on every address and
 * exposes one value per address: the claim with the lowest rank. Claiming
 * and releasing return the change, if any, that the exposed set undergoes,
 * so that removing one of two claims on an address removes nothing.
 *
 * @internal
 * @module
 */
import type { Change } from './change.js';

interface Claim<V> {
  readonly rank: number | string;
  readonly value: V;
}

/** @internal */
export class ClaimTable<V> {
  readonly #claims = new Map<string, Map<string, Claim<V>>>();
  readonly #equals: (a: V, b: V) => boolean;

  constructor(equals: (a: V, b: V) => boolean) {
    this.#equals = equals;
  }

  /** The winning value for `key`, if any input claims it. */
  winner(key: string): V | undefined {
    return winnerOf(this.#claims.get(key))?.value;
  }

  /** The owners that claim `key`, best rank first. */
  owners(key: string): string[] {
    const claims = this.#claims.get(key);
    if (claims === undefined) return [];
    return [...claims.entries()].sort((a, b) => compare(a[1].rank, b[1].rank)).map(([owner]) => owner);
  }

  /** The exposed set: each claimed key with its winning value. */
  snapshot(): Map<string, V> {
    const out = new Map<string, V>();
    for (const [key, claims] of this.#claims) {
      const w = winnerOf(claims);
      if (w !== undefined) out.set(key, w.value);
    }
    return out;
  }

  /** Records (or replaces) `owner`'s claim on `key`. */
  claim(key: string, owner: string, rank: number | string, value: V): Change<string, V> | undefined {
    let claims = this.#claims.get(key);
    const before = winnerOf(claims);
    if (claims === undefined) {
      claims = new Map();
      this.#claims.set(key, claims);
    }
    claims.set(owner, { rank, value });
    return this.#changeFrom(key, before, winnerOf(claims));
  }

  /** Drops `owner`'s claim on `key`. */
  release(key: string, owner: string): Change<string, V> | undefined {
    const claims = this.#claims.get(key);
    if (claims === undefined || !claims.has(owner)) return undefined;
    const before = winnerOf(claims);
    claims.delete(owner);
    if (claims.size === 0) this.#claims.delete(key);
    return this.#changeFrom(key, before, winnerOf(claims));
  }

  /** How many inputs claim `key`. */
  count(key: string): number {
    return this.#claims.get(key)?.size ?? 0;
  }

  #changeFrom(
    key: string,
    before: Claim<V> | undefined,
    after: Claim<V> | undefined,
  ): Change<string, V> | undefined {
    if (after === undefined) return before === undefined ? undefined : { type: 'remove', key };
    if (before !== undefined && this.#equals(before.value, after.value)) return undefined;
    return { type: 'insert', key, endpoint: after.value };
  }
}

function compare(a: number | string, b: number | string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function winnerOf<V>(claims: ReadonlyMap<string, Claim<V>> | undefined): Claim<V> | undefined {
  if (claims === undefined) return undefined;
  let best: Claim<V> | undefined;
  for (const claim of claims.values()) {
    if (best === undefined || compare(claim.rank, best.rank) < 0) best = claim;
  }
  return best;
}
