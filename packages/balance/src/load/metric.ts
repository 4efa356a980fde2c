/**
 * What a load metric is: how a balancer compares two endpoints. Each
 * endpoint gets its own {@link EndpointLoad} state, made by a
 * {@link LoadMetric}; the balancer asks it for a `cost` when the endpoint
 * is one of the two candidates of a pick, and reports each call's
 * round-trip time to it.
 *
 * The built-in metrics are {@link pendingRequests} (least-request, as in
 * Envoy and tower's `PendingRequests`) and {@link peakEwma} (Finagle's and
 * Linkerd's PeakEWMA, also tower's `PeakEwma`); {@link loadFunction} turns a
 * plain function into a metric.
 *
 * "In flight" is the endpoint's own `pending` count (the `Endpoint`
 * contract). For a gRPC endpoint a stream stays pending until its status
 * arrives, which is a truer measure of the work it puts on the server than
 * counting only until the balancer's promise settles; it also sees calls
 * that reached the endpoint through another path.
 *
 * @module
 */

/**
 * What a load metric sees of an endpoint: its address and its calls in
 * flight.
 *
 * @example
 * ```ts
 * const subject: LoadSubject = { address: '127.0.0.2:50051', pending: 3 };
 * ```
 */
export interface LoadSubject {
  readonly address: string;
  /** Calls started on the endpoint and not yet finished. */
  readonly pending: number;
}

/**
 * The load state of one endpoint, made by a {@link LoadMetric}.
 *
 * Times are milliseconds on one monotonic clock (`performance.now()` in
 * the balancer), passed in so that the state is easy to test.
 *
 * @example
 * ```ts
 * const load = peakEwma().create({ address: 'a:1', pending: 0 }, performance.now());
 * load.observe(12, performance.now(), false);
 * load.cost(performance.now()); // about 12: the first sample replaced the 30 ms seed
 * ```
 */
export interface EndpointLoad {
  /** The endpoint's cost at `now`: of two candidates, the lower cost is picked. */
  cost(now: number): number;
  /**
   * A call on the endpoint settled `rttMs` after it started; `failed` when
   * it settled with an error. For a streaming call the balancer's promise
   * settles at the first response (the commit point), so `rttMs` is the
   * time to the first response. Unless the balancer was created with
   * `excludeLoopBlocks: false`, `rttMs` leaves out the time this process's
   * event loop was blocked while the call was in flight.
   *
   * Only what the endpoint produced is reported: a call its caller
   * cancelled or a layer above stopped, and an error raised in this
   * process (a request refused before it was sent, a draining endpoint),
   * are not. `deadline` is true for a failed call that ended at its
   * deadline (the caller's timer, or the server enforcing it): `rttMs` is
   * then the time the caller allowed, not the server's, and a metric should
   * let it count only when the endpoint had a fair chance to answer (as
   * {@link peakEwma} does).
   */
  observe(rttMs: number, now: number, failed: boolean, deadline?: boolean): void;
  /** The current round-trip estimate in ms for stats, or `undefined` when the metric keeps none. */
  estimateMs(now: number): number | undefined;
  /**
   * The calls in flight that the last `cost()` counted, when the cost
   * multiplies a latency by them. Optional. The p2c picker treats two
   * candidates with the same count and costs within its `tieTolerance` as
   * equally loaded (they take turns); without it, only equal costs tie.
   */
  readonly pendingAtCost?: number | undefined;
}

/**
 * A load metric: makes the load state of each endpoint.
 *
 * @example
 * ```ts
 * // the least recently used endpoint wins
 * const lru: LoadMetric = {
 *   name: 'lru',
 *   create: () => {
 *     let last = 0;
 *     return { cost: () => last, observe: (_rtt, now) => { last = now; }, estimateMs: () => undefined };
 *   },
 * };
 * ```
 */
export interface LoadMetric {
  /** A short name for stats and benchmarks, such as `'peak-ewma'`. */
  readonly name: string;
  /** Creates the state of a new endpoint, at time `now`. */
  create(endpoint: LoadSubject, now: number): EndpointLoad;
  /**
   * Whether `observe` uses the round-trip time; default true. A metric that
   * ignores it says `false`, and the balancer then skips the work of
   * measuring it without the client's event-loop blocks.
   */
  readonly usesRoundTripTimes?: boolean;
}

/**
 * A load function: the cost of an endpoint, computed from what the balancer
 * knows of it. The simplest way to plug in your own load.
 *
 * @example
 * ```ts
 * const squaredPending: LoadFunction = (ep) => ep.pending * ep.pending;
 * const balancer = p2c(discover, { load: squaredPending });
 * ```
 */
export type LoadFunction = (endpoint: LoadSubject) => number;
