/**
 * Zone-aware routing, Envoy's algorithm ("Zone aware routing" in Envoy's
 * architecture overview) with Kubernetes topology hints as kube-proxy
 * honours them (KEP-2433, topology-aware routing). Calls stay in the
 * client's zone while that zone has enough ready capacity for its share of
 * the clients, and spill over to the other zones in proportion to their
 * spare capacity when it has not:
 *
 * 1. The ready endpoints are grouped by `zone`; one without a zone is in
 *    none (it gets calls only when routing is over every zone).
 * 2. Hints: when every ready endpoint has `forZones` and at least one
 *    names the local zone, calls go to those only (kube-proxy's rule);
 *    otherwise hints are ignored.
 * 3. Every zone gets calls (mode `all`) when the balancer panics, when
 *    fewer than `minEndpoints` endpoints are known, when no endpoint of
 *    the local zone is ready, or when the local zone itself is below the
 *    panic threshold.
 * 4. Otherwise, with u_z the zone's share of the ready capacity (the sum
 *    of the weights of the endpoints with a zone) and c_z its share of the
 *    clients: u_local ≥ c_local sends every call to the local zone
 *    (`local`); else (`spill`) a call stays local with probability
 *    u_local / c_local, and the rest goes to the other zones in proportion
 *    to their residual capacity max(0, u_z − c_z) (to u_z when no zone has
 *    any).
 *
 * The decision ({@link decideZones}, a pure function) is made on every
 * membership or readiness change, never per call: {@link ZoneRouter} then
 * builds the pick sets of the zones that get calls and a table for Walker's
 * alias method, so that a call costs one draw, O(1), before the inner
 * picker (its own instance per zone, so that round robin's cursor and
 * p2c's turns follow one set each) picks within the zone. A call whose
 * `avoid` covers every endpoint of the zone drawn is picked among all the
 * ready endpoints instead.
 *
 * @internal
 * @module
 */
import type { Readiness } from '@grpc-tower/core';
import type { ResolvedZones } from '../options.js';
import type { ZoneRouting, ZoneRoutingReason } from '../stats.js';
import { ArrayPickSet, belowPanicThreshold } from './panic.js';
import type { Candidate, PickSet, Picker } from './picker.js';

/**
 * What zone-aware routing reads of a known endpoint.
 *
 * @example
 * ```ts
 * const inLocal = (m: ZoneCandidate) => m.readiness === 'ready' && m.zone === 'eu-west-1a';
 * ```
 */
export interface ZoneCandidate extends Candidate {
  readonly readiness: Readiness;
  /** Its zone, or `undefined` when it has none. */
  readonly zone: string | undefined;
  /** Its topology hints (non-empty), or `undefined` when it has none. */
  readonly forZones: readonly string[] | undefined;
}

/**
 * Where some of the calls go: the ready endpoints of one zone (or, with
 * `zone` undefined, the endpoints hinted for the local zone), with the
 * probability that a call is sent there.
 *
 * @example
 * ```ts
 * const target: ZoneTarget<Slot> = { zone: 'a', members: readyInA, probability: 0.75 };
 * ```
 */
export interface ZoneTarget<T> {
  readonly zone: string | undefined;
  readonly members: readonly T[];
  readonly probability: number;
}

/**
 * A routing decision: what is published, and the targets calls are drawn
 * among (none in mode `all`: the whole ready set).
 *
 * @example
 * ```ts
 * const { routing, targets } = decideZones(slots, zones, 50, false);
 * ```
 */
export interface ZoneDecision<T> {
  readonly routing: ZoneRouting;
  readonly targets: readonly ZoneTarget<T>[];
}

/** u_local ≥ c_local within this relative error counts as enough (shares are sums of floats). */
const EPSILON = 1e-9;

interface Tally<T> {
  known: number;
  capacity: number;
  readonly ready: T[];
}

/** Each zone's share of `total`, in the order of `capacities`, leaving out those with none. */
function sharesOf(capacities: Iterable<readonly [string, number]>, total: number): Record<string, number> {
  const entries: [string, number][] = [];
  for (const [zone, capacity] of capacities) if (capacity > 0) entries.push([zone, capacity / total]);
  // fromEntries: a zone named `__proto__` is a key like any other
  return Object.fromEntries(entries);
}

/**
 * The zone-aware routing decision over the `known` endpoints (closed ones
 * are skipped): the steps of the module documentation. O(number of
 * endpoints).
 *
 * @param panicThresholdPercent - the balancer's; the local zone below it
 *   sends calls to every zone (0: never)
 * @param panicking - whether the balancer is in panic mode, which wins
 *
 * @example
 * ```ts
 * decideZones(slots, { local: 'a', minEndpoints: 6, clientShares: undefined, hints: true }, 50, false).routing;
 * // { mode: 'local', localShare: 1, shares: { a: 1 } }
 * ```
 */
export function decideZones<T extends ZoneCandidate>(
  known: Iterable<T>,
  options: ResolvedZones,
  panicThresholdPercent: number,
  panicking: boolean,
): ZoneDecision<T> {
  const localZone = options.local;
  const zones = new Map<string, Tally<T>>();
  const hinted: T[] = [];
  let hints = options.hints;
  let count = 0;
  let readyCapacity = 0;
  let zonedCapacity = 0;
  for (const m of known) {
    if (m.readiness === 'closed') continue;
    count++;
    const zone = m.zone;
    let tally: Tally<T> | undefined;
    if (zone !== undefined) {
      tally = zones.get(zone);
      if (tally === undefined) {
        tally = { known: 0, capacity: 0, ready: [] };
        zones.set(zone, tally);
      }
      tally.known++;
    }
    if (m.readiness !== 'ready') continue;
    readyCapacity += m.weight;
    if (tally !== undefined) {
      tally.ready.push(m);
      tally.capacity += m.weight;
      zonedCapacity += m.weight;
    }
    if (hints) {
      const forZones = m.forZones;
      if (forZones === undefined) hints = false;
      else if (forZones.includes(localZone)) hinted.push(m);
    }
  }
  const local = zones.get(localZone);
  const all = (reason: ZoneRoutingReason): ZoneDecision<T> => ({
    routing: {
      mode: 'all',
      reason,
      localShare: local === undefined || readyCapacity === 0 ? 0 : local.capacity / readyCapacity,
      shares: sharesOf(
        [...zones].map(([z, t]) => [z, t.capacity] as const),
        readyCapacity,
      ),
    },
    targets: [],
  });
  if (panicking) return all('panic');
  if (hints && hinted.length > 0) {
    const byZone = new Map<string, number>();
    let total = 0;
    for (const m of hinted) {
      total += m.weight;
      if (m.zone !== undefined) byZone.set(m.zone, (byZone.get(m.zone) ?? 0) + m.weight);
    }
    return {
      routing: {
        mode: 'hints',
        localShare: (byZone.get(localZone) ?? 0) / total,
        shares: sharesOf(byZone, total),
      },
      targets: [{ zone: undefined, members: hinted, probability: 1 }],
    };
  }
  if (count < options.minEndpoints) return all('too-few-endpoints');
  if (local === undefined || local.ready.length === 0) return all('no-local-endpoint');
  if (belowPanicThreshold(local.known, local.ready.length, panicThresholdPercent)) return all('local-panic');
  const given = options.clientShares;
  const clientShare = (zone: string): number =>
    given === undefined ? 1 / zones.size : (given.get(zone) ?? 0);
  const upstream = local.capacity / zonedCapacity;
  const clients = clientShare(localZone);
  if (upstream >= clients * (1 - EPSILON)) {
    return {
      routing: { mode: 'local', localShare: 1, shares: sharesOf([[localZone, 1]], 1) },
      targets: [{ zone: localZone, members: local.ready, probability: 1 }],
    };
  }
  // spill: u_local < c_local ≤ 1, so another zone has ready capacity
  const stay = upstream / clients;
  const others: { zone: string; tally: Tally<T>; upstream: number; residual: number }[] = [];
  let residuals = 0;
  let upstreams = 0;
  for (const [zone, tally] of zones) {
    if (zone === localZone || tally.capacity === 0) continue;
    const u = tally.capacity / zonedCapacity;
    const residual = Math.max(0, u - clientShare(zone));
    others.push({ zone, tally, upstream: u, residual });
    residuals += residual;
    upstreams += u;
  }
  const targets: ZoneTarget<T>[] = [{ zone: localZone, members: local.ready, probability: stay }];
  const shares: [string, number][] = [[localZone, stay]];
  for (const o of others) {
    // Σu = 1 ≥ Σc, so some residual is > 0 unless rounding ate it
    const p = (1 - stay) * (residuals > 0 ? o.residual / residuals : o.upstream / upstreams);
    if (p <= 0) continue;
    targets.push({ zone: o.zone, members: o.tally.ready, probability: p });
    shares.push([o.zone, p]);
  }
  return { routing: { mode: 'spill', localShare: stay, shares: sharesOf(shares, 1) }, targets };
}

/**
 * A pick set over fixed members (one zone's, one priority level's), built
 * once per decision; it counts its members by address, so that a pick with
 * endpoints to avoid costs O(|avoid|) as over the ready set.
 *
 * @example
 * ```ts
 * const set = new MemberSet(readyInZoneA);
 * picker.pick(set, avoid);
 * ```
 */
export class MemberSet<T extends Candidate> extends ArrayPickSet<T> {
  readonly #byAddress = new Map<string, number>();

  constructor(items: readonly T[]) {
    super(items);
    for (const m of items) this.#byAddress.set(m.address, (this.#byAddress.get(m.address) ?? 0) + 1);
  }

  override countAddresses(addresses: ReadonlySet<string>): number {
    let n = 0;
    for (const a of addresses) n += this.#byAddress.get(a) ?? 0;
    return n;
  }
}

/**
 * Walker's alias method (Vose's construction): a draw among `weights.length`
 * outcomes in proportion to the weights, in O(1) with one random number
 * (its integer part picks a column, its fraction the column's coin).
 *
 * @example
 * ```ts
 * const draw = aliasDraw([0.5, 0.25, 0.25]);
 * draw(Math.random); // 0 half the time
 * ```
 */
export function aliasDraw(weights: readonly number[]): (random: () => number) => number {
  const n = weights.length;
  let sum = 0;
  for (const w of weights) sum += w;
  const keep = new Float64Array(n).fill(1);
  // a column that keeps its own outcome whole is its own alias
  const alias = Uint32Array.from({ length: n }, (_, i) => i);
  const scaled = weights.map((w) => (w * n) / sum);
  const small: number[] = [];
  const large: number[] = [];
  for (let i = 0; i < n; i++) ((scaled[i] as number) < 1 ? small : large).push(i);
  while (small.length > 0 && large.length > 0) {
    const s = small.pop() as number;
    const l = large.pop() as number;
    keep[s] = scaled[s] as number;
    alias[s] = l;
    const rest = (scaled[l] as number) + (scaled[s] as number) - 1;
    scaled[l] = rest;
    (rest < 1 ? small : large).push(l);
  }
  // what is left is 1 up to rounding: kept whole (the fill)
  return (random) => {
    const u = random() * n;
    const i = Math.min(n - 1, Math.max(0, Math.floor(u)));
    // a random source that returns NaN draws the first outcome
    if (Number.isNaN(i)) return 0;
    return u - i < (keep[i] as number) ? i : (alias[i] as number);
  };
}

/** Picks within one target drawn per call; see the module documentation. */
class ZonePicker<T extends Candidate> implements Picker<T> {
  readonly #sets: readonly PickSet<T>[];
  readonly #pickers: readonly Picker<T>[];
  readonly #draw: ((random: () => number) => number) | undefined;
  readonly #random: () => number;
  readonly #fallback: Picker<T>;

  constructor(
    sets: readonly PickSet<T>[],
    pickers: readonly Picker<T>[],
    probabilities: readonly number[],
    random: () => number,
    fallback: Picker<T>,
  ) {
    this.#sets = sets;
    this.#pickers = pickers;
    this.#draw = sets.length > 1 ? aliasDraw(probabilities) : undefined;
    this.#random = random;
    this.#fallback = fallback;
  }

  pick(ready: PickSet<T>, avoid: ReadonlySet<string> | undefined): T | undefined {
    const i = this.#draw === undefined ? 0 : this.#draw(this.#random);
    const set = this.#sets[i] as PickSet<T>;
    // every endpoint of the zone tried already: any ready one
    if (avoid !== undefined && avoid.size > 0 && set.countAddresses(avoid) >= set.size) {
      return this.#fallback.pick(ready, avoid);
    }
    return (this.#pickers[i] as Picker<T>).pick(set, avoid);
  }
}

/**
 * The picker kept for `key` in `pickers` (a zone's, a group's), made on
 * first use: round robin's cursor and p2c's turns then follow one set each
 * across decisions.
 *
 * @example
 * ```ts
 * const picker = pickerOf(pickers, 'eu-west-1a', () => p2cPicker(Math.random, clock));
 * ```
 */
export function pickerOf<K, T extends Candidate>(
  pickers: Map<K, Picker<T>>,
  key: K,
  make: () => Picker<T>,
): Picker<T> {
  let picker = pickers.get(key);
  if (picker === undefined) {
    picker = make();
    pickers.set(key, picker);
  }
  return picker;
}

const sameShares = (a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): boolean => {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) if (!Object.hasOwn(b, k) || a[k] !== b[k]) return false;
  return true;
};

/**
 * Zone-aware routing for one balancer: re-decides on each
 * {@link ZoneRouter.update} and holds the picker of calls for the decision
 * (`undefined` in mode `all`, when the balancer's own picker over the whole
 * ready set serves).
 *
 * @example
 * ```ts
 * const router = new ZoneRouter(zones, 50, () => p2cPicker(Math.random, clock), inner, Math.random);
 * if (router.update(set.active.values(), false)) console.log(router.routing);
 * const picker = router.picker ?? inner;
 * ```
 */
export class ZoneRouter<T extends ZoneCandidate> {
  readonly #options: ResolvedZones;
  readonly #panicThresholdPercent: number;
  readonly #newPicker: () => Picker<T>;
  readonly #fallback: Picker<T>;
  readonly #random: () => number;
  /** One inner picker per zone (and `undefined`: the hinted endpoints), kept across decisions. */
  readonly #pickers = new Map<string | undefined, Picker<T>>();
  #routing: ZoneRouting;
  #picker: Picker<T> | undefined;

  /**
   * @param newPicker - makes the inner picker of a zone
   * @param fallback - the balancer's picker, for a call that avoids the whole zone drawn
   */
  constructor(
    options: ResolvedZones,
    panicThresholdPercent: number,
    newPicker: () => Picker<T>,
    fallback: Picker<T>,
    random: () => number,
  ) {
    this.#options = options;
    this.#panicThresholdPercent = panicThresholdPercent;
    this.#newPicker = newPicker;
    this.#fallback = fallback;
    this.#random = random;
    this.#routing = decideZones<T>([], options, panicThresholdPercent, false).routing;
  }

  /** The decision in force. */
  get routing(): ZoneRouting {
    return this.#routing;
  }

  /** The picker of calls, or `undefined` when every ready endpoint may be picked (mode `all`). */
  get picker(): Picker<T> | undefined {
    return this.#picker;
  }

  /** Re-decides over the known endpoints; true when the published decision changed. */
  update(known: Iterable<T>, panicking: boolean): boolean {
    const { routing, targets } = decideZones(known, this.#options, this.#panicThresholdPercent, panicking);
    if (targets.length === 0) {
      this.#picker = undefined;
    } else {
      const pickers = targets.map((t) => pickerOf(this.#pickers, t.zone, this.#newPicker));
      this.#picker = new ZonePicker(
        targets.map((t) => new MemberSet(t.members)),
        pickers,
        targets.map((t) => t.probability),
        this.#random,
        this.#fallback,
      );
    }
    const previous = this.#routing;
    this.#routing = routing;
    return (
      previous.mode !== routing.mode ||
      previous.reason !== routing.reason ||
      previous.localShare !== routing.localShare ||
      !sameShares(previous.shares, routing.shares)
    );
  }
}
