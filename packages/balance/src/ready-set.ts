/**
 * The set of ready endpoints as a dense array, so that a pick draws random
 * indexes in O(1). Each member stores its own index (`readyIndex`, -1 when
 * absent); removal moves the last member into the hole (swap-remove), so
 * adding and removing are O(1) too. The set also counts its members by
 * address, so that a pick can tell in O(|avoid|) how many of the addresses a
 * call wants to avoid are ready, and keeps the sum, the largest and the
 * smallest of its members' weights (counted by weight: a set has few
 * distinct weights), for weighted picks.
 *
 * @internal
 * @module
 */

/** A member of a {@link ReadySet}. */
export interface ReadyMember {
  /** The member's position in the set, -1 when absent. Managed by the set. */
  readyIndex: number;
  readonly address: string;
  /** Its weight (> 0): the set sums it and tracks the largest and smallest. */
  readonly weight: number;
}

/** @internal */
export class ReadySet<T extends ReadyMember> {
  readonly #items: T[] = [];
  readonly #byAddress = new Map<string, number>();
  readonly #byWeight = new Map<number, number>();
  #totalWeight = 0;
  #maxWeight = 1;
  #minWeight = 1;

  get size(): number {
    return this.#items.length;
  }

  /** The member at `index` (0 ≤ index < size). */
  at(index: number): T {
    return this.#items[index] as T;
  }

  has(member: T): boolean {
    return member.readyIndex >= 0 && this.#items[member.readyIndex] === member;
  }

  add(member: T): boolean {
    if (this.has(member)) return false;
    member.readyIndex = this.#items.length;
    this.#items.push(member);
    this.#byAddress.set(member.address, (this.#byAddress.get(member.address) ?? 0) + 1);
    this.#weigh(member.weight, 1);
    return true;
  }

  /** The sum of the members' weights. */
  get totalWeight(): number {
    return this.#totalWeight;
  }

  /** The largest weight of a member; 1 when empty. */
  get maxWeight(): number {
    return this.#maxWeight;
  }

  /** The smallest weight of a member; 1 when empty. */
  get minWeight(): number {
    return this.#minWeight;
  }

  #weigh(weight: number, delta: 1 | -1): void {
    this.#totalWeight += delta * weight;
    const n = (this.#byWeight.get(weight) ?? 0) + delta;
    if (n > 0) this.#byWeight.set(weight, n);
    else this.#byWeight.delete(weight);
    if (this.#byWeight.size === 0) {
      this.#totalWeight = 0;
      this.#maxWeight = 1;
      this.#minWeight = 1;
      return;
    }
    let max = 0;
    let min = Number.POSITIVE_INFINITY;
    for (const w of this.#byWeight.keys()) {
      if (w > max) max = w;
      if (w < min) min = w;
    }
    this.#maxWeight = max;
    this.#minWeight = min;
  }

  remove(member: T): boolean {
    if (!this.has(member)) return false;
    const index = member.readyIndex;
    const last = this.#items.pop() as T;
    if (last !== member) {
      this.#items[index] = last;
      last.readyIndex = index;
    }
    member.readyIndex = -1;
    const n = (this.#byAddress.get(member.address) ?? 1) - 1;
    if (n === 0) this.#byAddress.delete(member.address);
    else this.#byAddress.set(member.address, n);
    this.#weigh(member.weight, -1);
    return true;
  }

  /** How many members have an address in `addresses`: O(|addresses|). */
  countAddresses(addresses: ReadonlySet<string>): number {
    let n = 0;
    for (const a of addresses) n += this.#byAddress.get(a) ?? 0;
    return n;
  }

  /** The members, for stats and tests (a copy). */
  toArray(): T[] {
    return [...this.#items];
  }
}
