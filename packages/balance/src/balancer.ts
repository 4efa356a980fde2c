/**
 * The balancer that {@link p2c} and {@link roundRobin} build: it follows a
 * discovery stream into its endpoint set (`endpoint-set.ts`: membership,
 * roles, replace-when-ready, draining; the only place that closes an
 * endpoint; each endpoint's placement from its insert's metadata on its
 * `Slot`, `slot.ts`), picks a ready endpoint for each call (`pick/`),
 * sends the call there and reports the round-trip time to the endpoint's
 * load (`load/`), parks calls while none is ready (`waiters.ts`), and
 * derives its aggregate readiness, priority failover, panic mode,
 * zone-aware routing and the split across groups (`routing.ts`: which
 * picker and pick set a call meets) and stats from the set.
 *
 * The call path is `call` → `pick` → `dispatch`: no allocation beyond the
 * endpoint's own promise and its two settle callbacks.
 *
 * @module
 */
import {
  type CallContext,
  type Change,
  ClosedError,
  type CloseOptions,
  type Discover,
  type Endpoint,
  GraceExpiredError,
  type Readiness,
  type Service,
  abortReason,
  toGrpcTowerError,
} from '@grpc-tower/core';
import {
  DEFAULT_CLOSE_GRACE_MS,
  EventStream,
  discoveryEventsOf,
  discoveryStatusOf,
  failureOrigin,
} from '@grpc-tower/core/internal';
import { AvoidEndpoints, EndpointPicked } from './hints.js';
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
import { EndpointSet } from './endpoint-set.js';
import type { Slot } from './slot.js';
import { type EndpointCounts, MAX_NAMED_ERRORS, describeCounts, gaveUpError } from './errors.js';
import type { BalancerEvent } from './events.js';
import type { LoadMetric } from './load/metric.js';
import { type LoopClock, loopClock } from './loop-clock.js';
import type { ResolvedOptions } from './options.js';
import type { PickSet, Picker } from './pick/picker.js';
import type { ReadySet } from './ready-set.js';
import { PickerRouting } from './routing.js';
import type { BalancerStats, ZoneRouting } from './stats.js';
import { Waiters } from './waiters.js';

const clock = (): number => performance.now();

/**
 * A load balancer over a discovered set of endpoints: a {@link Service}
 * that sends each call to one ready endpoint, chosen by its picker ({@link p2c}
 * or {@link roundRobin} build one). It is also a readiness source, and
 * closes everything it holds on {@link Balancer.close}, so `createChannel`
 * over it (or over a stack that ends in it) reports connectivity and
 * closes it.
 *
 * What happens, and when:
 * - it subscribes to discovery at construction; each change applies when
 *   it arrives, with or without traffic;
 * - it subscribes to each endpoint's `readiness$`: an endpoint that turns
 *   ready is eligible at once and wakes waiting calls; one that fails leaves
 *   the ready set but stays known (its own reconnection backoff brings it
 *   back);
 * - it owns the endpoints discovery gives it, and is the one that closes
 *   them: a removed endpoint leaves the ready set at once, then drains
 *   (`endpoint.close()`);
 * - an insert of a known key keeps the old endpoint serving until the new
 *   one is ready, or the old one stops being ready, or `replaceWaitMs`
 *   passes; then the old one drains;
 * - on each membership or readiness change it re-decides the split across
 *   groups when the inserts carry several (`EndpointMetadata.group`), which
 *   priority level calls go to when they carry several ({@link
 *   Balancer.priority}), panic mode within that level and, with the
 *   `zones` option, which zones calls go to ({@link Balancer.zoneRouting});
 *   a call only meets the picker and the pick set that decision chose.
 *
 * @example
 * ```ts
 * const balancer = p2c(discover, { target: 'orders' });
 * const channel = createChannel(balancer, { target: 'orders' });
 * ```
 */
export class Balancer<Req, Res, K = unknown> implements Service<Req, Res> {
  readonly #options: ResolvedOptions;
  readonly #metric: LoadMetric;
  readonly #loopClock: LoopClock | undefined;
  /** Panic mode and zone routing: which picker a call meets (`routing.ts`). */
  readonly #routing: PickerRouting<K, Req, Res>;
  /** The picker out of panic, as `#routing` last chose it (copied so a call reads a field). */
  #routed: Picker<Slot<K, Req, Res>>;
  /** The picker of calls, as `#routing` last chose it. */
  #picker: Picker<Slot<K, Req, Res>>;
  readonly #set: EndpointSet<K, Req, Res>;
  readonly #ready: ReadySet<Slot<K, Req, Res>>;
  /** What calls pick from, as `#routing` last chose it: the ready set, or the ready endpoints of one priority level. */
  #pickSet: PickSet<Slot<K, Req, Res>>;
  readonly #waiters: Waiters<Slot<K, Req, Res>, Req, Res>;
  readonly #readiness: BehaviorSubject<Readiness>;
  readonly #events = new EventStream<BalancerEvent<K>>();
  readonly #done = new Subject<void>();
  #discovery: Subscription | undefined;
  #discoveryStatus: Subscription | undefined;
  #sawChange = false;
  /** The error that ended the discovery stream. */
  #discoveryError: unknown;
  /** The failure the source reports on its `events$` now (until it works again). */
  #discoveryFailure: unknown;
  /** Set once the calls waiting at `close()` are over: discovery and the endpoints then close. */
  #closing: Promise<void> | undefined;
  /** The whole `close()`: new calls are refused from its start. */
  #close: Promise<void> | undefined;

  /**
   * The aggregate readiness, emitted on subscribe and on every change;
   * completes after `close()`. See {@link Balancer.readiness}.
   */
  readonly readiness$: Observable<Readiness>;

  /**
   * Everything that happens to endpoints and discovery, as it happens
   * (a hot stream: subscribe early). Completes after `close()`. An event
   * is built only while somebody subscribes.
   */
  readonly events$: Observable<BalancerEvent<K>>;

  /**
   * {@link BalancerStats} snapshots: one on subscribe, one after each burst
   * of changes (membership, readiness), and one every `statsIntervalMs`
   * while subscribed. Completes after `close()`.
   */
  readonly stats$: Observable<BalancerStats<K>>;

  /**
   * @internal Use {@link p2c} or {@link roundRobin}.
   *
   * @param newPicker - makes a picker: one over the whole ready set, and
   *   one per zone with zone-aware routing
   */
  constructor(
    discover: Discover<K, Endpoint<Req, Res>>,
    newPicker: () => Picker<Slot<K, Req, Res>>,
    metric: LoadMetric,
    options: ResolvedOptions,
  ) {
    this.#options = options;
    this.#loopClock =
      options.excludeLoopBlocks && metric.usesRoundTripTimes !== false ? loopClock : undefined;
    this.#metric = metric;
    this.#set = new EndpointSet<K, Req, Res>(metric, options, this.#events, {
      readied: () => this.#waiters.wakeSoon(),
      changed: () => this.#refresh(),
    });
    this.#ready = this.#set.ready;
    this.#pickSet = this.#ready;
    this.#routing = new PickerRouting(newPicker, options, this.#set.active);
    this.#routed = this.#routing.routed;
    this.#picker = this.#routing.picker;
    // a woken call picks among the ready endpoints only
    this.#waiters = new Waiters<Slot<K, Req, Res>, Req, Res>(
      {
        pick: (avoid) => this.#routed.pick(this.#pickSet, avoid),
        dispatch: (slot, req, ctx) => this.#dispatch(slot, req, ctx),
        readyCount: () => this.#ready.size,
        gaveUp: (deadline, waitedMs, cause) => this.#gaveUp(deadline, waitedMs, cause),
        describe: () => `target "${this.#options.target}" (${describeCounts(this.counts())})`,
      },
      options,
    );
    this.#readiness = new BehaviorSubject<Readiness>('connecting');
    this.readiness$ = this.#readiness.asObservable();
    this.events$ = this.#events.events$;
    const live = merge(
      of(0),
      this.#events.events$.pipe(auditTime(0)),
      interval(options.statsIntervalMs),
    ).pipe(takeUntil(this.#done));
    // the last snapshot, taken when the balancer has closed
    const last = defer(() => of(0));
    this.stats$ = defer(() => (this.#closing === undefined ? concat(live, last) : last)).pipe(
      map(() => this.stats()),
    );
    // a failing source (DNS answers NXDOMAIN, etcd unreachable) is named when a call cannot be placed
    this.#discoveryStatus = discoveryEventsOf(discover)?.subscribe((event) => {
      const status = discoveryStatusOf(event);
      if (status === undefined) return;
      const failure = status.state === 'failing' ? status.error : undefined;
      if (failure === this.#discoveryFailure) return;
      this.#discoveryFailure = failure;
      this.#refresh();
    });
    this.#discovery = discover.subscribe({
      next: (change) => this.#apply(change),
      error: (error: unknown) => {
        this.#discoveryError = error;
        this.#events.emit(() => ({ type: 'discovery-error', error }));
        this.#refresh();
      },
      complete: () => this.#events.emit(() => ({ type: 'discovery-complete' })),
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

  /**
   * Whether the balancer is in panic mode: fewer than `panicThresholdPercent`
   * of the known endpoints are ready, so calls go to every connected one.
   */
  get panicking(): boolean {
    return this.#routing.panicking;
  }

  /**
   * Where calls go by zone, with zone-aware routing on (the `zones`
   * option): every zone, the local one, the local one spilling over to the
   * others, or the endpoints hinted for the local zone, with each zone's
   * probability. `undefined` when it is off.
   */
  get zoneRouting(): ZoneRouting | undefined {
    return this.#routing.zoneRouting;
  }

  /**
   * The priority level calls go to while the inserts carry more than one
   * (`EndpointMetadata.priority`, 0 the highest) and one of them is ready:
   * the highest level whose ready share meets `priorityReadyPercent`, else
   * the highest with a ready endpoint. `undefined` otherwise.
   */
  get priority(): number | undefined {
    return this.#routing.priority;
  }

  /** The active endpoints by readiness. */
  counts(): EndpointCounts {
    return this.#set.counts();
  }

  /**
   * Sends the call to a ready endpoint. With none ready, waits for one until
   * `failFastMs` ({@link NoReadyEndpointError}), the call's deadline
   * ({@link NoReadyEndpointDeadlineError}) or its cancellation, whichever
   * comes first. When every endpoint failed and waits out its reconnect
   * backoff, each is asked to connect now (`Endpoint.reconnect`, once per
   * endpoint, shared by the calls that wait meanwhile) and counts as
   * connecting until that attempt ends. When no endpoint can take it (none
   * is ready or connecting and endpoints are known, or none is and
   * discovery is failing), the call fails at once, as do the calls waiting
   * when that happens:
   * {@link NoReadyEndpointError} naming the endpoints' last errors or the
   * discovery failure, marked not to be retried. Honours `AvoidEndpoints` and reports
   * each pick through `EndpointPicked`. Errors
   * from the endpoint keep (or gain) its address as `endpoint`.
   */
  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#close !== undefined) {
      return Promise.reject(new ClosedError(`balancer for target "${this.#options.target}" is closed`));
    }
    if (ctx.aborted) return Promise.reject(abortReason(ctx.signal));
    const avoid = ctx.get(AvoidEndpoints);
    const slot = this.#picker.pick(this.#pickSet, avoid);
    if (slot !== undefined) return this.#dispatch(slot, req, ctx);
    // every endpoint failed and waits out its backoff: each connects now, and the call waits for that
    const set = this.#set;
    if (this.#ready.size === 0 && set.count('connecting') === 0 && set.reconnect()) {
      return this.#waiters.wait(req, ctx, avoid);
    }
    if (this.#hopeless()) {
      const err = this.#gaveUp(false, 0, undefined);
      // settled on a later turn of the event loop: a caller that calls again
      // on each failure must not starve timers and I/O (the reconnect it waits for)
      return new Promise<Res>((_, reject) => setImmediate(reject, err));
    }
    return this.#waiters.wait(req, ctx, avoid);
  }

  /**
   * Whether no endpoint can take a call now, so waiting would only delay
   * the failure: none is ready or connecting (a failed one in a connection
   * attempt a call asked for counts as connecting) and either endpoints are
   * known (each failed to connect, or is held out by a health check or
   * outlier detection) or none is and discovery is failing. grpc-js fails a call
   * in TRANSIENT_FAILURE at once in the same way. Never with `waitForReady`.
   * An empty set while discovery works is not hopeless: an endpoint may be
   * inserted any moment (a rolling deploy), so calls wait up to `failFastMs`.
   */
  #hopeless(): boolean {
    if (this.#options.waitForReady || this.#closing !== undefined) return false;
    const set = this.#set;
    if (this.#ready.size > 0 || set.count('connecting') > 0) return false;
    if (set.active.size > 0) return !set.reconnecting();
    return this.#discoveryFailure !== undefined || this.#discoveryError !== undefined;
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
        // only what the endpoint produced is a signal (the call has settled, so
        // its context says whether the caller or a layer above stopped it)
        const origin = failureOrigin(err, ctx.aborted);
        if (origin !== 'caller' && origin !== 'local') {
          const rtt = (loop === undefined ? now : loop.at(now)) - started;
          load.observe(rtt, now, true, origin === 'deadline');
        }
        loop?.leave();
        if (origin === 'server' || origin === 'connection') slot.failures++;
        throw toGrpcTowerError(err, slot.address);
      },
    );
  }

  #gaveUp(deadline: boolean, waitedMs: number, cause: unknown): Error {
    const lastErrors = this.#set.describeLastErrors(MAX_NAMED_ERRORS);
    const failure = this.#discoveryError ?? this.#discoveryFailure;
    const { target } = this.#options;
    const at = deadline ? { cause } : undefined;
    return gaveUpError(target, this.counts(), waitedMs, lastErrors, failure, this.#sawChange, at);
  }

  #apply(change: Change<K, Endpoint<Req, Res>>): void {
    if (this.#closing !== undefined) return;
    if (change?.type === 'insert') {
      if (!this.#set.insert(change.key, change.endpoint, change.metadata)) return;
    } else if (change?.type === 'remove') {
      this.#set.remove(change.key);
    } else {
      this.#events.emit(() => ({
        type: 'discovery-error',
        error: new TypeError(`not a discovery change: ${String(change)}`),
      }));
      return;
    }
    this.#sawChange = true;
    this.#refresh();
  }

  /** Re-derives panic mode, zone routing and the aggregate readiness from the set. */
  #refresh(): void {
    if (this.#closing !== undefined) return;
    const set = this.#set;
    const ready = this.#ready.size;
    const routing = this.#routing;
    routing.update(set, this.#events);
    // switched here, not tested per call: out of panic and of zone routing a
    // call meets the inner picker directly
    this.#routed = routing.routed;
    this.#picker = routing.picker;
    this.#pickSet = routing.pickSet ?? this.#ready;
    let next: Readiness;
    if (ready > 0) next = 'ready';
    else if (set.count('connecting') > 0) next = 'connecting';
    else if (
      set.active.size > 0 ||
      this.#sawChange ||
      this.#discoveryError !== undefined ||
      this.#discoveryFailure !== undefined
    ) {
      next = 'failed';
    } else next = 'connecting';
    if (next !== this.#readiness.value) this.#readiness.next(next);
    // the calls waiting for an endpoint that cannot come fail now, naming why
    if (this.#waiters.size > 0 && this.#hopeless()) this.#waiters.giveUpAll();
  }

  /** A snapshot of every endpoint and the counts. O(number of endpoints). */
  stats(): BalancerStats<K> {
    return {
      target: this.#options.target,
      readiness: this.#readiness.value,
      counts: this.counts(),
      waiting: this.#waiters.size,
      endpoints: this.#set.stats(),
      ...this.#routing.stats(),
    };
  }

  /**
   * Closes gracefully: new calls are refused at once (`ClosedError`); the
   * calls waiting for a ready endpoint go on waiting, with discovery still
   * followed, for at most `graceMs` (default 30 s), those left then failing
   * with `GraceExpiredError`; then the balancer stops following discovery
   * and closes every endpoint, which drains its calls in flight (for at
   * most `graceMs`, default each endpoint's own grace). Resolves when all
   * have closed; close failures go to `events$`, never thrown. Idempotent.
   *
   * A stack or channel over the balancer closes it only once its own calls
   * have ended, so their retries still find it open.
   *
   * @example
   * ```ts
   * await balancer.close({ graceMs: 10_000 });
   * ```
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.#close !== undefined) return this.#close;
    const graceMs = options.graceMs ?? this.#options.drainGraceMs;
    if (this.#waiters.size === 0) {
      // nothing waits: discovery and the endpoints close now
      this.#closing = this.#shut(graceMs);
      this.#close = this.#closing;
      return this.#close;
    }
    const target = this.#options.target;
    this.#close = (async () => {
      const started = Date.now();
      await this.#waiters.drain(
        graceMs ?? DEFAULT_CLOSE_GRACE_MS,
        (ms) => new GraceExpiredError(`balancer for target "${target}"`, ms),
      );
      // the endpoints get what is left of the grace
      const left = graceMs === undefined ? undefined : Math.max(0, graceMs - (Date.now() - started));
      this.#closing = this.#shut(left);
      await this.#closing;
    })();
    return this.#close;
  }

  async #shut(graceMs: number | undefined): Promise<void> {
    this.#discovery?.unsubscribe();
    this.#discovery = undefined;
    this.#discoveryStatus?.unsubscribe();
    this.#discoveryStatus = undefined;
    this.#waiters.failAll(new ClosedError(`balancer for target "${this.#options.target}" closed`));
    const drained = this.#set.close(graceMs);
    this.#readiness.next('closed');
    await drained;
    this.#readiness.complete();
    this.#done.next();
    this.#done.complete();
    this.#events.complete();
  }
}
