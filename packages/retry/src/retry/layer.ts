/**
 * The retry layer: gRPC A6 client retries ("gRPC Retry Design",
 * `grpc/proposal` A6-client-retries.md) for a grpc-tower stack, with the
 * attempt loop run by `p-retry`.
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
 * The first attempt goes out directly; only a call whose first attempt
 * failed enters p-retry's loop (which is then handed that failure as its
 * own first attempt), so a call that succeeds at once costs no more than
 * the attempt. Events are built only while somebody subscribes.
 *
 * @module
 */
import {
  AttemptTimeoutError,
  type CallContext,
  type GrpcTowerError,
  type Service,
  Status,
  type StatusCode,
  toGrpcTowerError,
} from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import { EventStream } from '@grpc-tower/core/internal';
import pRetry, { AbortError } from 'p-retry';
import type { Observable } from 'rxjs';
import { type RetryLimiter, budgetDone } from '../budget/budget.js';
import { grpcRetryProtocol } from '../protocol/grpc.js';
import { FailedResponseError, type RetryProtocol } from '../protocol/protocol.js';
import { type AttemptScope, attemptError, attemptScope, avoiding, callScope, runAttempt } from './attempt.js';
import { type Pushback, backoffSleep, fullJitterDelay } from './backoff.js';
import { CallRetries, type RetryTally } from '../tally.js';
import { RetryBudgetExhaustedError } from './errors.js';
import {
  type CompiledRetryPolicy,
  type ResolvedRetrySettings,
  type RetryPolicy,
  compileRetryPolicy,
} from './policy.js';

/**
 * Why a call stopped retrying:
 * - `non-retryable`: the code is not retryable (or the predicate said no);
 * - `max-attempts`: `maxAttempts` attempts were made;
 * - `budget`: the budget or throttle refused a retry;
 * - `deadline`: the call's deadline passed, or the next delay would end after it;
 * - `not-replayable`: the request passed the replay buffer, the call is committed;
 * - `pushback`: the server sent a negative or malformed `grpc-retry-pushback-ms`;
 * - `cancelled`: the caller cancelled.
 *
 * @example
 * ```ts
 * layer.events$.pipe(filter((e) => e.type === 'give-up' && e.reason === 'budget')).subscribe(alert);
 * ```
 */
export type GiveUpReason =
  | 'non-retryable'
  | 'max-attempts'
  | 'budget'
  | 'deadline'
  | 'not-replayable'
  | 'pushback'
  | 'cancelled';

/**
 * What the retry layer reports, one event per step of a call.
 *
 * @example
 * ```ts
 * layer.events$.subscribe((e) => {
 *   if (e.type === 'give-up') console.log(e.method, e.reason, e.attempts);
 * });
 * ```
 */
export type RetryEvent =
  | {
      /** An attempt is being sent. */
      readonly type: 'attempt';
      readonly method: string;
      /** The attempt's number, 0 for the first (transparent re-sends included). */
      readonly attempt: number;
      /** Whether this is a transparent re-send. */
      readonly transparent: boolean;
      /** The endpoints this attempt asks the balancer to avoid. */
      readonly avoid: readonly string[];
    }
  | {
      /** An attempt failed before it committed. */
      readonly type: 'attempt-failed';
      readonly method: string;
      readonly attempt: number;
      readonly code: StatusCode;
      readonly endpoint: string | undefined;
      readonly error: GrpcTowerError;
    }
  | {
      /** Another attempt will be sent after `delayMs`. */
      readonly type: 'retry';
      readonly method: string;
      /** The number of the attempt that will be sent. */
      readonly attempt: number;
      readonly delayMs: number;
      /** `backoff` (jittered), `pushback` (the server's value) or `transparent` (at once, not counted). */
      readonly cause: 'backoff' | 'pushback' | 'transparent';
      /** The budget's level after this retry was granted, when there is a budget. */
      readonly budgetLevel: number | undefined;
    }
  | {
      /** The call failed for good. */
      readonly type: 'give-up';
      readonly method: string;
      /** Attempts counted against `maxAttempts`. */
      readonly attempts: number;
      readonly reason: GiveUpReason;
      readonly code: StatusCode;
      readonly budgetLevel: number | undefined;
    }
  | {
      /** An attempt committed; its response goes to the caller. */
      readonly type: 'committed';
      readonly method: string;
      readonly attempts: number;
      readonly endpoint: string;
    };

/**
 * Counters of a retry layer since it was created, over every service it
 * wrapped.
 *
 * @example
 * ```ts
 * const { calls, retries } = layer.stats();
 * console.log(`retry ratio ${(retries / calls).toFixed(2)}`);
 * ```
 */
export interface RetryStats {
  /** Calls that entered the layer. */
  readonly calls: number;
  /** Attempts sent, transparent re-sends included. */
  readonly attempts: number;
  /** Retries sent after a backoff or pushback (counted ones). */
  readonly retries: number;
  /** Transparent re-sends. */
  readonly transparentRetries: number;
  /** Calls that committed (returned a response). */
  readonly committed: number;
  /** Calls that failed. */
  readonly failed: number;
  /** Retries the budget or throttle refused. */
  readonly budgetExhausted: number;
  /** The budget's level now, when there is one. */
  readonly budgetLevel: number | undefined;
}

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
export interface RetryLayer<Req = GrpcRequest, Res = GrpcResponse> {
  (inner: Service<Req, Res>): RetryService<Req, Res>;
  /** One event per step of each call. */
  readonly events$: Observable<RetryEvent>;
  /** Counters since the layer was created. */
  stats(): RetryStats;
  /** The checked policy. */
  readonly policy: CompiledRetryPolicy<Req>;
  /** The protocol whose rules the layer follows (`'grpc'`, `'http'`). */
  readonly protocol: RetryProtocol<Req, Res>;
}

interface Counters {
  calls: number;
  attempts: number;
  retries: number;
  transparentRetries: number;
  committed: number;
  failed: number;
  budgetExhausted: number;
}

interface Shared<Req, Res> {
  readonly policy: CompiledRetryPolicy<Req>;
  readonly protocol: RetryProtocol<Req, Res>;
  readonly counters: Counters;
  /** Tells the budget that a response ended well (one function per layer, not per call). */
  readonly budgetDone: ((ok: boolean) => void) | undefined;
  readonly events: EventStream<RetryEvent>;
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
 * `protocol` judging what is retryable, where the commit point is and what
 * the server's pushback says, and `policy` (checked, as
 * `compileRetryPolicy` or `compileHttpRetryPolicy` make it) setting the
 * attempts, backoff and budget. `retry()` is
 * `retryWith(grpcRetryProtocol, compileRetryPolicy(policy))`.
 *
 * @example
 * ```ts
 * const layer = retryWith(httpRetryProtocol(), compileHttpRetryPolicy({ maxAttempts: 3 }));
 * ```
 */
export function retryWith<Req, Res>(
  protocol: RetryProtocol<Req, Res>,
  compiled: CompiledRetryPolicy<Req>,
): RetryLayer<Req, Res> {
  const shared: Shared<Req, Res> = {
    protocol,
    policy: compiled,
    budgetDone: budgetDone(compiled.budget),
    counters: {
      calls: 0,
      attempts: 0,
      retries: 0,
      transparentRetries: 0,
      committed: 0,
      failed: 0,
      budgetExhausted: 0,
    },
    events: new EventStream<RetryEvent>(),
  };
  const events$ = shared.events.events$;
  const stats = (): RetryStats => ({ ...shared.counters, budgetLevel: compiled.budget?.level });
  const layer = (inner: Service<Req, Res>): RetryService<Req, Res> => {
    const service: RetryService<Req, Res> = {
      call: (req, ctx) => new RetryCall(inner, shared, req, ctx).run(),
      events$,
      stats,
    };
    return service;
  };
  return Object.assign(layer, { events$, stats, policy: compiled, protocol });
}

/** What the last failed counted attempt was judged to be. */
interface Verdict {
  /** The error as p-retry saw it. */
  readonly raw: Error;
  readonly error: GrpcTowerError;
  readonly retryable: boolean;
  readonly pushback: Pushback;
}

/** One call through the retry layer. */
class RetryCall<Req, Res> {
  readonly #inner: Service<Req, Res>;
  readonly #shared: Shared<Req, Res>;
  readonly #protocol: RetryProtocol<Req, Res>;
  readonly #req: Req;
  /** The call's name in events, made when first needed (events are built only while somebody listens). */
  #name: string | undefined;
  /** The number of the call's first attempt (`RetryProtocol.attemptOf`). */
  readonly #first: number;
  readonly #ctx: CallContext;
  readonly #settings: ResolvedRetrySettings<Req>;
  readonly #budget: RetryLimiter | undefined;
  /** Attempts sent, transparent ones included. */
  #sent = 0;
  /** Attempts counted against maxAttempts. */
  #counted = 0;
  /** Endpoints that failed this call. */
  #failed: Set<string> | undefined;
  #transparentUsed = false;
  /** The backoff step of the next retry (restarted by a pushback). */
  #step = 0;
  #verdict: Verdict | undefined;
  #gaveUp: GiveUpReason | undefined;
  /** The call's retry counts, when a layer above asked for them (telemetry). */
  readonly #tally: RetryTally | undefined;

  constructor(inner: Service<Req, Res>, shared: Shared<Req, Res>, req: Req, ctx: CallContext) {
    this.#inner = inner;
    this.#shared = shared;
    this.#protocol = shared.protocol;
    this.#req = req;
    this.#first = shared.protocol.attemptOf(req);
    this.#ctx = ctx;
    const policy = shared.policy;
    this.#settings = policy.perMethod ? policy.forMethod(this.#method) : policy.defaults;
    this.#budget = shared.policy.budget;
    this.#tally = ctx.get(CallRetries);
  }

  get #method(): string {
    this.#name ??= this.#protocol.method(this.#req);
    return this.#name;
  }

  run(): Promise<Res> {
    const counters = this.#shared.counters;
    counters.calls++;
    if (this.#ctx.aborted) {
      counters.failed++;
      return Promise.reject(this.#ctx.reason());
    }
    this.#budget?.onCall();
    // The first attempt goes out directly: a call that succeeds at once
    // never enters p-retry (its loop costs several async steps per call).
    this.#counted = 1;
    return this.#send(false, true);
  }

  /** The call failed its first attempt: p-retry runs the rest of the loop, starting from that failure. */
  #retry(first: unknown): Promise<Res> {
    // p-retry runs the attempt loop and counts the attempts. Its own
    // backoff cannot do what A6 asks: it multiplies the delay by a random
    // factor in [1, 2) instead of drawing it from [0, ceiling] (full
    // jitter), and it knows nothing of server pushback (which sets the
    // delay and restarts the backoff) or of the call's deadline. So its
    // delay is switched off (minTimeout 0) and `shouldRetry`, which p-retry
    // awaits before the next attempt, decides, computes the delay and
    // sleeps on the call's signal. Transparent re-sends must not count
    // against maxAttempts even after the last counted attempt, which
    // p-retry cannot express (it stops before asking once its retries are
    // spent), so they happen inside one p-retry attempt (#attempt). The
    // first attempt already ran: p-retry's first is its failure.
    return pRetry(
      (attemptNumber) => (attemptNumber === 1 ? Promise.reject(first) : this.#attempt(attemptNumber)),
      {
        retries: this.#settings.maxAttempts - 1,
        minTimeout: 0,
        maxTimeout: 0,
        factor: 1,
        randomize: false,
        onFailedAttempt: ({ error, attemptNumber }) => this.#judge(error, attemptNumber),
        shouldRetry: ({ error }) => this.#decide(error),
      },
    ).then(
      (res) => this.#committed(res),
      (err: unknown) => {
        this.#shared.counters.failed++;
        const out = this.#finalError(err);
        // an answer that counts as failed (an HTTP 503) reaches the caller as the server sent it
        if (err instanceof FailedResponseError && !this.#ctx.aborted) return err.response as Res;
        throw out;
      },
    );
  }

  #committed(res: Res): Res {
    this.#shared.counters.committed++;
    this.#shared.events.emit(() => ({
      type: 'committed',
      method: this.#method,
      attempts: this.#counted,
      endpoint: this.#protocol.endpointOf(res),
    }));
    return res;
  }

  /** One counted attempt, with at most one transparent re-send inside it. */
  #attempt(attemptNumber: number): Promise<Res> {
    this.#counted = attemptNumber;
    if (this.#ctx.aborted) return Promise.reject(new AbortError(this.#ctx.reason()));
    return this.#send(false).catch((raw: unknown) => this.#afterFailure(raw));
  }

  /** After a failed send: re-sends once, transparently, an attempt that never reached a server. */
  #afterFailure(raw: unknown): Promise<Res> {
    if (this.#ctx.aborted) throw new AbortError(this.#ctx.reason());
    const err = toGrpcTowerError(raw);
    if (
      this.#shared.policy.transparentRetry &&
      !this.#transparentUsed &&
      this.#protocol.neverReachedServer(err) &&
      this.#protocol.replayable(this.#req)
    ) {
      this.#transparentUsed = true;
      this.#shared.counters.transparentRetries++;
      if (this.#tally !== undefined) this.#tally.transparentRetries++;
      this.#shared.events.emit(() => ({
        type: 'retry',
        method: this.#method,
        attempt: this.#first + this.#sent,
        delayMs: 0,
        cause: 'transparent',
        budgetLevel: this.#budget?.level,
      }));
      return this.#send(true).catch((again: unknown) => {
        if (this.#ctx.aborted) throw new AbortError(this.#ctx.reason());
        throw again instanceof Error ? again : toGrpcTowerError(again);
      });
    }
    // p-retry wants an Error; keep the caller's error object as it is
    throw raw instanceof Error ? raw : err;
  }

  /**
   * Sends one attempt and waits for its commit or its failure. The call's
   * first attempt (`first`) also ends the call when it commits, and
   * otherwise goes on to the transparent re-send and to p-retry, all in the
   * one reaction to its outcome.
   */
  #send(transparent: boolean, first = false): Promise<Res> {
    const protocol = this.#protocol;
    const n = this.#first + this.#sent++;
    this.#shared.counters.attempts++;
    const req = protocol.attempt(this.#req, n);
    const avoid = this.#failed;
    const ctx = avoid === undefined ? this.#ctx : avoiding(this.#ctx, avoid);
    this.#shared.events.emit(() => ({
      type: 'attempt',
      method: this.#method,
      attempt: n,
      transparent,
      avoid: avoid === undefined ? [] : [...avoid],
    }));
    const timeoutMs = this.#settings.perAttemptTimeoutMs;
    // without a per-attempt limit nothing but the call stops an attempt: share its context
    const scope =
      timeoutMs === undefined ? callScope(ctx) : attemptScope(ctx, protocol.wholeResponse(req), timeoutMs);
    const failed = (raw: unknown): Promise<Res> => {
      const thrown = this.#failure(raw, scope, n, timeoutMs);
      if (!first) throw thrown;
      let next: Promise<Res>;
      try {
        next = this.#afterFailure(thrown);
      } catch (err) {
        return this.#retry(err);
      }
      return next.then(
        (res) => this.#committed(res),
        (err: unknown) => this.#retry(err),
      );
    };
    return runAttempt(() => this.#inner.call(req, scope.context), scope.context, protocol.abandon).then(
      (res) => {
        // an answer the protocol counts as failed (an HTTP 503) is judged like a failure
        const failure = protocol.failureOf(res, req);
        if (failure !== undefined) return failed(failure);
        scope.committed(res, protocol.whenDone);
        this.#recordSuccess(res);
        return first ? this.#committed(res) : res;
      },
      failed,
    );
  }

  /** Books a failed attempt; returns what to throw for it. */
  #failure(raw: unknown, scope: AttemptScope, n: number, timeoutMs: number | undefined): unknown {
    scope.release();
    if (this.#ctx.aborted) return raw;
    const err = attemptError(raw, scope, this.#ctx, timeoutMs);
    if (err.endpoint !== undefined) {
      this.#failed ??= new Set();
      this.#failed.add(err.endpoint);
    }
    this.#shared.events.emit(() => ({
      type: 'attempt-failed',
      method: this.#method,
      attempt: n,
      code: err.code,
      endpoint: err.endpoint,
      error: err,
    }));
    return err === raw || !(raw instanceof Error) || err instanceof AttemptTimeoutError ? err : raw;
  }

  #recordSuccess(res: Res): void {
    const done = this.#shared.budgetDone;
    if (done !== undefined) this.#protocol.whenDone(res, done);
  }

  /** Judges a failed counted attempt (p-retry's `onFailedAttempt`, called for each). */
  #judge(raw: Error, attemptNumber: number): void {
    this.#counted = attemptNumber;
    const error = toGrpcTowerError(raw);
    const pushback = this.#protocol.pushback(error);
    const settings = this.#settings;
    let retryable = this.#protocol.retryable(
      error,
      this.#req,
      settings,
      error instanceof AttemptTimeoutError && !this.#ctx.aborted,
    );
    if (settings.shouldRetry !== undefined) {
      const said = settings.shouldRetry({
        error,
        method: this.#method,
        attempts: attemptNumber,
        request: this.#req,
      });
      if (said !== undefined) retryable = said;
    }
    // marked by whoever raised it (a balancer with no endpoint to take the
    // call): another attempt would fail the same way, so none is made
    if (error.retryable === false) retryable = false;
    // A6 throttling counts a retryable failure, and a pushback that forbids retrying
    if (retryable || pushback.kind === 'stop') this.#budget?.onOutcome('failure');
    this.#verdict = { raw, error, retryable, pushback };
  }

  /**
   * Decides whether to retry after a failed attempt, and sleeps the delay
   * (p-retry's `shouldRetry`, called only while attempts are left).
   */
  async #decide(raw: Error): Promise<boolean> {
    const verdict = this.#verdict;
    if (verdict === undefined || verdict.raw !== raw) return this.#stop('non-retryable');
    if (!verdict.retryable) return this.#stop('non-retryable');
    if (verdict.pushback.kind === 'stop') return this.#stop('pushback');
    if (!this.#protocol.replayable(this.#req)) return this.#stop('not-replayable');
    let delayMs: number;
    if (verdict.pushback.kind === 'delay') {
      delayMs = verdict.pushback.ms;
      this.#step = 0;
    } else {
      delayMs = fullJitterDelay(this.#step, this.#settings.backoff);
      this.#step++;
    }
    // never sleep past the deadline: if the retry could not start in time, stop now
    if (Date.now() + delayMs >= this.#ctx.deadline) return this.#stop('deadline');
    if (this.#budget !== undefined && !this.#budget.tryAcquire()) {
      this.#shared.counters.budgetExhausted++;
      return this.#stop('budget');
    }
    this.#shared.counters.retries++;
    const tally = this.#tally;
    if (tally !== undefined) {
      tally.retries++;
      tally.delayMs += delayMs;
    }
    this.#shared.events.emit(() => ({
      type: 'retry',
      method: this.#method,
      attempt: this.#first + this.#sent,
      delayMs,
      cause: verdict.pushback.kind === 'delay' ? 'pushback' : 'backoff',
      budgetLevel: this.#budget?.level,
    }));
    // the answer retried past (an HTTP 503 with its body) is not read by anyone
    if (verdict.raw instanceof FailedResponseError) this.#protocol.abandon(verdict.raw.response as Res);
    if (delayMs > 0) await backoffSleep(delayMs, this.#ctx);
    else this.#ctx.throwIfAborted();
    return true;
  }

  #stop(reason: GiveUpReason): false {
    this.#gaveUp = reason;
    return false;
  }

  /** The error the caller gets, and the give-up event. */
  #finalError(err: unknown): unknown {
    let reason: GiveUpReason;
    let out: unknown = err;
    if (this.#ctx.aborted) {
      out = this.#ctx.reason();
      reason = toGrpcTowerError(out).code === Status.DEADLINE_EXCEEDED ? 'deadline' : 'cancelled';
    } else if (this.#gaveUp !== undefined) {
      reason = this.#gaveUp;
    } else {
      // p-retry stopped without asking: the attempts are spent (or the error
      // is one p-retry never retries, a TypeError from a bug)
      reason = this.#verdict?.retryable === true ? 'max-attempts' : 'non-retryable';
    }
    const final = toGrpcTowerError(out);
    if (
      reason === 'non-retryable' &&
      final.code === Status.DEADLINE_EXCEEDED &&
      Date.now() >= this.#ctx.deadline
    ) {
      // the call's deadline passed: the server (told through grpc-timeout)
      // answered before the call's own timer ran
      reason = 'deadline';
    }
    if (reason === 'budget') out = new RetryBudgetExhaustedError(err, this.#counted);
    const code = reason === 'budget' ? final.code : toGrpcTowerError(out).code;
    this.#shared.events.emit(() => ({
      type: 'give-up',
      method: this.#method,
      attempts: this.#counted,
      reason,
      code,
      budgetLevel: this.#budget?.level,
    }));
    return out;
  }
}
