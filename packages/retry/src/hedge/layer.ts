/**
 * Hedged requests, as gRPC A6 defines them ("Hedging Policy"; the idea is
 * Dean and Barroso's "The Tail at Scale", 2013): the call's first attempt
 * goes out at once and, while no attempt has committed, another goes out
 * every `hedgingDelayMs`, up to `maxAttempts`. The first attempt to commit
 * wins and the others are cancelled. An attempt that fails with a code in
 * `nonFatalStatusCodes` lets the next one go out at once (or after a valid
 * server pushback; a negative or malformed pushback stops new hedges); any
 * other failure ends the call with that failure and cancels the rest.
 *
 * Each attempt runs in its own `linkedScope`, so a loser can be cancelled
 * without touching the call; each gets its own reader over the same
 * replayable request messages, `grpc-previous-rpc-attempts`, and an
 * `AvoidEndpoints` naming the endpoints already used by this call (those
 * that failed, and those still running an attempt when the balancer
 * reports its picks through {@link EndpointPicked}), so hedges land on
 * different endpoints. Every hedge after the first is paid from the budget
 * or throttle when there is one; a refusal stops new hedges. The call's
 * deadline and the caller's cancel end every attempt.
 *
 * @module
 */
import {
  type CallContext,
  CancelledError,
  type GrpcTowerError,
  type Service,
  Status,
  type StatusCode,
  toGrpcTowerError,
} from '@grpc-tower/core';
import { EndpointPicked } from '@grpc-tower/balance';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import { EventStream } from '@grpc-tower/core/internal';
import type { Observable } from 'rxjs';
import { type RetryLimiter, budgetDone } from '../budget/budget.js';
import { grpcRetryProtocol } from '../protocol/grpc.js';
import { FailedResponseError, type RetryProtocol } from '../protocol/protocol.js';
import { type AttemptScope, attemptScope, avoiding, runAttempt } from '../retry/attempt.js';
import { RetryBudgetExhaustedError } from '../retry/errors.js';
import { CallRetries, type RetryTally } from '../tally.js';
import {
  type CompiledHedgePolicy,
  type HedgePolicy,
  type ResolvedHedgeSettings,
  compileHedgePolicy,
} from './policy.js';

/**
 * Why a hedged call ended without a response:
 * - `fatal`: an attempt failed with a code not in `nonFatalStatusCodes`;
 * - `max-attempts`: every attempt failed;
 * - `budget`: the budget or throttle refused another hedge;
 * - `deadline`: the deadline passed, or the next hedge would have started after it;
 * - `not-replayable`: the request passed the replay buffer;
 * - `pushback`: the server forbade more attempts;
 * - `cancelled`: the caller cancelled.
 *
 * @example
 * ```ts
 * layer.events$.subscribe((e) => e.type === 'give-up' && console.log(e.reason satisfies HedgeEndReason));
 * ```
 */
export type HedgeEndReason =
  | 'fatal'
  | 'max-attempts'
  | 'budget'
  | 'deadline'
  | 'not-replayable'
  | 'pushback'
  | 'cancelled';

/**
 * What the hedging layer reports.
 *
 * @example
 * ```ts
 * layer.events$.subscribe((e) => {
 *   if (e.type === 'hedge-won') console.log(`attempt ${e.attempt} won on ${e.endpoint}`);
 * });
 * ```
 */
export type HedgeEvent =
  | {
      /** An attempt is being sent. */
      readonly type: 'hedge';
      readonly method: string;
      /** 0 for the first attempt. */
      readonly attempt: number;
      readonly transparent: boolean;
      /** The endpoints it asks the balancer to avoid. */
      readonly avoid: readonly string[];
      readonly budgetLevel: number | undefined;
    }
  | {
      /** An attempt failed before committing. */
      readonly type: 'hedge-failed';
      readonly method: string;
      readonly attempt: number;
      readonly code: StatusCode;
      readonly endpoint: string | undefined;
      readonly fatal: boolean;
    }
  | {
      /** An attempt committed; the others were cancelled. */
      readonly type: 'hedge-won';
      readonly method: string;
      readonly attempt: number;
      readonly endpoint: string;
      /** How many attempts still running were cancelled. */
      readonly cancelled: number;
    }
  | {
      /** The call failed. */
      readonly type: 'give-up';
      readonly method: string;
      readonly attempts: number;
      readonly reason: HedgeEndReason;
      readonly code: StatusCode;
      readonly budgetLevel: number | undefined;
    };

/**
 * Counters of a hedging layer.
 *
 * @example
 * ```ts
 * const s = layer.stats();
 * console.log(`${s.hedges} hedges for ${s.calls} calls, ${s.wonByHedge} won by a hedge`);
 * ```
 */
export interface HedgeStats {
  readonly calls: number;
  /** Attempts sent, the first ones and transparent re-sends included. */
  readonly attempts: number;
  /** Attempts after the first (counted ones). */
  readonly hedges: number;
  readonly transparentRetries: number;
  /** Calls won by an attempt other than the first. */
  readonly wonByHedge: number;
  /** Attempts cancelled because another won or the call failed. */
  readonly cancelled: number;
  readonly committed: number;
  readonly failed: number;
  /** Hedges refused by the budget or throttle. */
  readonly budgetExhausted: number;
  readonly budgetLevel: number | undefined;
}

/**
 * The service a {@link hedge} layer makes.
 *
 * @example
 * ```ts
 * const svc: HedgeService = hedge({ maxAttempts: 2, hedgingDelayMs: 10 })(balancer);
 * ```
 */
export interface HedgeService<Req = GrpcRequest, Res = GrpcResponse> extends Service<Req, Res> {
  readonly events$: Observable<HedgeEvent>;
  stats(): HedgeStats;
}

/**
 * The layer {@link hedge} returns, with the events and counters of its calls.
 *
 * @example
 * ```ts
 * const layer: HedgeLayer = hedge({ maxAttempts: 3, hedgingDelayMs: 20 });
 * console.log(layer.stats().wonByHedge);
 * ```
 */
export interface HedgeLayer<Req = GrpcRequest, Res = GrpcResponse> {
  (inner: Service<Req, Res>): HedgeService<Req, Res>;
  readonly events$: Observable<HedgeEvent>;
  stats(): HedgeStats;
  readonly policy: CompiledHedgePolicy;
}

/**
 * The protocol side of a hedging layer: the retry layer's
 * {@link RetryProtocol}, plus which failures let the other attempts go on
 * and which requests may be hedged at all.
 *
 * @example
 * ```ts
 * const rules: HedgeRules<GrpcRequest, GrpcResponse> = grpcHedgeRules;
 * ```
 */
export interface HedgeRules<Req, Res> {
  readonly protocol: RetryProtocol<Req, Res>;
  /** Whether a failed attempt leaves the call to the other attempts (not fatal). */
  nonFatal(error: GrpcTowerError, req: Req, settings: ResolvedHedgeSettings): boolean;
  /** Whether `req` may be sent more than once at a time (HTTP: idempotent requests only). */
  hedgeable(req: Req): boolean;
}

/** gRPC A6 hedging: the policy's non-fatal status codes; every call may be hedged. */
export const grpcHedgeRules: HedgeRules<GrpcRequest, GrpcResponse> = Object.freeze({
  protocol: grpcRetryProtocol,
  nonFatal: (error: GrpcTowerError, _req: GrpcRequest, settings: ResolvedHedgeSettings) =>
    settings.nonFatalStatusCodes.has(error.code),
  hedgeable: () => true,
});

interface Counters {
  calls: number;
  attempts: number;
  hedges: number;
  transparentRetries: number;
  wonByHedge: number;
  cancelled: number;
  committed: number;
  failed: number;
  budgetExhausted: number;
}

interface Shared<Req, Res> {
  readonly policy: CompiledHedgePolicy;
  readonly rules: HedgeRules<Req, Res>;
  readonly counters: Counters;
  /** Tells the budget that a response ended well (one function per layer, not per call). */
  readonly budgetDone: ((ok: boolean) => void) | undefined;
  readonly events: EventStream<HedgeEvent>;
}

/**
 * A layer that hedges calls with gRPC A6 semantics (see the module
 * documentation). Put it above the balancer. Hedging sends the same call
 * to several servers: use it for idempotent methods (name them in
 * `overrides`, or stack it only over the services that are).
 *
 * @throws RetryPolicyError naming the first bad field of `policy`.
 *
 * @example
 * ```ts
 * const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
 *   .layer(hedge({ maxAttempts: 3, hedgingDelayMs: 20, nonFatalStatusCodes: ['UNAVAILABLE'] }))
 *   .service(balancer);
 * ```
 */
export function hedge(policy: HedgePolicy = {}): HedgeLayer {
  return hedgeWith(grpcHedgeRules, compileHedgePolicy(policy));
}

/**
 * A hedging layer over any protocol: the attempt schedule of {@link hedge},
 * with `rules` judging failures and which requests may be hedged.
 * `hedge()` is `hedgeWith(grpcHedgeRules, compileHedgePolicy(policy))`.
 *
 * @example
 * ```ts
 * const layer = hedgeWith(httpHedgeRules(), compileHedgePolicy({ maxAttempts: 2, hedgingDelayMs: 20 }));
 * ```
 */
export function hedgeWith<Req, Res>(
  rules: HedgeRules<Req, Res>,
  compiled: CompiledHedgePolicy,
): HedgeLayer<Req, Res> {
  const shared: Shared<Req, Res> = {
    rules,
    policy: compiled,
    budgetDone: budgetDone(compiled.budget),
    counters: {
      calls: 0,
      attempts: 0,
      hedges: 0,
      transparentRetries: 0,
      wonByHedge: 0,
      cancelled: 0,
      committed: 0,
      failed: 0,
      budgetExhausted: 0,
    },
    events: new EventStream<HedgeEvent>(),
  };
  const events$ = shared.events.events$;
  const stats = (): HedgeStats => ({ ...shared.counters, budgetLevel: compiled.budget?.level });
  const layer = (inner: Service<Req, Res>): HedgeService<Req, Res> => ({
    call: (req: Req, ctx: CallContext) => new HedgeCall(inner, shared, req, ctx).run(),
    events$,
    stats,
  });
  return Object.assign(layer, { events$, stats, policy: compiled });
}

/** One attempt of a hedged call. */
interface Hedge {
  readonly attempt: number;
  readonly scope: AttemptScope;
  endpoint: string | undefined;
}

/** One call through the hedging layer. */
class HedgeCall<Req, Res> {
  readonly #inner: Service<Req, Res>;
  readonly #shared: Shared<Req, Res>;
  readonly #protocol: RetryProtocol<Req, Res>;
  readonly #req: Req;
  readonly #method: string;
  /** The number of the call's first attempt. */
  readonly #first: number;
  /** At most this many attempts: the policy's, or 1 for a request that may not be hedged. */
  readonly #maxAttempts: number;
  readonly #ctx: CallContext;
  readonly #settings: ResolvedHedgeSettings;
  readonly #budget: RetryLimiter | undefined;
  readonly #live = new Set<Hedge>();
  readonly #failed = new Set<string>();
  /** Attempts counted against maxAttempts. */
  #counted = 0;
  /** Attempts sent, transparent ones included. */
  #sent = 0;
  #transparentUsed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Why no more hedges may go out, once that is so. */
  #stopped: 'budget' | 'not-replayable' | 'pushback' | undefined;
  #finished = false;
  #lastError: unknown;
  #offAbort: (() => void) | undefined;
  #resolve!: (res: Res) => void;
  #reject!: (err: unknown) => void;
  /** The call's retry counts, when a layer above asked for them (telemetry). */
  readonly #tally: RetryTally | undefined;

  constructor(inner: Service<Req, Res>, shared: Shared<Req, Res>, req: Req, ctx: CallContext) {
    this.#inner = inner;
    this.#shared = shared;
    const protocol = shared.rules.protocol;
    this.#protocol = protocol;
    this.#req = req;
    this.#method = protocol.method(req);
    this.#first = protocol.attemptOf(req);
    this.#ctx = ctx;
    this.#settings = shared.policy.forMethod(this.#method);
    this.#maxAttempts = shared.rules.hedgeable(req) ? this.#settings.maxAttempts : 1;
    this.#budget = shared.policy.budget;
    this.#tally = ctx.get(CallRetries);
  }

  run(): Promise<Res> {
    this.#shared.counters.calls++;
    if (this.#ctx.aborted) {
      this.#shared.counters.failed++;
      return Promise.reject(this.#ctx.reason());
    }
    this.#budget?.onCall();
    return new Promise<Res>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      this.#offAbort = this.#ctx.onAbort(this.#onAbort);
      this.#launch(false);
    });
  }

  readonly #onAbort = (): void => {
    const reason = this.#ctx.reason();
    const why = toGrpcTowerError(reason).code === Status.DEADLINE_EXCEEDED ? 'deadline' : 'cancelled';
    this.#fail(reason, why, new CancelledError('the hedged call ended'));
  };

  /** Sends one attempt; returns whether it went out. */
  #launch(transparent: boolean): boolean {
    if (this.#finished) return false;
    if (!transparent) {
      if (this.#stopped !== undefined || this.#counted >= this.#maxAttempts) return false;
      if (this.#counted > 0) {
        if (!this.#protocol.replayable(this.#req)) {
          this.#stopped = 'not-replayable';
          return false;
        }
        if (this.#budget !== undefined && !this.#budget.tryAcquire()) {
          this.#stopped = 'budget';
          this.#shared.counters.budgetExhausted++;
          return false;
        }
        this.#shared.counters.hedges++;
        if (this.#tally !== undefined) this.#tally.hedges++;
      }
      this.#counted++;
    } else if (!this.#protocol.replayable(this.#req)) {
      return false;
    }
    const n = this.#first + this.#sent++;
    this.#shared.counters.attempts++;
    const avoid = new Set(this.#failed);
    for (const h of this.#live) if (h.endpoint !== undefined) avoid.add(h.endpoint);
    const outer = this.#ctx.get(EndpointPicked);
    let hedgeRef: Hedge | undefined;
    const ctx = avoiding(this.#ctx, avoid).withValue(EndpointPicked, (address: string) => {
      if (hedgeRef !== undefined) hedgeRef.endpoint = address;
      outer?.(address);
    });
    const scope = attemptScope(ctx, this.#protocol.wholeResponse(this.#req), undefined);
    const h: Hedge = { attempt: n, scope, endpoint: undefined };
    hedgeRef = h;
    this.#live.add(h);
    this.#shared.events.emit(() => ({
      type: 'hedge',
      method: this.#method,
      attempt: n,
      transparent,
      avoid: [...avoid],
      budgetLevel: this.#budget?.level,
    }));
    const req = this.#protocol.attempt(this.#req, n);
    runAttempt(() => this.#inner.call(req, scope.context), scope.context, this.#protocol.abandon).then(
      (res) => {
        // an answer the protocol counts as failed (an HTTP 503) is a lost attempt
        const failure = this.#protocol.failureOf(res, req);
        if (failure === undefined) this.#won(h, res);
        else this.#lost(h, failure);
      },
      (err: unknown) => this.#lost(h, err),
    );
    if (!transparent) this.#schedule(this.#settings.hedgingDelayMs);
    return true;
  }

  /** Arms the timer of the next hedge, or sends it now when `delayMs` is 0. */
  #schedule(delayMs: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#finished || this.#stopped !== undefined || this.#counted >= this.#maxAttempts) return;
    if (Date.now() + delayMs >= this.#ctx.deadline) return;
    if (delayMs === 0) {
      this.#launch(false);
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#launch(false);
      this.#maybeEnd();
    }, delayMs);
  }

  #won(h: Hedge, res: Res): void {
    this.#live.delete(h);
    if (this.#finished) {
      // another hedged attempt already ended the call
      this.#protocol.abandon(res);
      h.scope.release();
      return;
    }
    this.#finished = true;
    h.scope.committed(res, this.#protocol.whenDone);
    const cancelled = this.#cancelRest(new CancelledError('another hedged attempt committed'));
    const counters = this.#shared.counters;
    counters.committed++;
    if (h.attempt > this.#first) counters.wonByHedge++;
    this.#recordSuccess(res);
    this.#shared.events.emit(() => ({
      type: 'hedge-won',
      method: this.#method,
      attempt: h.attempt,
      endpoint: this.#protocol.endpointOf(res),
      cancelled,
    }));
    this.#resolve(res);
  }

  #lost(h: Hedge, raw: unknown): void {
    this.#live.delete(h);
    h.scope.release();
    if (this.#finished) {
      if (raw instanceof FailedResponseError) this.#protocol.abandon(raw.response as Res);
      return;
    }
    if (this.#ctx.aborted) {
      this.#onAbort();
      return;
    }
    const err = toGrpcTowerError(raw);
    if (err.endpoint !== undefined) this.#failed.add(err.endpoint);
    // only the last answer judged failed is kept for the caller; earlier ones are freed
    const last = this.#lastError;
    if (last instanceof FailedResponseError && last !== raw) this.#protocol.abandon(last.response as Res);
    this.#lastError = raw;
    if (
      this.#shared.policy.transparentRetry &&
      !this.#transparentUsed &&
      this.#protocol.neverReachedServer(err) &&
      this.#protocol.replayable(this.#req)
    ) {
      this.#emitFailed(h, err, false);
      this.#transparentUsed = true;
      this.#shared.counters.transparentRetries++;
      if (this.#tally !== undefined) this.#tally.transparentRetries++;
      this.#launch(true);
      return;
    }
    // a failure marked not retryable (no endpoint could take the call) ends the hedging too
    const fatal = err.retryable === false || !this.#shared.rules.nonFatal(err, this.#req, this.#settings);
    this.#emitFailed(h, err, fatal);
    if (fatal) {
      this.#fail(raw, 'fatal', new CancelledError('another hedged attempt failed with a fatal status'));
      return;
    }
    const pushback = this.#protocol.pushback(err);
    this.#budget?.onOutcome('failure');
    if (pushback.kind === 'stop') {
      this.#stopped = 'pushback';
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
    } else {
      // A6: after a non-fatal failure the next hedge goes out at once, or
      // after the server's pushback
      this.#schedule(pushback.kind === 'delay' ? pushback.ms : 0);
    }
    this.#maybeEnd();
  }

  /** Ends the call with the last failure once nothing runs and nothing is scheduled. */
  #maybeEnd(): void {
    if (this.#finished || this.#live.size > 0 || this.#timer !== undefined) return;
    const reason = this.#stopped ?? (this.#counted >= this.#maxAttempts ? 'max-attempts' : 'deadline');
    const err =
      reason === 'budget' ? new RetryBudgetExhaustedError(this.#lastError, this.#counted) : this.#lastError;
    this.#fail(err, reason, new CancelledError('the hedged call ended'));
  }

  #fail(err: unknown, reason: HedgeEndReason, cancelReason: Error): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#cancelRest(cancelReason);
    this.#shared.counters.failed++;
    this.#shared.events.emit(() => ({
      type: 'give-up',
      method: this.#method,
      attempts: this.#counted,
      reason,
      code: toGrpcTowerError(err).code,
      budgetLevel: this.#budget?.level,
    }));
    // an answer that counts as failed (an HTTP 503) reaches the caller as the server sent it
    const answer = err instanceof RetryBudgetExhaustedError ? this.#lastError : err;
    if (answer instanceof FailedResponseError && !this.#ctx.aborted) this.#resolve(answer.response as Res);
    else this.#reject(err);
  }

  /** Stops the timer and cancels every attempt still running; returns how many. */
  #cancelRest(reason: Error): number {
    this.#offAbort?.();
    this.#offAbort = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const rest = [...this.#live];
    this.#live.clear();
    for (const h of rest) {
      h.scope.abort(reason);
      h.scope.release();
    }
    this.#shared.counters.cancelled += rest.length;
    return rest.length;
  }

  #recordSuccess(res: Res): void {
    const done = this.#shared.budgetDone;
    if (done !== undefined) this.#protocol.whenDone(res, done);
  }

  #emitFailed(h: Hedge, err: GrpcTowerError, fatal: boolean): void {
    this.#shared.events.emit(() => ({
      type: 'hedge-failed',
      method: this.#method,
      attempt: h.attempt,
      code: err.code,
      endpoint: err.endpoint,
      fatal,
    }));
  }
}
