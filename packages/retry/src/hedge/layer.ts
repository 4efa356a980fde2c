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
 * deadline and the caller's cancel end every attempt. This is the hedging
 * schedule over the attempt engine (`attempt/engine.ts`), which numbers,
 * runs, re-sends transparently, pays for and records each attempt.
 *
 * @module
 */
import {
  type CallContext,
  CancelledError,
  type GrpcTowerError,
  type Service,
  Status,
  toGrpcTowerError,
} from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import type { Observable } from 'rxjs';
import { AttemptCall, AttemptEngine } from '../attempt/engine.js';
import { grpcRetryProtocol } from '../protocol/grpc.js';
import { FailedResponseError, type Protocol } from '../protocol/protocol.js';
import { type AttemptScope, attemptScope, avoiding } from '../retry/attempt.js';
import { RetryBudgetExhaustedError } from '../retry/errors.js';
import type { HedgeEndReason, HedgeEvent, HedgeStats } from './events.js';
export type { HedgeEndReason, HedgeEvent, HedgeStats } from './events.js';
import { EndpointPicked } from '@grpc-tower/balance';
import {
  type CompiledHedgePolicy,
  type HedgePolicy,
  type ResolvedHedgeSettings,
  compileHedgePolicy,
} from './policy.js';

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
export interface HedgeLayer<Req = GrpcRequest, Res = GrpcResponse>
  extends Pick<HedgeService<Req, Res>, 'events$' | 'stats'> {
  (inner: Service<Req, Res>): HedgeService<Req, Res>;
  readonly policy: CompiledHedgePolicy;
}

/**
 * The protocol side of a hedging layer: the retry layer's
 * `Protocol` from `@grpc-tower/core`, plus which failures let the other attempts go on
 * and which requests may be hedged at all.
 *
 * @example
 * ```ts
 * const rules: HedgeRules<GrpcRequest, GrpcResponse> = grpcHedgeRules;
 * ```
 */
export interface HedgeRules<Req, Res> {
  readonly protocol: Protocol<Req, Res>;
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
  const engine = new HedgeEngine(rules, compiled);
  const events$ = engine.events.events$;
  const stats = (): HedgeStats => {
    const { again, ...counters } = engine.counters;
    return {
      ...counters,
      hedges: again,
      wonByHedge: engine.wonByHedge,
      cancelled: engine.cancelled,
      budgetLevel: engine.budgetLevel,
    };
  };
  const layer = (inner: Service<Req, Res>): HedgeService<Req, Res> => ({
    call: (req: Req, ctx: CallContext) => new HedgeCall(engine, inner, req, ctx).run(),
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

/** The engine of one hedging layer, with its rules, policy and the counters only hedging has. */
class HedgeEngine<Req, Res> extends AttemptEngine<Req, Res, HedgeEvent> {
  readonly rules: HedgeRules<Req, Res>;
  readonly policy: CompiledHedgePolicy;
  /** Calls won by an attempt other than the first. */
  wonByHedge = 0;
  /** Attempts cancelled because another won or the call failed. */
  cancelled = 0;

  constructor(rules: HedgeRules<Req, Res>, policy: CompiledHedgePolicy) {
    super(rules.protocol, policy, 'hedges');
    this.rules = rules;
    this.policy = policy;
  }
}

/** One call through the hedging layer: the hedging schedule over the engine. */
class HedgeCall<Req, Res> extends AttemptCall<Req, Res, HedgeEvent> {
  readonly #engine: HedgeEngine<Req, Res>;
  /** At most this many attempts: the policy's, or 1 for a request that may not be hedged. */
  readonly #maxAttempts: number;
  readonly #settings: ResolvedHedgeSettings;
  readonly #live = new Set<Hedge>();
  /** Attempts counted against maxAttempts. */
  #counted = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Why no more hedges may go out, once that is so. */
  #stopped: 'budget' | 'not-replayable' | 'pushback' | undefined;
  #finished = false;
  #lastError: unknown;
  #offAbort: (() => void) | undefined;
  #resolve!: (res: Res) => void;
  #reject!: (err: unknown) => void;

  constructor(engine: HedgeEngine<Req, Res>, inner: Service<Req, Res>, req: Req, ctx: CallContext) {
    super(engine, inner, req, ctx);
    this.#engine = engine;
    this.#settings = engine.policy.forMethod(this.method);
    this.#maxAttempts = engine.rules.hedgeable(req) ? this.#settings.maxAttempts : 1;
  }

  run(): Promise<Res> {
    if (!this.enter()) return Promise.reject(this.ctx.reason());
    return new Promise<Res>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      this.#offAbort = this.ctx.onAbort(this.#onAbort);
      this.#launch(false);
    });
  }

  readonly #onAbort = (): void => {
    const reason = this.ctx.reason();
    const why = toGrpcTowerError(reason).code === Status.DEADLINE_EXCEEDED ? 'deadline' : 'cancelled';
    this.#fail(reason, why, new CancelledError('the hedged call ended'));
  };

  /** Sends one attempt; returns whether it went out. */
  #launch(transparent: boolean): boolean {
    if (this.#finished) return false;
    const protocol = this.protocol;
    if (!transparent) {
      if (this.#stopped !== undefined || this.#counted >= this.#maxAttempts) return false;
      if (this.#counted > 0) {
        if (!protocol.replayable(this.req)) {
          this.#stopped = 'not-replayable';
          return false;
        }
        if (!this.acquire()) {
          this.#stopped = 'budget';
          return false;
        }
        this.record('hedge', 0);
      }
      this.#counted++;
    } else if (!protocol.replayable(this.req)) {
      return false;
    }
    const n = this.nextAttempt();
    const avoid = new Set(this.failed);
    for (const h of this.#live) if (h.endpoint !== undefined) avoid.add(h.endpoint);
    const outer = this.ctx.get(EndpointPicked);
    let hedgeRef: Hedge | undefined;
    const ctx = avoiding(this.ctx, avoid).withValue(EndpointPicked, (address: string) => {
      if (hedgeRef !== undefined) hedgeRef.endpoint = address;
      outer?.(address);
    });
    const scope = attemptScope(ctx, protocol.wholeResponse(this.req), undefined);
    const h: Hedge = { attempt: n, scope, endpoint: undefined };
    hedgeRef = h;
    this.#live.add(h);
    this.engine.events.emit(() => ({
      type: 'hedge',
      method: this.method,
      attempt: n,
      transparent,
      avoid: [...avoid],
      budgetLevel: this.engine.budgetLevel,
    }));
    const req = protocol.attempt(this.req, n);
    this.exchange(req, scope.context).then(
      (res) => {
        // an answer the protocol counts as failed (an HTTP 503) is a lost attempt
        const failure = protocol.failureOf(res, req);
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
    if (Date.now() + delayMs >= this.ctx.deadline) return;
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
      this.protocol.abandon(res);
      h.scope.release();
      return;
    }
    this.#finished = true;
    this.commit(res, h.scope);
    const cancelled = this.#cancelRest(new CancelledError('another hedged attempt committed'));
    if (h.attempt > this.first) this.#engine.wonByHedge++;
    this.engine.events.emit(() => ({
      type: 'hedge-won',
      method: this.method,
      attempt: h.attempt,
      endpoint: this.protocol.endpointOf(res),
      cancelled,
    }));
    this.#resolve(res);
  }

  #lost(h: Hedge, raw: unknown): void {
    this.#live.delete(h);
    h.scope.release();
    if (this.#finished) {
      if (raw instanceof FailedResponseError) this.protocol.abandon(raw.response as Res);
      return;
    }
    if (this.ctx.aborted) {
      this.#onAbort();
      return;
    }
    const err = toGrpcTowerError(raw);
    this.failedOn(err.endpoint);
    // only the last answer judged failed is kept for the caller; earlier ones are freed
    const last = this.#lastError;
    if (last instanceof FailedResponseError && last !== raw) this.protocol.abandon(last.response as Res);
    this.#lastError = raw;
    if (this.transparent(err)) {
      this.#emitFailed(h, err, false);
      this.#launch(true);
      return;
    }
    // a failure marked not retryable (no endpoint could take the call) ends the hedging too
    const fatal = err.retryable === false || !this.#engine.rules.nonFatal(err, this.req, this.#settings);
    this.#emitFailed(h, err, fatal);
    if (fatal) {
      this.#fail(raw, 'fatal', new CancelledError('another hedged attempt failed with a fatal status'));
      return;
    }
    const pushback = this.protocol.pushback(err);
    this.failure();
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
    this.gaveUp();
    this.engine.events.emit(() => ({
      type: 'give-up',
      method: this.method,
      attempts: this.#counted,
      reason,
      code: toGrpcTowerError(err).code,
      budgetLevel: this.engine.budgetLevel,
    }));
    // an answer that counts as failed (an HTTP 503) reaches the caller as the server sent it
    const answer = err instanceof RetryBudgetExhaustedError ? this.#lastError : err;
    if (answer instanceof FailedResponseError && !this.ctx.aborted) this.#resolve(answer.response as Res);
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
    this.#engine.cancelled += rest.length;
    return rest.length;
  }

  #emitFailed(h: Hedge, err: GrpcTowerError, fatal: boolean): void {
    this.engine.events.emit(() => ({
      type: 'hedge-failed',
      method: this.method,
      attempt: h.attempt,
      code: err.code,
      endpoint: err.endpoint,
      fatal,
    }));
  }
}
