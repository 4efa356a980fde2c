/**
 * Which picker a call meets: the balancer's picker over the whole ready
 * set, zone-aware routing's while it narrows the choice to some zones
 * (`pick/zones.ts`), or the panic-mode wrapper while too few endpoints are
 * ready (`pick/panic.ts`), which wins. Re-decided on each membership or
 * readiness change ({@link PickerRouting.update}), never per call: the
 * balancer copies the two pickers it hands calls to after each decision,
 * so a call out of panic and zone routing meets the inner picker directly.
 *
 * @internal
 * @module
 */
import type { EventStream } from '@grpc-tower/core/internal';
import type { EndpointSet } from './endpoint-set.js';
import type { BalancerEvent } from './events.js';
import type { ResolvedOptions } from './options.js';
import { PanicPicker } from './pick/panic.js';
import type { Picker } from './pick/picker.js';
import { ZoneRouter } from './pick/zones.js';
import type { Slot } from './slot.js';
import type { ZoneRouting } from './stats.js';

/**
 * @internal The panic decision and the zone routing of one balancer, and
 * the pickers they choose.
 *
 * @example
 * ```ts
 * const routing = new PickerRouting(newPicker, options, set.active);
 * routing.update(set, events);
 * const slot = routing.picker.pick(set.ready, undefined);
 * ```
 */
export class PickerRouting<K, Req, Res> {
  /** The picker over the whole ready set, made at construction. */
  readonly #inner: Picker<Slot<K, Req, Res>>;
  readonly #panic: PanicPicker<Slot<K, Req, Res>> | undefined;
  readonly #zones: ZoneRouter<Slot<K, Req, Res>> | undefined;
  #routed: Picker<Slot<K, Req, Res>>;
  #picker: Picker<Slot<K, Req, Res>>;

  /**
   * @param newPicker - makes a picker: one over the whole ready set, and
   *   one per zone with zone-aware routing
   * @param active - the active endpoints, which panic mode picks among
   */
  constructor(
    newPicker: () => Picker<Slot<K, Req, Res>>,
    options: ResolvedOptions,
    active: ReadonlyMap<K, Slot<K, Req, Res>>,
  ) {
    const picker = newPicker();
    this.#panic =
      options.panicThresholdPercent > 0
        ? new PanicPicker(picker, options.panicThresholdPercent, active)
        : undefined;
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

  /** Whether panic mode is on. */
  get panicking(): boolean {
    return this.#panic?.active ?? false;
  }

  /** Where calls go by zone; `undefined` without zone-aware routing. */
  get zoneRouting(): ZoneRouting | undefined {
    return this.#zones?.routing;
  }

  /** Re-decides panic mode and zone routing from the set, publishing each change of either. */
  update(set: EndpointSet<K, Req, Res>, events: EventStream<BalancerEvent<K>>): void {
    const panic = this.#panic;
    if (panic !== undefined) {
      const known = set.count('ready') + set.count('connecting') + set.count('failed');
      const ready = set.ready.size;
      if (panic.update(known, ready)) {
        events.emit(() => ({ type: 'panic', active: panic.active, known, ready }));
      }
    }
    const zones = this.#zones;
    if (zones !== undefined) {
      if (zones.update(set.active.values(), this.panicking)) {
        const routing = zones.routing;
        events.emit(() => ({ type: 'zones', ...routing }));
      }
      this.#routed = zones.picker ?? this.#inner;
    }
    this.#picker = panic?.active ? panic : this.#routed;
  }
}
