/**
 * Groups: a split of the calls across sets of endpoints by weight before
 * the pick within one, as an xDS route's `weighted_clusters` (a canary
 * taking 10 % of the calls) and gRPC's `weighted_target` policy do. Each
 * endpoint carries its group and the group's weight (`EndpointMetadata.group`,
 * `EndpointMetadata.groupWeight`; the largest weight its endpoints carry when
 * they differ, 1 when none does).
 *
 * 1. The known endpoints are grouped; an endpoint without a group is in
 *    the group `''`.
 * 2. Within each group, the priority level in use is chosen as over the
 *    whole set (`priorities.ts`), and the group's ready endpoints of that
 *    level are its pick set.
 * 3. A call draws a group among those with a ready endpoint, in
 *    proportion to their weights (a group with none gives its share to the
 *    others, as gRPC's weighted_target picks among READY children only),
 *    then the inner picker (one instance per group) picks within it.
 *
 * The decision is made on every membership or readiness change, never per
 * call, and only when the known endpoints span more than one group; a call
 * then costs one draw (Walker's alias method) before the inner pick. A
 * call whose `avoid` covers every endpoint of the group drawn is picked
 * among all the ready endpoints instead. Panic mode and zone-aware routing
 * do not apply while groups are in play.
 *
 * @internal
 * @module
 */
import { type PriorityCandidate, decidePriority } from './priorities.js';
import type { PickSet, Picker } from './picker.js';
import { MemberSet, aliasDraw, pickerOf } from './zones.js';

/**
 * What the group split reads of a known endpoint.
 *
 * @example
 * ```ts
 * const canary = (m: GroupCandidate) => m.group === 'orders-canary';
 * ```
 */
export interface GroupCandidate extends PriorityCandidate {
  /** Its group, `''` when it has none. */
  readonly group: string;
  /** Its group's weight (> 0). */
  readonly groupWeight: number;
}

/**
 * One group that takes calls: its pick set and its share of the calls.
 *
 * @example
 * ```ts
 * const g: GroupTarget<Slot> = { group: 'blue', members: readyBlue, share: 0.9 };
 * ```
 */
export interface GroupTarget<T> {
  readonly group: string;
  readonly members: readonly T[];
  /** Its probability of being drawn. */
  readonly share: number;
}

/**
 * The groups calls are drawn among over the `known` endpoints (closed ones
 * skipped), with their shares; `undefined` when the endpoints span one
 * group or none. O(number of endpoints).
 *
 * @param readyPercent - the ready share a priority level needs within a group
 *
 * @example
 * ```ts
 * decideGroups(slots, 0)?.map((g) => [g.group, g.share]); // [['blue', 0.9], ['green', 0.1]]
 * ```
 */
export function decideGroups<T extends GroupCandidate>(
  known: Iterable<T>,
  readyPercent: number,
): GroupTarget<T>[] | undefined {
  const groups = new Map<string, { weight: number; members: T[] }>();
  for (const m of known) {
    if (m.readiness === 'closed') continue;
    let g = groups.get(m.group);
    if (g === undefined) {
      g = { weight: m.groupWeight, members: [] };
      groups.set(m.group, g);
    }
    if (m.groupWeight > g.weight) g.weight = m.groupWeight;
    g.members.push(m);
  }
  if (groups.size <= 1) return undefined;
  const usable: { group: string; weight: number; members: readonly T[] }[] = [];
  let total = 0;
  for (const [group, g] of groups) {
    const level = decidePriority(g.members, readyPercent).level;
    const members = level === undefined ? g.members.filter((m) => m.readiness === 'ready') : level.ready;
    if (members.length === 0) continue;
    usable.push({ group, weight: g.weight, members });
    total += g.weight;
  }
  return usable.map((u) => ({ group: u.group, members: u.members, share: u.weight / total }));
}

/** Draws a group per call, then picks within it; see the module documentation. */
class GroupPicker<T extends GroupCandidate> implements Picker<T> {
  readonly #sets: readonly PickSet<T>[];
  readonly #pickers: readonly Picker<T>[];
  readonly #draw: (random: () => number) => number;
  readonly #random: () => number;
  readonly #fallback: Picker<T>;

  constructor(
    targets: readonly GroupTarget<T>[],
    pickers: readonly Picker<T>[],
    random: () => number,
    fallback: Picker<T>,
  ) {
    this.#sets = targets.map((t) => new MemberSet(t.members));
    this.#pickers = pickers;
    this.#draw = aliasDraw(targets.map((t) => t.share));
    this.#random = random;
    this.#fallback = fallback;
  }

  pick(ready: PickSet<T>, avoid: ReadonlySet<string> | undefined): T | undefined {
    const i = this.#draw(this.#random);
    const set = this.#sets[i] as PickSet<T>;
    if (avoid !== undefined && avoid.size > 0 && set.countAddresses(avoid) >= set.size) {
      return this.#fallback.pick(ready, avoid);
    }
    return (this.#pickers[i] as Picker<T>).pick(set, avoid);
  }
}

/**
 * The group split for one balancer: re-decides on each
 * {@link GroupRouter.update} and holds the picker of calls while the
 * endpoints span more than one group (`undefined` otherwise).
 *
 * @example
 * ```ts
 * const router = new GroupRouter(0, () => p2cPicker(Math.random, clock), inner, Math.random);
 * router.update(set.active.values());
 * const picker = router.picker ?? inner;
 * ```
 */
export class GroupRouter<T extends GroupCandidate> {
  readonly #readyPercent: number;
  readonly #newPicker: () => Picker<T>;
  readonly #fallback: Picker<T>;
  readonly #random: () => number;
  /** One inner picker per group, kept across decisions. */
  readonly #pickers = new Map<string, Picker<T>>();
  #picker: Picker<T> | undefined;
  #shares: Readonly<Record<string, number>> | undefined;

  constructor(readyPercent: number, newPicker: () => Picker<T>, fallback: Picker<T>, random: () => number) {
    this.#readyPercent = readyPercent;
    this.#newPicker = newPicker;
    this.#fallback = fallback;
    this.#random = random;
  }

  /** The picker of calls, or `undefined` when groups play no part. */
  get picker(): Picker<T> | undefined {
    return this.#picker;
  }

  /** Each group's share of the calls now (groups with no ready endpoint left out), or `undefined`. */
  get shares(): Readonly<Record<string, number>> | undefined {
    return this.#shares;
  }

  /** Re-decides over the known endpoints; true when the shares changed. */
  update(known: Iterable<T>): boolean {
    const targets = decideGroups(known, this.#readyPercent);
    const previous = this.#shares;
    if (targets === undefined || targets.length === 0) {
      this.#picker = undefined;
      this.#shares = targets === undefined ? undefined : {};
    } else {
      const pickers = targets.map((t) => pickerOf(this.#pickers, t.group, this.#newPicker));
      this.#picker = new GroupPicker(targets, pickers, this.#random, this.#fallback);
      this.#shares = Object.fromEntries(targets.map((t) => [t.group, t.share]));
    }
    return JSON.stringify(previous) !== JSON.stringify(this.#shares);
  }
}
