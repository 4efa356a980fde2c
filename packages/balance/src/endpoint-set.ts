/**
 * The balancer's endpoint set: the one component that holds endpoint
 * membership, and the only one that closes an endpoint.
 *
 * It applies discovery's inserts and removes, gives every endpoint a role,
 * follows each endpoint's readiness, counts the active endpoints by
 * readiness, and keeps the ready ones in a {@link ReadySet} for the picker:
 * - `active`: the endpoint of its key; in the ready set while it is ready;
 * - `incoming`: inserted under a known key while the active one still
 *   serves (replace-when-ready, below);
 * - `draining`: removed or replaced; `close()` lets its calls in flight
 *   finish, then it is forgotten.
 *
 * Replace-when-ready: an insert of a known key keeps the old endpoint
 * serving until the new one is ready, or the old one stops being ready,
 * whichever comes first; then the new one becomes active and the old one
 * drains. The wait is bounded by `replaceWaitMs`: past it the new one takes
 * over anyway, so an endpoint that never connects cannot hold the old one
 * open for ever. A further insert while one is incoming discards the
 * incoming one (it drains) and waits for the newest. A remove drains both.
 * An endpoint that was retired cannot come back (its `close()` has begun).
 *
 * Each endpoint's placement (weight, zone, topology hints) comes with its
 * insert (`Insert.metadata`) and is fixed on its {@link Slot} (`slot.ts`).
 *
 * Changes the owner makes (`insert`, `remove`) are left for it to follow
 * up; changes that come from an endpoint or a timer are reported through
 * {@link EndpointSetHooks}.
 *
 * @internal
 * @module
 */
import type { Endpoint, EndpointMetadata, Readiness } from '@grpc-tower/core';
import { type EventStream, checkEndpointMetadata, isEndpoint } from '@grpc-tower/core/internal';
import type { EndpointCounts } from './errors.js';
import type { BalancerEvent } from './events.js';
import type { LoadMetric } from './load/metric.js';
import { ReadySet } from './ready-set.js';
import { type EndpointRole, Slot, weightOf } from './slot.js';
import type { EndpointStats } from './stats.js';

const clock = (): number => performance.now();

/** Counts `key` up or down in `counts`, forgetting it at 0. */
function tally<T>(counts: Map<T, number>, key: T, delta: 1 | -1): void {
  const n = (counts.get(key) ?? 0) + delta;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

/**
 * @internal What the owner of an {@link EndpointSet} hears from it.
 *
 * @example
 * ```ts
 * const hooks: EndpointSetHooks = { readied: () => waiters.wakeSoon(), changed: () => refresh() };
 * ```
 */
export interface EndpointSetHooks {
  /** An endpoint entered the ready set: calls waiting for one may go. */
  readied(): void;
  /** An endpoint's readiness changed, or a replacement took over on its own. */
  changed(): void;
}

/**
 * @internal The settings of an {@link EndpointSet}.
 *
 * @example
 * ```ts
 * const options: EndpointSetOptions = { drainGraceMs: undefined, replaceWaitMs: 10_000 };
 * ```
 */
export interface EndpointSetOptions {
  /** Passed to a retired endpoint's `close({ graceMs })`; `undefined`: the endpoint's own. */
  readonly drainGraceMs: number | undefined;
  /** The most an incoming endpoint waits to be ready before it replaces the active one. */
  readonly replaceWaitMs: number;
}

/**
 * @internal The endpoints of one balancer, by key and role.
 *
 * @example
 * ```ts
 * const set = new EndpointSet(peakEwma(), { drainGraceMs: undefined, replaceWaitMs: 10_000 }, events, hooks);
 * set.insert('a', grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() }));
 * picker.pick(set.ready, undefined);
 * await set.close();
 * ```
 */
export class EndpointSet<K, Req, Res> {
  /** The active endpoints that are ready, for the picker. */
  readonly ready = new ReadySet<Slot<K, Req, Res>>();
  readonly #active = new Map<K, Slot<K, Req, Res>>();
  readonly #incoming = new Map<K, Slot<K, Req, Res>>();
  readonly #draining = new Set<Slot<K, Req, Res>>();
  readonly #retired = new WeakSet<object>();
  readonly #counts: Record<Readiness, number> = { ready: 0, connecting: 0, failed: 0, closed: 0 };
  /** The active endpoints per priority level and per group, so that a set of one of each costs nothing. */
  readonly #levels = new Map<number, number>();
  readonly #groups = new Map<string, number>();
  readonly #metric: LoadMetric;
  readonly #options: EndpointSetOptions;
  readonly #events: EventStream<BalancerEvent<K>>;
  readonly #hooks: EndpointSetHooks;

  constructor(
    metric: LoadMetric,
    options: EndpointSetOptions,
    events: EventStream<BalancerEvent<K>>,
    hooks: EndpointSetHooks,
  ) {
    this.#metric = metric;
    this.#options = options;
    this.#events = events;
    this.#hooks = hooks;
  }

  /** The active endpoint of each key. */
  get active(): ReadonlyMap<K, Slot<K, Req, Res>> {
    return this.#active;
  }

  /** Whether the active endpoints span more than one priority level. O(1). */
  get spansLevels(): boolean {
    return this.#levels.size > 1;
  }

  /** Whether the active endpoints span more than one group. O(1). */
  get spansGroups(): boolean {
    return this.#groups.size > 1;
  }

  /** How many active endpoints have readiness `r`. */
  count(r: Readiness): number {
    return this.#counts[r];
  }

  /**
   * The active endpoints by readiness; a failed one in a connection attempt
   * {@link EndpointSet.reconnect} asked for counts as connecting. O(n) when
   * some failed, to tell the ejected and the reconnecting apart.
   */
  counts(): EndpointCounts {
    const c = this.#counts;
    // held out while connected: a health check or outlier detection (off the pick path)
    let ejected = 0;
    let reconnecting = 0;
    if (c.failed > 0) {
      for (const s of this.#active.values()) {
        if (s.readiness !== 'failed') continue;
        const ep = s.endpoint;
        if (ep.connected === true && ep.readiness !== 'ready') ejected++;
        else if (s.reconnect !== undefined) reconnecting++;
      }
    }
    return {
      known: this.#active.size,
      ready: c.ready,
      connecting: c.connecting + reconnecting,
      failed: c.failed - ejected - reconnecting,
      ejected,
      closed: c.closed,
    };
  }

  /**
   * Whether a failed active endpoint is in a connection attempt that
   * {@link EndpointSet.reconnect} asked for. O(n); for when none is ready
   * or connecting.
   */
  reconnecting(): boolean {
    for (const s of this.#active.values()) {
      if (s.readiness === 'failed' && s.reconnect !== undefined) return true;
    }
    return false;
  }

  /**
   * Asks every failed active endpoint that is in no such attempt yet to
   * connect now (`Endpoint.reconnect`), once per endpoint: the attempt is
   * shared by every call that waits meanwhile, and its end is reported
   * through `changed`. Returns whether one started. O(n); for when none is
   * ready or connecting. An endpoint whose `reconnect` throws is reported as
   * an `endpoint-error` and left as it is.
   */
  reconnect(): boolean {
    let started = false;
    for (const slot of this.#active.values()) {
      if (slot.readiness !== 'failed' || slot.reconnect !== undefined) continue;
      const endpoint = slot.endpoint;
      if (typeof endpoint.reconnect !== 'function') continue;
      let attempt: Promise<void> | undefined;
      try {
        attempt = endpoint.reconnect();
      } catch (error) {
        this.#events.emit(() => ({ type: 'endpoint-error', key: slot.key, address: slot.address, error }));
        continue;
      }
      if (attempt === undefined) continue;
      started = true;
      this.#events.emit(() => ({ type: 'reconnect', key: slot.key, address: slot.address }));
      const ended = (): void => this.#reconnected(slot, tracked);
      const tracked: Promise<void> = Promise.resolve(attempt).then(ended, ended);
      slot.reconnect = tracked;
    }
    return started;
  }

  /** The attempt `reconnect` asked `slot` for has ended. */
  #reconnected(slot: Slot<K, Req, Res>, attempt: Promise<void>): void {
    if (slot.reconnect !== attempt) return;
    slot.reconnect = undefined;
    if (slot.role === 'active') this.#hooks.changed();
  }

  /**
   * The last errors of the active endpoints that are not ready, for an
   * error message: `; last errors: 10.0.0.7:50051: connect ECONNREFUSED
   * 10.0.0.7:50051` (at most `max` of them, then how many more), or `''`
   * when none has one. O(n).
   */
  describeLastErrors(max: number): string {
    const named: string[] = [];
    let more = 0;
    for (const s of this.#active.values()) {
      if (s.readiness === 'ready') continue;
      const reason = s.endpoint.lastError;
      if (typeof reason !== 'string' || reason.length === 0) continue;
      if (named.length < max) named.push(`${s.address}: ${reason}`);
      else more++;
    }
    if (named.length === 0) return '';
    return `; last error${named.length + more > 1 ? 's' : ''}: ${named.join('; ')}${more > 0 ? `; and ${more} more` : ''}`;
  }

  /**
   * Applies an insert, with the endpoint's placement from its `metadata`.
   * A value that is not an endpoint, or one already retired, is reported as
   * a `discovery-error` and ignored: returns false. Metadata that is not
   * valid is reported as a `discovery-error` (a `ConfigError` naming the
   * key and the member) and the insert applies with the defaults for it
   * (weight 1, no zone, no hints), so a bad weight never takes a server out.
   */
  insert(key: K, endpoint: unknown, metadata?: EndpointMetadata): boolean {
    if (!isEndpoint(endpoint)) {
      this.#events.emit(() => ({
        type: 'discovery-error',
        error: new TypeError(`insert of key ${String(key)}: the value is not an Endpoint`),
      }));
      return false;
    }
    if (this.#retired.has(endpoint)) {
      this.#events.emit(() => ({
        type: 'discovery-error',
        error: new TypeError(
          `insert of key ${String(key)}: endpoint ${endpoint.address} was already removed and ` +
            'closed; insert a new endpoint object instead',
        ),
      }));
      return false;
    }
    if (metadata !== undefined) {
      try {
        checkEndpointMetadata(`insert of key ${String(key)}`, metadata);
      } catch (error) {
        this.#events.emit(() => ({ type: 'discovery-error', error }));
      }
    }
    const ep = endpoint as Endpoint<Req, Res>;
    const current = this.#active.get(key);
    if (current === undefined) {
      const slot = this.#slot(key, ep, 'active', metadata);
      this.#active.set(key, slot);
      this.#enter(slot);
      this.#events.emit(() => ({ type: 'insert', key, address: slot.address, replacing: undefined }));
      this.#watch(slot);
      return true;
    }
    if (current.endpoint === ep) return true;
    const queued = this.#incoming.get(key);
    if (queued !== undefined) {
      if (queued.endpoint === ep) return true;
      this.#incoming.delete(key);
      this.#retire(queued);
    }
    const slot = this.#slot(key, ep, 'incoming', metadata);
    this.#incoming.set(key, slot);
    this.#events.emit(() => ({ type: 'insert', key, address: slot.address, replacing: current.address }));
    this.#watch(slot);
    if (slot.role !== 'incoming') return true; // its first readiness already promoted it
    if (slot.readiness === 'ready' || current.readiness !== 'ready') this.#promote(slot);
    else this.#holdOld(slot);
    return true;
  }

  /** Applies a remove: the key's endpoints drain. An unknown key is ignored. */
  remove(key: K): void {
    const queued = this.#incoming.get(key);
    if (queued !== undefined) {
      this.#incoming.delete(key);
      this.#retire(queued);
    }
    const slot = this.#active.get(key);
    if (slot === undefined) return;
    this.#active.delete(key);
    this.#leave(slot);
    this.#events.emit(() => ({ type: 'remove', key, address: slot.address }));
    this.#retire(slot);
  }

  /** One row per endpoint: active first, then incoming, then draining. */
  stats(): EndpointStats<K>[] {
    const now = clock();
    const rows: EndpointStats<K>[] = [];
    const add = (s: Slot<K, Req, Res>): void => {
      rows.push({
        key: s.key,
        address: s.address,
        state: s.readiness,
        role: s.role,
        zone: s.zone,
        priority: s.priority,
        ...(s.group === '' ? {} : { group: s.group }),
        pending: s.endpoint.pending,
        ewmaMs: s.load.estimateMs(now),
        cost: s.load.cost(now),
        picks: s.picks,
        failures: s.failures,
      });
    };
    for (const s of this.#active.values()) add(s);
    for (const s of this.#incoming.values()) add(s);
    for (const s of this.#draining) add(s);
    return rows;
  }

  /**
   * Retires every endpoint (at once, before returning) and resolves when
   * all have closed. `graceMs` overrides `drainGraceMs` for these closes.
   */
  close(graceMs = this.#options.drainGraceMs): Promise<void> {
    for (const [key, slot] of [...this.#incoming]) {
      this.#incoming.delete(key);
      this.#retire(slot, graceMs);
    }
    for (const [key, slot] of [...this.#active]) {
      this.#active.delete(key);
      this.#leave(slot);
      this.#retire(slot, graceMs);
    }
    return Promise.all([...this.#draining].map((s) => s.closing)).then(() => undefined);
  }

  #slot(
    key: K,
    endpoint: Endpoint<Req, Res>,
    role: EndpointRole,
    metadata: EndpointMetadata | undefined,
  ): Slot<K, Req, Res> {
    const weight = weightOf(metadata);
    // a weighted endpoint's load counts its calls in flight per unit of
    // weight: weight 2 with two calls in flight is as loaded as weight 1 with one
    const subject =
      weight === 1
        ? endpoint
        : {
            address: endpoint.address,
            get pending(): number {
              return endpoint.pending / weight;
            },
          };
    return new Slot(key, endpoint, this.#metric.create(subject, clock()), role, metadata);
  }

  /** Follows the endpoint's readiness; the first (current) value is usually a no-op. */
  #watch(slot: Slot<K, Req, Res>): void {
    slot.sub = slot.endpoint.readiness$.subscribe({
      next: (r) => this.#onReadiness(slot, r),
      error: (error: unknown) => {
        this.#events.emit(() => ({ type: 'endpoint-error', key: slot.key, address: slot.address, error }));
        this.#onReadiness(slot, 'failed');
      },
    });
  }

  #enter(slot: Slot<K, Req, Res>): void {
    slot.role = 'active';
    this.#counts[slot.readiness]++;
    tally(this.#levels, slot.priority, 1);
    tally(this.#groups, slot.group, 1);
    if (slot.readiness === 'ready') {
      if (this.ready.add(slot)) slot.readySince = clock();
      this.#hooks.readied();
    }
  }

  #leave(slot: Slot<K, Req, Res>): void {
    this.#counts[slot.readiness]--;
    tally(this.#levels, slot.priority, -1);
    tally(this.#groups, slot.group, -1);
    this.ready.remove(slot);
  }

  #onReadiness(slot: Slot<K, Req, Res>, readiness: Readiness): void {
    const previous = slot.readiness;
    if (previous === readiness) return;
    slot.readiness = readiness;
    if (slot.role === 'active') {
      this.#counts[previous]--;
      this.#counts[readiness]++;
      if (readiness === 'ready') {
        if (this.ready.add(slot)) slot.readySince = clock();
        this.#hooks.readied();
      } else {
        this.ready.remove(slot);
      }
    }
    this.#events.emit(() => ({ type: 'readiness', key: slot.key, address: slot.address, readiness }));
    if (slot.role === 'active' && readiness !== 'ready') {
      const queued = this.#incoming.get(slot.key);
      if (queued !== undefined) this.#promote(queued);
    } else if (slot.role === 'incoming' && readiness === 'ready') {
      this.#promote(slot);
    }
    this.#hooks.changed();
  }

  /** Keeps the active endpoint of `slot.key` serving while `slot` connects, at most `replaceWaitMs`. */
  #holdOld(slot: Slot<K, Req, Res>): void {
    const waitMs = this.#options.replaceWaitMs;
    if (waitMs === 0) {
      this.#promote(slot);
      return;
    }
    slot.replaceTimer = setTimeout(() => {
      slot.replaceTimer = undefined;
      if (this.#incoming.get(slot.key) !== slot) return;
      this.#promote(slot);
      this.#hooks.changed();
    }, waitMs);
    slot.replaceTimer.unref?.();
  }

  /** The incoming endpoint of a key takes over; the one it replaces drains. */
  #promote(slot: Slot<K, Req, Res>): void {
    this.#stopWaiting(slot);
    this.#incoming.delete(slot.key);
    const old = this.#active.get(slot.key);
    this.#active.set(slot.key, slot);
    this.#enter(slot);
    if (old !== undefined) {
      this.#leave(old);
      this.#events.emit(() => ({
        type: 'replace',
        key: slot.key,
        address: slot.address,
        previous: old.address,
      }));
      this.#retire(old);
    }
  }

  #stopWaiting(slot: Slot<K, Req, Res>): void {
    if (slot.replaceTimer === undefined) return;
    clearTimeout(slot.replaceTimer);
    slot.replaceTimer = undefined;
  }

  /** Out of service: drain and close, reporting (never throwing) a close failure. */
  #retire(slot: Slot<K, Req, Res>, graceMs = this.#options.drainGraceMs): void {
    this.#stopWaiting(slot);
    slot.role = 'draining';
    this.#draining.add(slot);
    this.#retired.add(slot.endpoint);
    let closing: Promise<void>;
    try {
      closing = Promise.resolve(slot.endpoint.close(graceMs === undefined ? undefined : { graceMs }));
    } catch (err) {
      closing = Promise.reject(err);
    }
    slot.closing = closing.then(
      () => {
        this.#forget(slot);
        this.#events.emit(() => ({ type: 'closed', key: slot.key, address: slot.address }));
      },
      (error: unknown) => {
        this.#forget(slot);
        this.#events.emit(() => ({ type: 'close-error', key: slot.key, address: slot.address, error }));
      },
    );
  }

  #forget(slot: Slot<K, Req, Res>): void {
    this.#draining.delete(slot);
    slot.sub?.unsubscribe();
  }
}
