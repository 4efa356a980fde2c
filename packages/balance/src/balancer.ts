/**
 * The balancer machinery shared by {@link p2c} and {@link roundRobin}: it
 * follows a discovery stream and each endpoint's readiness as they change,
 * keeps the ready endpoints in a dense array for O(1) picks, makes calls wait
 * (bounded) while none is ready, drains removed and replaced endpoints, and
 * reports per-endpoint stats.
 *
 * @module
 */
import {
  AvoidEndpoints,
  EndpointPicked,
  type CallContext,
  ClosedError,
  ConfigError,
  DeadlineExceededError,
  type Endpoint,
  type Readiness,
  type Service,
  abortReason,
  toGrpcTowerError,
  type Change,
  type Discover,
} from '@grpc-tower/core';
import { isEndpoint } from '@grpc-tower/core/internal';
import {
  BehaviorSubject,
  type Observable,
  Subject,
  type Subscription,
  auditTime,
  concat,
  defer,
  interval,
  map,
  merge,
  of,
  takeUntil,
} from 'rxjs';
import { type EndpointCounts, NoReadyEndpointDeadlineError, NoReadyEndpointError } from './errors.js';
import type { EndpointLoad, LoadMetric } from './load.js';
import { type LoopClock, loopClock } from './loop-clock.js';
import { ArrayPickSet, type Picker } from './pick.js';
import { ReadySet } from './ready-set.js';

/**
 * Options shared by {@link p2c} and {@link roundRobin}.
 *
 * @example
 * ```ts
 * const options: BalancerOptions = { target: 'dns:orders:50051', failFastMs: 1000, drainGraceMs: 10_000 };
 * ```
 */
export interface BalancerOptions {
  /** The name of what is balanced, used in errors and stats, such as `'dns:orders:50051'`; default `'unnamed'`. */
  readonly target?: string;
  /**
   * How long a call waits for a ready endpoint when none is ready, in ms;
   * default 3000 (Linkerd's fail-fast). The call's deadline, when sooner,
   * ends the wait first. 0 fails at once.
   */
  readonly failFastMs?: number;
  /** Wait for a ready endpoint until the call's deadline or cancellation, with no fail-fast; default false. */
  readonly waitForReady?: boolean;
  /** The random source, uniform in [0, 1); default `Math.random`. Seed it for reproducible picks. */
  readonly random?: () => number;
  /** How long a removed or replaced endpoint may take to finish its calls, passed to its `close()`; default: the endpoint's own. */
  readonly drainGraceMs?: number;
  /** How often `stats$` emits while nothing changes, in ms; default 1000. */
  readonly statsIntervalMs?: number;
  /**
   * Panic threshold in percent (Envoy, Finagle); default 50. When fewer
   * than this share of the known endpoints are ready, calls are balanced
   * across every endpoint whose connection is up (`endpoint.connected`),
   * including those a health check or outlier detection holds out, instead
   * of piling onto the few ready ones or failing. 0 disables it.
   */
  readonly panicThresholdPercent?: number;
  /**
   * Leave out of each call's round-trip time the time this process's event
   * loop was blocked while the call was in flight (a GC pause, a long
   * synchronous task); default true. The load metric then sees the
   * servers' latency rather than the client's own pauses, which would
   * otherwise be charged to whichever endpoints had calls in flight. Only
   * for load metrics that use round-trip times (not `pendingRequests()`,
   * nor `roundRobin`). See the balancing guide, "Client pauses".
   */
  readonly excludeLoopBlocks?: boolean;
}

/**
 * The role of an endpoint in the balancer:
 * - `active`: the endpoint of its key; picked when ready;
 * - `incoming`: inserted again under a known key; waits to be ready, then
 *   replaces the active one (which drains);
 * - `draining`: removed or replaced; finishes its calls, then closes.
 *
 * @example
 * ```ts
 * const draining = balancer.stats().endpoints.filter((e) => e.role === 'draining').length;
 * ```
 */
export type EndpointRole = 'active' | 'incoming' | 'draining';

/**
 * One endpoint in {@link BalancerStats}.
 *
 * @example
 * ```ts
 * for (const e of balancer.stats().endpoints) console.log(e.address, e.state, e.pending, e.ewmaMs);
 * ```
 */
export interface EndpointStats<K> {
  readonly key: K;
  readonly address: string;
  /** The endpoint's readiness. */
  readonly state: Readiness;
  readonly role: EndpointRole;
  /** Its calls in flight (`endpoint.pending`). */
  readonly pending: number;
  /** The PeakEWMA round-trip estimate in ms, `undefined` for metrics without one. */
  readonly ewmaMs: number | undefined;
  /** Its cost as the load metric computes it now. */
  readonly cost: number;
  /** Calls sent to it by this balancer. */
  readonly picks: number;
  /** Of those, calls that failed (not counting the caller's own cancellations and deadlines). */
  readonly failures: number;
}

/**
 * A snapshot of a balancer.
 *
 * @example
 * ```ts
 * const s = balancer.stats();
 * console.log(s.readiness, s.counts.ready, '/', s.counts.known, 'ready;', s.waiting, 'calls waiting');
 * ```
 */
export interface BalancerStats<K> {
  readonly target: string;
  /** The aggregate readiness (see {@link Balancer.readiness}). */
  readonly readiness: Readiness;
  /** The active endpoints by readiness. */
  readonly counts: EndpointCounts;
  /** Calls waiting for a ready endpoint. */
  readonly waiting: number;
  /** Active endpoints first, then incoming, then draining ones. */
  readonly endpoints: readonly EndpointStats<K>[];
}

/**
 * What happened inside a balancer, for logs and metrics. Failures that are
 * not a call's (an endpoint that failed to close, a discovery stream that
 * errored) are reported here and never thrown.
 *
 * @example
 * ```ts
 * balancer.events$.subscribe((e) => { if (e.type === 'close-error') log.warn(e.address, e.error); });
 * ```
 */
export type BalancerEvent<K> =
  | {
      readonly type: 'insert';
      readonly key: K;
      readonly address: string;
      readonly replacing: string | undefined;
    }
  | { readonly type: 'replace'; readonly key: K; readonly address: string; readonly previous: string }
  | { readonly type: 'remove'; readonly key: K; readonly address: string }
  | { readonly type: 'readiness'; readonly key: K; readonly address: string; readonly readiness: Readiness }
  | { readonly type: 'closed'; readonly key: K; readonly address: string }
  | { readonly type: 'close-error'; readonly key: K; readonly address: string; readonly error: unknown }
  | { readonly type: 'endpoint-error'; readonly key: K; readonly address: string; readonly error: unknown }
  | { readonly type: 'discovery-error'; readonly error: unknown }
  | { readonly type: 'discovery-complete' }
  | { readonly type: 'panic'; readonly active: boolean; readonly known: number; readonly ready: number };

/** One endpoint as the balancer tracks it. */
class Slot<K, Req, Res> {
  /** Position in the ready set, -1 when not in it (managed by {@link ReadySet}). */
  readyIndex = -1;
  readonly address: string;
  readiness: Readiness;
  role: EndpointRole;
  picks = 0;
  failures = 0;
  readySince = 0;
  sub: Subscription | undefined;
  closing: Promise<void> | undefined;

  constructor(
    readonly key: K,
    readonly endpoint: Endpoint<Req, Res>,
    readonly load: EndpointLoad,
    role: EndpointRole,
  ) {
    this.address = endpoint.address;
    this.readiness = endpoint.readiness;
    this.role = role;
  }
}

interface Waiter {
  /** A ready endpoint exists: pick and send. */
  wake(): void;
  fail(err: unknown): void;
}

/** The longest delay `setTimeout` takes; longer waits rely on the call's signal. */
const MAX_TIMER_MS = 2_147_483_647;

const clock = (): number => performance.now();

/** @internal Validated balancer options. */
export interface ResolvedOptions {
  readonly target: string;
  readonly failFastMs: number;
  readonly waitForReady: boolean;
  readonly random: () => number;
  readonly drainGraceMs: number | undefined;
  readonly statsIntervalMs: number;
  readonly panicThresholdPercent: number;
  readonly excludeLoopBlocks: boolean;
}

/** @internal Checks the shared options; throws `ConfigError` naming `where`. */
export function resolveOptions(where: string, discover: unknown, options: BalancerOptions): ResolvedOptions {
  if (typeof (discover as { subscribe?: unknown } | null)?.subscribe !== 'function') {
    throw new ConfigError(where, 'discover', discover, 'an Observable of Change (insert/remove) values');
  }
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(where, 'options', options, 'an object');
  }
  const target = options.target ?? 'unnamed';
  if (typeof target !== 'string' || target.length === 0) {
    throw new ConfigError(where, 'target', target, 'a non-empty string');
  }
  const failFastMs = options.failFastMs ?? 3000;
  if (typeof failFastMs !== 'number' || !Number.isFinite(failFastMs) || failFastMs < 0) {
    throw new ConfigError(where, 'failFastMs', failFastMs, 'a finite number >= 0');
  }
  const waitForReady = options.waitForReady ?? false;
  if (typeof waitForReady !== 'boolean') {
    throw new ConfigError(where, 'waitForReady', waitForReady, 'a boolean');
  }
  const random = options.random ?? Math.random;
  if (typeof random !== 'function') {
    throw new ConfigError(where, 'random', random, 'a function returning [0, 1)');
  }
  const drainGraceMs = options.drainGraceMs;
  if (drainGraceMs !== undefined && (!Number.isFinite(drainGraceMs) || drainGraceMs < 0)) {
    throw new ConfigError(where, 'drainGraceMs', drainGraceMs, 'a finite number >= 0');
  }
  const statsIntervalMs = options.statsIntervalMs ?? 1000;
  if (!Number.isFinite(statsIntervalMs) || statsIntervalMs <= 0) {
    throw new ConfigError(where, 'statsIntervalMs', statsIntervalMs, 'a finite number > 0');
  }
  const panicThresholdPercent = options.panicThresholdPercent ?? 50;
  if (!Number.isFinite(panicThresholdPercent) || panicThresholdPercent < 0 || panicThresholdPercent > 100) {
    throw new ConfigError(where, 'panicThresholdPercent', panicThresholdPercent, 'a number from 0 to 100');
  }
  const excludeLoopBlocks = options.excludeLoopBlocks ?? true;
  if (typeof excludeLoopBlocks !== 'boolean') {
    throw new ConfigError(where, 'excludeLoopBlocks', excludeLoopBlocks, 'a boolean');
  }
  return {
    target,
    failFastMs,
    waitForReady,
    random,
    drainGraceMs,
    statsIntervalMs,
    panicThresholdPercent,
    excludeLoopBlocks,
  };
}

/**
 * A load balancer over a discovered set of endpoints: a {@link Service}
 * that sends each call to one ready endpoint, chosen by its picker ({@link p2c}
 * or {@link roundRobin} build one). It is also a readiness source (pass it
 * as `createChannel`'s `readiness`) and closes everything it holds on
 * {@link Balancer.close} (pass it in `owns`).
 *
 * What happens, and when:
 * - it subscribes to discovery at construction; each change applies when
 *   it arrives, with or without traffic;
 * - it subscribes to each endpoint's `readiness$`: an endpoint that turns
 *   ready is eligible at once and wakes waiting calls; one that fails leaves
 *   the ready set but stays known (its own reconnection backoff brings it
 *   back);
 * - a removed endpoint leaves the ready set at once, then drains
 *   (`endpoint.close()`);
 * - an insert of a known key keeps the old endpoint serving until the new
 *   one is ready (or the old one stops being ready), then drains the old.
 *
 * @example
 * ```ts
 * const balancer = p2c(discover, { target: 'orders' });
 * const channel = createChannel(balancer, { target: 'orders', readiness: balancer, owns: [balancer] });
 * ```
 */
export class Balancer<Req, Res, K = unknown> implements Service<Req, Res> {
  readonly #options: ResolvedOptions;
  readonly #metric: LoadMetric;
  readonly #loopClock: LoopClock | undefined;
  readonly #picker: Picker<Slot<K, Req, Res>>;
  readonly #ready = new ReadySet<Slot<K, Req, Res>>();
  readonly #active = new Map<K, Slot<K, Req, Res>>();
  readonly #incoming = new Map<K, Slot<K, Req, Res>>();
  readonly #draining = new Set<Slot<K, Req, Res>>();
  readonly #retired = new WeakSet<object>();
  readonly #counts: Record<Readiness, number> = { ready: 0, connecting: 0, failed: 0, closed: 0 };
  readonly #waiters = new Set<Waiter>();
  readonly #readiness: BehaviorSubject<Readiness>;
  readonly #events = new Subject<BalancerEvent<K>>();
  readonly #done = new Subject<void>();
  #wakeScheduled = false;
  #discovery: Subscription | undefined;
  #sawChange = false;
  #discoveryError: unknown;
  #closing: Promise<void> | undefined;

  /**
   * The aggregate readiness, emitted on subscribe and on every change;
   * completes after `close()`. See {@link Balancer.readiness}.
   */
  readonly readiness$: Observable<Readiness>;

  /**
   * Everything that happens to endpoints and discovery, as it happens
   * (a hot stream: subscribe early). Completes after `close()`.
   */
  readonly events$: Observable<BalancerEvent<K>>;

  /**
   * {@link BalancerStats} snapshots: one on subscribe, one after each burst
   * of changes (membership, readiness), and one every `statsIntervalMs`
   * while subscribed. Completes after `close()`.
   */
  readonly stats$: Observable<BalancerStats<K>>;

  /** @internal Use {@link p2c} or {@link roundRobin}. */
  constructor(
    discover: Discover<K, Endpoint<Req, Res>>,
    picker: Picker<Slot<K, Req, Res>>,
    metric: LoadMetric,
    options: ResolvedOptions,
  ) {
    this.#options = options;
    this.#loopClock =
      options.excludeLoopBlocks && metric.usesRoundTripTimes !== false ? loopClock : undefined;
    this.#picker = picker;
    this.#metric = metric;
    this.#readiness = new BehaviorSubject<Readiness>('connecting');
    this.readiness$ = this.#readiness.asObservable();
    this.events$ = this.#events.asObservable();
    const live = merge(of(0), this.#events.pipe(auditTime(0)), interval(options.statsIntervalMs)).pipe(
      takeUntil(this.#done),
    );
    // the last snapshot, taken when the balancer has closed
    const last = defer(() => of(0));
    this.stats$ = defer(() => (this.#closing === undefined ? concat(live, last) : last)).pipe(
      map(() => this.stats()),
    );
    this.#discovery = discover.subscribe({
      next: (change) => this.#apply(change),
      error: (error: unknown) => {
        this.#discoveryError = error;
        this.#emit({ type: 'discovery-error', error });
        this.#refresh();
      },
      complete: () => this.#emit({ type: 'discovery-complete' }),
    });
  }

  /** The target named in the options. */
  get target(): string {
    return this.#options.target;
  }

  /** The name of the load metric. */
  get metric(): string {
    return this.#metric.name;
  }

  /**
   * The aggregate readiness, for `createChannel`'s connectivity state:
   * - `ready` when at least one endpoint is ready;
   * - else `connecting` when one is connecting, or when discovery has not
   *   produced anything yet;
   * - else `failed`: endpoints are known but none is ready or connecting,
   *   or discovery emptied the set or failed before producing any;
   * - `closed` after `close()`.
   */
  get readiness(): Readiness {
    return this.#readiness.value;
  }

  /** The active endpoints by readiness. */
  counts(): EndpointCounts {
    const c = this.#counts;
    // held out while connected: a health check or outlier detection (O(n), off the pick path)
    let ejected = 0;
    if (c.failed > 0) {
      for (const s of this.#active.values()) {
        const ep = s.endpoint;
        if (s.readiness === 'failed' && ep.connected === true && ep.readiness !== 'ready') ejected++;
      }
    }
    return {
      known: this.#active.size,
      ready: c.ready,
      connecting: c.connecting,
      failed: c.failed - ejected,
      ejected,
      closed: c.closed,
    };
  }

  /**
   * Sends the call to a ready endpoint. With none ready, waits for one until
   * `failFastMs` ({@link NoReadyEndpointError}), the call's deadline
   * ({@link NoReadyEndpointDeadlineError}) or its cancellation, whichever
   * comes first. Honours `AvoidEndpoints` and reports
   * each pick through `EndpointPicked`. Errors
   * from the endpoint keep (or gain) its address as `endpoint`.
   */
  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closing !== undefined) {
      return Promise.reject(new ClosedError(`balancer for target "${this.#options.target}" is closed`));
    }
    if (ctx.signal.aborted) return Promise.reject(abortReason(ctx.signal));
    const avoid = ctx.get(AvoidEndpoints);
    const slot = this.#panicking ? this.#panicPick(avoid) : this.#picker.pick(this.#ready, avoid);
    if (slot !== undefined) return this.#dispatch(slot, req, ctx);
    return this.#wait(req, ctx, avoid);
  }

  /**
   * Panic mode: pick among every active endpoint whose connection is up.
   * O(number of endpoints), but only while the pool is mostly unusable.
   */
  #panicPick(avoid: ReadonlySet<string> | undefined): Slot<K, Req, Res> | undefined {
    const candidates: Slot<K, Req, Res>[] = [];
    for (const s of this.#active.values()) {
      if (s.readiness === 'closed') continue;
      if (s.endpoint.connected ?? s.readiness === 'ready') candidates.push(s);
    }
    if (candidates.length <= this.#ready.size) return this.#picker.pick(this.#ready, avoid);
    return this.#picker.pick(new ArrayPickSet(candidates), avoid);
  }

  #panicking = false;

  /**
   * Whether the balancer is in panic mode: fewer than `panicThresholdPercent`
   * of the known endpoints are ready, so calls go to every connected one.
   */
  get panicking(): boolean {
    return this.#panicking;
  }

  #dispatch(slot: Slot<K, Req, Res>, req: Req, ctx: CallContext): Promise<Res> {
    slot.picks++;
    const load = slot.load;
    const loop = this.#loopClock;
    loop?.enter();
    const wallStart = clock();
    const started = loop === undefined ? wallStart : loop.at(wallStart);
    let promise: Promise<Res>;
    try {
      ctx.get(EndpointPicked)?.(slot.address);
      promise = slot.endpoint.call(req, ctx);
    } catch (err) {
      promise = Promise.reject(err);
    }
    return promise.then(
      (res) => {
        const now = clock();
        load.observe((loop === undefined ? now : loop.at(now)) - started, now, false);
        loop?.leave();
        return res;
      },
      (err: unknown) => {
        const now = clock();
        load.observe((loop === undefined ? now : loop.at(now)) - started, now, true);
        loop?.leave();
        if (!ctx.signal.aborted) slot.failures++;
        throw toGrpcTowerError(err, slot.address);
      },
    );
  }

  #wait(req: Req, ctx: CallContext, avoid: ReadonlySet<string> | undefined): Promise<Res> {
    const started = Date.now();
    const failAt = this.#options.waitForReady ? Number.POSITIVE_INFINITY : started + this.#options.failFastMs;
    const deadlineFirst = ctx.deadline <= failAt;
    const bound = deadlineFirst ? ctx.deadline : failAt;
    if (bound <= started) return Promise.reject(this.#gaveUp(deadlineFirst, started, undefined));
    return new Promise<Res>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cleanup = (): void => {
        this.#waiters.delete(waiter);
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
        ctx.signal.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        wake: () => {
          const slot = this.#picker.pick(this.#ready, avoid);
          if (slot === undefined) return; // stays queued
          cleanup();
          resolve(this.#dispatch(slot, req, ctx));
        },
        fail: (err) => {
          cleanup();
          reject(err);
        },
      };
      const onAbort = (): void => {
        const reason = abortReason(ctx.signal);
        waiter.fail(reason instanceof DeadlineExceededError ? this.#gaveUp(true, started, reason) : reason);
      };
      this.#waiters.add(waiter);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      const delay = bound - started;
      if (delay <= MAX_TIMER_MS) {
        timer = setTimeout(() => {
          timer = undefined;
          waiter.fail(this.#gaveUp(deadlineFirst, started, undefined));
        }, delay);
      }
    });
  }

  #gaveUp(deadline: boolean, started: number, cause: unknown): Error {
    const counts = this.counts();
    const waited = Date.now() - started;
    let detail = '';
    if (this.#discoveryError !== undefined) {
      const e = this.#discoveryError;
      detail = `; discovery failed: ${e instanceof Error ? e.message : String(e)}`;
    } else if (!this.#sawChange) {
      detail = '; discovery has produced no endpoint yet';
    }
    const options = cause === undefined ? {} : { cause };
    return deadline
      ? new NoReadyEndpointDeadlineError(this.#options.target, counts, waited, detail, options)
      : new NoReadyEndpointError(this.#options.target, counts, waited, detail, options);
  }

  #wakeSoon(): void {
    if (this.#wakeScheduled || this.#waiters.size === 0) return;
    this.#wakeScheduled = true;
    // woken in a microtask: endpoints are called outside their readiness callbacks
    queueMicrotask(() => {
      this.#wakeScheduled = false;
      for (const waiter of this.#waiters) {
        if (this.#ready.size === 0) return;
        waiter.wake();
      }
    });
  }

  #apply(change: Change<K, Endpoint<Req, Res>>): void {
    if (this.#closing !== undefined) return;
    if (change?.type === 'insert') {
      if (!isEndpoint(change.endpoint)) {
        this.#emit({
          type: 'discovery-error',
          error: new TypeError(`insert of key ${String(change.key)}: the value is not an Endpoint`),
        });
        return;
      }
      if (this.#retired.has(change.endpoint)) {
        this.#emit({
          type: 'discovery-error',
          error: new TypeError(
            `insert of key ${String(change.key)}: endpoint ${change.endpoint.address} was already removed and ` +
              'closed; insert a new endpoint object instead',
          ),
        });
        return;
      }
      this.#sawChange = true;
      this.#insert(change.key, change.endpoint);
    } else if (change?.type === 'remove') {
      this.#sawChange = true;
      this.#remove(change.key);
    } else {
      this.#emit({
        type: 'discovery-error',
        error: new TypeError(`not a discovery change: ${String(change)}`),
      });
      return;
    }
    this.#refresh();
  }

  #insert(key: K, endpoint: Endpoint<Req, Res>): void {
    const current = this.#active.get(key);
    if (current === undefined) {
      const slot = this.#slot(key, endpoint, 'active');
      this.#active.set(key, slot);
      this.#enter(slot);
      this.#emit({ type: 'insert', key, address: slot.address, replacing: undefined });
      this.#watch(slot);
      return;
    }
    if (current.endpoint === endpoint) return;
    const queued = this.#incoming.get(key);
    if (queued !== undefined) {
      if (queued.endpoint === endpoint) return;
      this.#incoming.delete(key);
      this.#retire(queued);
    }
    const slot = this.#slot(key, endpoint, 'incoming');
    this.#incoming.set(key, slot);
    this.#emit({ type: 'insert', key, address: slot.address, replacing: current.address });
    this.#watch(slot);
    if (slot.role === 'incoming' && (slot.readiness === 'ready' || current.readiness !== 'ready')) {
      this.#promote(slot);
    }
  }

  #remove(key: K): void {
    const queued = this.#incoming.get(key);
    if (queued !== undefined) {
      this.#incoming.delete(key);
      this.#retire(queued);
    }
    const slot = this.#active.get(key);
    if (slot === undefined) return;
    this.#active.delete(key);
    this.#leave(slot);
    this.#emit({ type: 'remove', key, address: slot.address });
    this.#retire(slot);
  }

  #slot(key: K, endpoint: Endpoint<Req, Res>, role: EndpointRole): Slot<K, Req, Res> {
    return new Slot(key, endpoint, this.#metric.create(endpoint, clock()), role);
  }

  /** Follows the endpoint's readiness; the first (current) value is usually a no-op. */
  #watch(slot: Slot<K, Req, Res>): void {
    slot.sub = slot.endpoint.readiness$.subscribe({
      next: (r) => this.#onReadiness(slot, r),
      error: (error: unknown) => {
        this.#emit({ type: 'endpoint-error', key: slot.key, address: slot.address, error });
        this.#onReadiness(slot, 'failed');
      },
    });
  }

  #enter(slot: Slot<K, Req, Res>): void {
    slot.role = 'active';
    this.#counts[slot.readiness]++;
    if (slot.readiness === 'ready') {
      if (this.#ready.add(slot)) slot.readySince = clock();
      this.#wakeSoon();
    }
  }

  #leave(slot: Slot<K, Req, Res>): void {
    this.#counts[slot.readiness]--;
    this.#ready.remove(slot);
  }

  #onReadiness(slot: Slot<K, Req, Res>, readiness: Readiness): void {
    const previous = slot.readiness;
    if (previous === readiness) return;
    slot.readiness = readiness;
    if (slot.role === 'active') {
      this.#counts[previous]--;
      this.#counts[readiness]++;
      if (readiness === 'ready') {
        if (this.#ready.add(slot)) slot.readySince = clock();
        this.#wakeSoon();
      } else {
        this.#ready.remove(slot);
      }
    }
    this.#emit({ type: 'readiness', key: slot.key, address: slot.address, readiness });
    if (slot.role === 'active' && readiness !== 'ready') {
      const queued = this.#incoming.get(slot.key);
      if (queued !== undefined) this.#promote(queued);
    } else if (slot.role === 'incoming' && readiness === 'ready') {
      this.#promote(slot);
    }
    this.#refresh();
  }

  /** The incoming endpoint of a key takes over; the one it replaces drains. */
  #promote(slot: Slot<K, Req, Res>): void {
    this.#incoming.delete(slot.key);
    const old = this.#active.get(slot.key);
    this.#active.set(slot.key, slot);
    this.#enter(slot);
    if (old !== undefined) {
      this.#leave(old);
      this.#emit({ type: 'replace', key: slot.key, address: slot.address, previous: old.address });
      this.#retire(old);
    }
    this.#refresh();
  }

  /** Out of service: drain and close, reporting (never throwing) a close failure. */
  #retire(slot: Slot<K, Req, Res>, graceMs = this.#options.drainGraceMs): void {
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
        this.#finishDrain(slot);
        this.#emit({ type: 'closed', key: slot.key, address: slot.address });
      },
      (error: unknown) => {
        this.#finishDrain(slot);
        this.#emit({ type: 'close-error', key: slot.key, address: slot.address, error });
      },
    );
  }

  #finishDrain(slot: Slot<K, Req, Res>): void {
    this.#draining.delete(slot);
    slot.sub?.unsubscribe();
  }

  #refresh(): void {
    if (this.#closing !== undefined) return;
    const known = this.#counts.ready + this.#counts.connecting + this.#counts.failed;
    const threshold = this.#options.panicThresholdPercent;
    const panicking = threshold > 0 && known > 0 && this.#ready.size * 100 < threshold * known;
    if (panicking !== this.#panicking) {
      this.#panicking = panicking;
      this.#emit({ type: 'panic', active: panicking, known, ready: this.#ready.size });
    }
    let next: Readiness;
    if (this.#ready.size > 0) next = 'ready';
    else if (this.#counts.connecting > 0) next = 'connecting';
    else if (this.#active.size > 0 || this.#sawChange || this.#discoveryError !== undefined) next = 'failed';
    else next = 'connecting';
    if (next !== this.#readiness.value) this.#readiness.next(next);
  }

  #emit(event: BalancerEvent<K>): void {
    if (!this.#events.closed) this.#events.next(event);
  }

  /** A snapshot of every endpoint and the counts. O(number of endpoints). */
  stats(): BalancerStats<K> {
    const now = clock();
    const endpoints: EndpointStats<K>[] = [];
    const add = (s: Slot<K, Req, Res>): void => {
      endpoints.push({
        key: s.key,
        address: s.address,
        state: s.readiness,
        role: s.role,
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
    return {
      target: this.#options.target,
      readiness: this.#readiness.value,
      counts: this.counts(),
      waiting: this.#waiters.size,
      endpoints,
    };
  }

  /**
   * Stops following discovery, fails waiting calls with `ClosedError`, and
   * closes every endpoint, which drains their calls in flight (at most
   * `graceMs`, default each endpoint's own grace). Resolves when all have
   * closed; close failures go to `events$`, never thrown. Idempotent.
   */
  close(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    const graceMs = options.graceMs ?? this.#options.drainGraceMs;
    this.#closing = (async () => {
      this.#discovery?.unsubscribe();
      this.#discovery = undefined;
      const closed = new ClosedError(`balancer for target "${this.#options.target}" closed`);
      for (const w of [...this.#waiters]) w.fail(closed);
      for (const [key, slot] of [...this.#incoming]) {
        this.#incoming.delete(key);
        this.#retire(slot, graceMs);
      }
      for (const [key, slot] of [...this.#active]) {
        this.#active.delete(key);
        this.#leave(slot);
        this.#retire(slot, graceMs);
      }
      this.#readiness.next('closed');
      await Promise.all([...this.#draining].map((s) => s.closing));
      this.#readiness.complete();
      this.#done.next();
      this.#done.complete();
      this.#events.complete();
    })();
    return this.#closing;
  }
}
