/**
 * The set of ready endpoints as a dense array, so that a pick draws random
 * indexes in O(1). Each member stores its own index (`readyIndex`, -1 when
 * absent); removal moves the last member into the hole (swap-remove), so
 * adding and removing are O(1) too. The set also counts its members by
 * address, so that a pick can tell in O(|avoid|) how many of the addresses a
 * call wants to avoid are ready.
 *
 * @internal
 * @module
 */

/** A member of a {@link ReadySet}. */
export interface ReadyMember {
  /** The member's position in the set, -1 when absent. Managed by the set. */
  readyIndex: number;
  readonly address: string;
}

/** @internal */
export class ReadySet<T extends ReadyMember> {
  readonly #items: T[] = [];
  readonly #byAddress = new Map<string, number>();

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
    return true;
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
