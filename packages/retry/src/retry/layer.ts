/**
 * The retry layer: gRPC A6 client retries ("gRPC Retry Design",
 * `grpc/proposal` A6-client-retries.md) for a grpc-tower stack: the retry
 * schedule over the attempt engine (`attempt/engine.ts`), with the
 * sequence of retries run by `p-retry`.
 *
 * A call is re-sent only while it has not committed. The endpoint resolves
 * an attempt at its commit point (unary and client-streaming calls at
 * their status, streams at their response headers) and rejects it with
 * `GrpcStatusError` before, so a resolved attempt is the answer and is
 * never retried; a stream that fails after its headers reaches the caller
 * as it is. A failed attempt is retried when
 * - its code is in `retryableStatusCodes` (or the predicate says so, or it
 *   ran past `perAttemptTimeoutMs`),
 * - the request messages are still held (`req.messages.replayable`: the
 *   replay buffer of 1 MiB per call and 16 MiB per channel was not passed),
 * - the server did not forbid it (`grpc-retry-pushback-ms` negative or
 *   malformed) — a valid pushback sets the delay and restarts the backoff,
 * - fewer than `maxAttempts` attempts were made,
 * - the delay ends before the call's deadline,
 * - the budget (or throttle) grants a retry.
 * Each retry is a fresh pick with `grpc-previous-rpc-attempts` set and the
 * endpoints that failed so far in `AvoidEndpoints`. The caller's cancel (or
 * the call's deadline) stops everything at once with the abort reason.
 *
 * Transparent retry: an attempt that never reached a server application
 * (see {@link neverReachedServer}) is re-sent once per call, at once, on
 * another endpoint, without counting against `maxAttempts` or the budget.
 *
 * What p-retry does and does not do here: it runs the sequence of attempts
 * after a failed first one, asking the schedule's `decide` (its
 * `shouldRetry`) after each failure. The rest of its model does not fit
 * A6, so the schedule keeps it: its delay (a random factor in [1, 2)
 * times an exponential, where A6 draws from [0, ceiling] and a pushback
 * sets the delay and restarts the backoff; it sleeps on an AbortSignal a
 * call has only when something asks for one) is off and `decide` sleeps
 * on the call's context; its count of retries stops before asking once
 * they are spent, where a transparent re-send is still owed, so it counts
 * without limit and `decide` stops at `maxAttempts`. The first attempt is
 * sent before p-retry, so that a call that succeeds at once costs no more
 * than its attempt (p-retry's loop is an async function with an options
 * copy and several awaits per call). Events are built only while somebody
 * subscribes.
 *
 * @module
 */
import {
  AttemptTimeoutError,
  type CallContext,
  type Service,
  Status,
  toGrpcTowerError,
} from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import pRetry from 'p-retry';
import type { Observable } from 'rxjs';
import { type AgainCause, AttemptCall, AttemptEngine } from '../attempt/engine.js';
import { grpcRetryProtocol } from '../protocol/grpc.js';
import { FailedResponseError, type Protocol } from '../protocol/protocol.js';
import { type AttemptScope, attemptError, attemptScope, avoiding, callPart } from './attempt.js';
import { backoffSleep, fullJitterDelay } from './backoff.js';
import { RetryBudgetExhaustedError } from './errors.js';
import type { GiveUpReason, RetryEvent, RetryStats } from './events.js';
export type { GiveUpReason, RetryEvent, RetryStats } from './events.js';
import {
  type CompiledRetryPolicy,
  type ResolvedRetrySettings,
  type RetryPolicy,
  compileRetryPolicy,
} from './policy.js';

/**
 * The service a {@link retry} layer makes: a `call` wrapper with the layer's
 * events and counters. Readiness and `close()` stay with the stack
 * (`ServiceBuilder.service()` carries the balancer's past every layer).
 *
 * @example
 * ```ts
 * const svc: RetryService = retry()(balancer);
 * svc.events$.subscribe(console.log);
 * ```
 */
export interface RetryService<Req = GrpcRequest, Res = GrpcResponse> extends Service<Req, Res> {
  /** The layer's events (shared by every service of the layer). */
  readonly events$: Observable<RetryEvent>;
  /** The layer's counters. */
  stats(): RetryStats;
}

/**
 * The layer {@link retry} returns: a function from the inner service to a
 * {@link RetryService}, with the events and counters of all the calls it
 * handles.
 *
 * @example
 * ```ts
 * const layer: RetryLayer = retry({ maxAttempts: 3 });
 * const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>().layer(layer).service(balancer);
 * setInterval(() => console.log(layer.stats()), 10_000);
 * ```
 */
export interface RetryLayer<Req = GrpcRequest, Res = GrpcResponse>
  extends Pick<RetryService<Req, Res>, 'events$' | 'stats'> {
  (inner: Service<Req, Res>): RetryService<Req, Res>;
  /** The checked policy. */
  readonly policy: CompiledRetryPolicy<Req>;
  /** The protocol whose rules the layer follows (`'grpc'`, `'http'`). */
  readonly protocol: Protocol<Req, Res>;
}

/**
 * A layer that retries failed attempts with gRPC A6 semantics (see the
 * module documentation). Put it above the balancer, so each attempt is a
 * fresh pick: `new ServiceBuilder().layer(retry(policy)).service(balancer)`.
 *
 * @throws RetryPolicyError naming the first bad field of `policy`.
 *
 * @example
 * ```ts
 * const budget = retryBudget();
 * const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
 *   .layer(retry({ maxAttempts: 4, retryableStatusCodes: ['UNAVAILABLE'], budget }))
 *   .service(balancer);
 * const channel = createChannel(stack, { target: 'orders', services: [OrdersService] });
 * ```
 */
export function retry(policy: RetryPolicy = {}): RetryLayer {
  return retryWith(grpcRetryProtocol, compileRetryPolicy(policy));
}

/**
 * A retry layer over any protocol: the attempt loop of {@link retry}, with
 * `protocol` (core's `Protocol` of the endpoint kind) judging what is
 * retryable, where the commit point is and what the server's pushback says,
 * and `policy` (checked, as {@link compileRetryPolicy} makes it) setting the
 * attempts, backoff and budget. `retry()` is
 * `retryWith(grpcProtocol, compileRetryPolicy(policy))`; for HTTP/2, use
 * `httpRetry`.
 *
 * @example
 * ```ts
 * import { grpcProtocol } from '@grpc-tower/core/grpc';
 * const layer = retryWith(grpcProtocol, compileRetryPolicy({ maxAttempts: 3 }));
 * ```
 */
export function retryWith<Req, Res>(
  protocol: Protocol<Req, Res>,
  compiled: CompiledRetryPolicy<Req>,
): RetryLayer<Req, Res> {
  const engine = new RetryEngine<Req, Res>(protocol, compiled);
  const events$ = engine.events.events$;
  const stats = (): RetryStats => {
    const { again, ...counters } = engine.counters;
    return { ...counters, retries: again, budgetLevel: engine.budgetLevel };
  };
  const layer = (inner: Service<Req, Res>): RetryService<Req, Res> => {
    const service: RetryService<Req, Res> = {
      call: (req, ctx) => new RetryCall(engine, inner, req, ctx).run(),
      events$,
      stats,
    };
    return service;
  };
  return Object.assign(layer, { events$, stats, policy: compiled, protocol });
}

/** The engine of one retry layer, with its policy. */
class RetryEngine<Req, Res> extends AttemptEngine<Req, Res, RetryEvent> {
  readonly policy: CompiledRetryPolicy<Req>;

  constructor(protocol: Protocol<Req, Res>, policy: CompiledRetryPolicy<Req>) {
    super(protocol, policy, 'retries');
    this.policy = policy;
  }
}

/**
 * One call through the retry layer: the A6 schedule over the engine. One
 * attempt is in flight at a time, so its request, scope and number are
 * fields, and an attempt costs no closure beyond its two reactions.
 */
class RetryCall<Req, Res> extends AttemptCall<Req, Res, RetryEvent> {
  readonly #settings: ResolvedRetrySettings<Req>;
  /** Attempts counted against maxAttempts. */
  #counted = 0;
  /** The backoff step of the next retry (restarted by a pushback). */
  #step = 0;
  /** Whether p-retry runs the call (its first attempt failed). */
  #looping = false;
  /** Whether the attempt `decide` let go out is the transparent re-send. */
  #transparentNext = false;
  #gaveUp: GiveUpReason | undefined;
  /** The attempt in flight: its request, number and scope (none without a per-attempt limit). */
  #attemptReq: Req;
  #n = 0;
  #scope: AttemptScope | undefined;

  constructor(engine: RetryEngine<Req, Res>, inner: Service<Req, Res>, req: Req, ctx: CallContext) {
    super(engine, inner, req, ctx);
    const policy = engine.policy;
    this.#settings = policy.perMethod ? policy.forMethod(this.method) : policy.defaults;
    this.#attemptReq = req;
  }

  run(): Promise<Res> {
    if (!this.enter()) return Promise.reject(this.ctx.reason());
    // The first attempt goes out directly: a call that succeeds at once
    // never enters p-retry.
    this.#counted = 1;
    return this.#send(false);
  }

  /** p-retry's attempt: the transparent re-send, or the next counted attempt. */
  #again(): Promise<Res> {
    if (this.ctx.aborted) return Promise.reject(this.ctx.reason());
    if (this.#transparentNext) {
      this.#transparentNext = false;
      return this.#send(true);
    }
    this.#counted++;
    return this.#send(false);
  }

  /** Sends one attempt and reacts to its commit or its failure. */
  #send(transparent: boolean): Promise<Res> {
    const protocol = this.protocol;
    const n = this.nextAttempt();
    const req = protocol.attempt(this.req, n);
    const avoid = this.failed;
    const ctx = avoid === undefined ? this.ctx : avoiding(this.ctx, avoid);
    const events = this.engine.events;
    if (events.observed) {
      events.next({
        type: 'attempt',
        method: this.method,
        attempt: n,
        transparent,
        avoid: avoid === undefined ? [] : [...avoid],
      });
    }
    const timeoutMs = this.#settings.perAttemptTimeoutMs;
    let context: CallContext;
    if (timeoutMs === undefined) {
      this.#scope = undefined;
      context = callPart(ctx);
    } else {
      this.#scope = attemptScope(ctx, protocol.wholeResponse(req), timeoutMs);
      context = this.#scope.context;
    }
    this.#attemptReq = req;
    this.#n = n;
    return this.exchange(req, context).then(
      (res) => this.#answered(res),
      (raw: unknown) => this.#failedAttempt(raw),
    );
  }

  #answered(res: Res): Res | Promise<Res> {
    // an answer the protocol counts as failed (an HTTP 503) is judged like a failure
    const failure = this.protocol.failureOf(res, this.#attemptReq);
    if (failure !== undefined) return this.#failedAttempt(failure);
    this.commit(res, this.#scope);
    const events = this.engine.events;
    if (events.observed) {
      events.next({
        type: 'committed',
        method: this.method,
        attempts: this.#counted,
        endpoint: this.protocol.endpointOf(res),
      });
    }
    return res;
  }

  /**
   * An attempt failed: books it, and throws it to p-retry, or, for the
   * call's first attempt, decides whether p-retry takes the call over.
   */
  #failedAttempt(raw: unknown): Promise<Res> {
    const thrown = this.#booked(raw);
    if (this.#looping) throw thrown;
    this.#looping = true;
    // p-retry runs the rest: it asks `decide` after each failure (its
    // `shouldRetry`), which stops at maxAttempts and sleeps the delay, so
    // its own count and delay are off
    return this.#decide(thrown)
      .then((go) =>
        go
          ? pRetry(() => this.#again(), {
              retries: Number.POSITIVE_INFINITY,
              minTimeout: 0,
              shouldRetry: ({ error }) => this.#decide(error),
            })
          : Promise.reject(thrown),
      )
      .catch((err: unknown) => this.#end(err));
  }

  /** Releases a failed attempt, notes its endpoint and reports it; returns what to throw for it. */
  #booked(raw: unknown): Error {
    this.#scope?.release();
    if (this.ctx.aborted) return raw instanceof Error ? raw : toGrpcTowerError(raw);
    const err = attemptError(raw, this.#scope, this.ctx, this.#settings.perAttemptTimeoutMs);
    this.failedOn(err.endpoint);
    const n = this.#n;
    this.engine.events.emit(() => ({
      type: 'attempt-failed',
      method: this.method,
      attempt: n,
      code: err.code,
      endpoint: err.endpoint,
      error: err,
    }));
    // keep the caller's error object as it is, unless it stands for an attempt timeout
    return err === raw || !(raw instanceof Error) || err instanceof AttemptTimeoutError ? err : raw;
  }

  /**
   * Decides what follows a failed attempt, and sleeps the delay before a
   * counted retry: the transparent re-send, a retry, or the end (its reason
   * kept for the give-up event).
   */
  async #decide(raw: Error): Promise<boolean> {
    if (this.ctx.aborted) return false;
    const error = toGrpcTowerError(raw);
    if (this.transparent(error)) {
      this.#transparentNext = true;
      return true;
    }
    const protocol = this.protocol;
    const settings = this.#settings;
    const pushback = protocol.pushback(error);
    let retryable = protocol.retryable(error, this.req, settings, error instanceof AttemptTimeoutError);
    if (settings.shouldRetry !== undefined) {
      const said = settings.shouldRetry({
        error,
        method: this.method,
        attempts: this.#counted,
        request: this.req,
      });
      if (said !== undefined) retryable = said;
    }
    // marked by whoever raised it (a balancer with no endpoint to take the
    // call): another attempt would fail the same way, so none is made
    if (error.retryable === false) retryable = false;
    if (retryable || pushback.kind === 'stop') this.failure();
    if (!retryable) return this.#stop('non-retryable');
    if (this.#counted >= settings.maxAttempts) return this.#stop('max-attempts');
    if (pushback.kind === 'stop') return this.#stop('pushback');
    if (!protocol.replayable(this.req)) return this.#stop('not-replayable');
    let delayMs: number;
    if (pushback.kind === 'delay') {
      delayMs = pushback.ms;
      this.#step = 0;
    } else {
      delayMs = fullJitterDelay(this.#step, settings.backoff);
      this.#step++;
    }
    // never sleep past the deadline: if the retry could not start in time, stop now
    if (Date.now() + delayMs >= this.ctx.deadline) return this.#stop('deadline');
    if (!this.acquire()) return this.#stop('budget');
    this.record(pushback.kind === 'delay' ? 'pushback' : 'backoff', delayMs);
    // the answer retried past (an HTTP 503 with its body) is not read by anyone
    if (raw instanceof FailedResponseError) protocol.abandon(raw.response as Res);
    if (delayMs > 0) await backoffSleep(delayMs, this.ctx);
    else this.ctx.throwIfAborted();
    return true;
  }

  protected override announce(cause: AgainCause, delayMs: number): void {
    // the retry schedule sends no hedges
    if (cause === 'hedge') return;
    const attempt = this.first + this.sent;
    this.engine.events.emit(() => ({
      type: 'retry',
      method: this.method,
      attempt,
      delayMs,
      cause,
      budgetLevel: this.engine.budgetLevel,
    }));
  }

  #stop(reason: GiveUpReason): false {
    this.#gaveUp = reason;
    return false;
  }

  /** The call failed for good: the give-up event, and what the caller gets. */
  #end(err: unknown): Res {
    this.gaveUp();
    const ctx = this.ctx;
    let reason: GiveUpReason;
    let out: unknown = err;
    if (ctx.aborted) {
      out = ctx.reason();
      reason = toGrpcTowerError(out).code === Status.DEADLINE_EXCEEDED ? 'deadline' : 'cancelled';
    } else {
      // without a reason, p-retry stopped on an error it never retries (a TypeError from a bug)
      reason = this.#gaveUp ?? 'non-retryable';
    }
    const final = toGrpcTowerError(out);
    if (reason === 'non-retryable' && final.code === Status.DEADLINE_EXCEEDED && Date.now() >= ctx.deadline) {
      // the call's deadline passed: the server (told through grpc-timeout)
      // answered before the call's own timer ran
      reason = 'deadline';
    }
    if (reason === 'budget') out = new RetryBudgetExhaustedError(err, this.#counted);
    const code = reason === 'budget' ? final.code : toGrpcTowerError(out).code;
    this.engine.events.emit(() => ({
      type: 'give-up',
      method: this.method,
      attempts: this.#counted,
      reason,
      code,
      budgetLevel: this.engine.budgetLevel,
    }));
    // an answer that counts as failed (an HTTP 503) reaches the caller as the server sent it
    if (err instanceof FailedResponseError && !ctx.aborted) return err.response as Res;
    throw out;
  }
}
