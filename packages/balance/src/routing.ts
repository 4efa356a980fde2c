/**
 * Which picker a call meets and which set it picks from: the balancer's
 * picker over the whole ready set, zone-aware routing's while it narrows
 * the choice to some zones (`pick/zones.ts`), or the panic-mode wrapper
 * while too few endpoints are ready (`pick/panic.ts`), which wins; all of
 * them within the priority level in use while the endpoints span several
 * (`pick/priorities.ts`); and, while the endpoints span several groups,
 * the split across groups first (`pick/groups.ts`), each group with its own
 * priority choice. Re-decided on each membership or readiness change
 * ({@link PickerRouting.update}), never per call: the balancer copies the
 * two pickers and the pick set it hands calls to after each decision, so a
 * call out of panic, zone routing, priorities and groups meets the inner
 * picker over the ready set directly.
 *
 * @internal
 * @module
 */
import type { EventStream } from '@grpc-tower/core/internal';
import type { EndpointSet } from './endpoint-set.js';
import type { BalancerEvent } from './events.js';
import type { ResolvedOptions } from './options.js';
import { PanicPicker } from './pick/panic.js';
import { GroupRouter } from './pick/groups.js';
import type { PickSet, Picker } from './pick/picker.js';
import { PriorityRouter } from './pick/priorities.js';
import { ZoneRouter } from './pick/zones.js';
import type { Slot } from './slot.js';
import type { BalancerStats, ZoneRouting } from './stats.js';

/**
 * @internal The priority, panic, zone and group decisions of one
 * balancer, and the pickers and pick set they choose.
 *
 * @example
 * ```ts
 * const routing = new PickerRouting(newPicker, options, set.active);
 * routing.update(set, events);
 * const slot = routing.picker.pick(routing.pickSet ?? set.ready, undefined);
 * ```
 */
export class PickerRouting<K, Req, Res> {
  /** The picker over the whole ready set, made at construction. */
  readonly #inner: Picker<Slot<K, Req, Res>>;
  readonly #panic: PanicPicker<Slot<K, Req, Res>> | undefined;
  readonly #zones: ZoneRouter<Slot<K, Req, Res>> | undefined;
  readonly #priorities: PriorityRouter<Slot<K, Req, Res>>;
  readonly #groups: GroupRouter<Slot<K, Req, Res>>;
  #pickSet: PickSet<Slot<K, Req, Res>> | undefined;
  #routed: Picker<Slot<K, Req, Res>>;
  #picker: Picker<Slot<K, Req, Res>>;

  /**
   * @param newPicker - makes a picker: one over the whole ready set, and
   *   one per zone with zone-aware routing
   * @param active - the active endpoints, which panic mode picks among
   *   (those of the priority level in use, while there are several)
   */
  constructor(
    newPicker: () => Picker<Slot<K, Req, Res>>,
    options: ResolvedOptions,
    active: ReadonlyMap<K, Slot<K, Req, Res>>,
  ) {
    const picker = newPicker();
    const priorities = new PriorityRouter<Slot<K, Req, Res>>(options.priorityReadyPercent);
    this.#priorities = priorities;
    // panic mode reads the known endpoints of the level in use (all of them with one level)
    const known = { values: () => priorities.known ?? active.values() };
    this.#panic =
      options.panicThresholdPercent > 0
        ? new PanicPicker(picker, options.panicThresholdPercent, known)
        : undefined;
    this.#groups = new GroupRouter(options.priorityReadyPercent, newPicker, picker, options.random);
    this.#inner = picker;
    this.#routed = picker;
    this.#picker = picker;
    this.#zones =
      options.zones === undefined
        ? undefined
        : new ZoneRouter(options.zones, options.panicThresholdPercent, newPicker, picker, options.random);
  }

  /** The picker of calls: the routed one, or the panic-mode wrapper while in panic. */
  get picker(): Picker<Slot<K, Req, Res>> {
    return this.#picker;
  }

  /** The picker out of panic (for a call woken by a ready endpoint): the inner one, or zone routing's. */
  get routed(): Picker<Slot<K, Req, Res>> {
    return this.#routed;
  }

  /** What calls pick from: the ready endpoints of the priority level in use, or `undefined` for the whole ready set. */
  get pickSet(): PickSet<Slot<K, Req, Res>> | undefined {
    return this.#pickSet;
  }

  /** The priority level calls go to, or `undefined` while priorities play no part. */
  get priority(): number | undefined {
    return this.#priorities.priority;
  }

  /** Each group's share of the calls, or `undefined` while the endpoints span one group. */
  get groupShares(): Readonly<Record<string, number>> | undefined {
    return this.#groups.shares;
  }

  /** The decisions in force as `BalancerStats` members: `zones`, `priority`, `groups`, each when in play. */
  stats(): Pick<BalancerStats<K>, 'zones' | 'priority' | 'groups'> {
    const zones = this.zoneRouting;
    const priority = this.priority;
    const groups = this.groupShares;
    return {
      ...(zones === undefined ? {} : { zones }),
      ...(priority === undefined ? {} : { priority }),
      ...(groups === undefined ? {} : { groups }),
    };
  }

  /** Whether panic mode is on. */
  get panicking(): boolean {
    return this.#panic?.active ?? false;
  }

  /** Where calls go by zone; `undefined` without zone-aware routing. */
  get zoneRouting(): ZoneRouting | undefined {
    return this.#zones?.routing;
  }

  /** Re-decides the priority level, panic mode, zone routing and the group split from the set, publishing each change. */
  update(set: EndpointSet<K, Req, Res>, events: EventStream<BalancerEvent<K>>): void {
    const priorities = this.#priorities;
    const previous = priorities.priority;
    // O(1) unless the endpoints span several levels
    if (priorities.update(set.spansLevels ? set.active.values() : [])) {
      const known = priorities.known?.length ?? set.active.size;
      const ready = priorities.set?.size ?? set.ready.size;
      events.emit(() => ({ type: 'priority', priority: priorities.priority, previous, known, ready }));
    }
    this.#pickSet = priorities.set;
    const level = priorities.known;
    const panic = this.#panic;
    if (panic !== undefined) {
      const known =
        level === undefined
          ? set.count('ready') + set.count('connecting') + set.count('failed')
          : level.length;
      const ready = (this.#pickSet ?? set.ready).size;
      if (panic.update(known, ready)) {
        events.emit(() => ({ type: 'panic', active: panic.active, known, ready }));
      }
    }
    const zones = this.#zones;
    if (zones?.update(level ?? set.active.values(), this.panicking)) {
      const routing = zones.routing;
      events.emit(() => ({ type: 'zones', ...routing }));
    }
    this.#routed = zones?.picker ?? this.#inner;
    this.#picker = panic?.active ? panic : this.#routed;
    // a split across groups comes first, with its own priority choice within each group
    const groups = this.#groups;
    if (groups.update(set.spansGroups ? set.active.values() : [])) {
      events.emit(() => ({ type: 'groups', shares: groups.shares }));
    }
    if (groups.picker !== undefined) {
      this.#routed = groups.picker;
      this.#picker = groups.picker;
      this.#pickSet = undefined;
    }
  }
}
