/**
 * The attempt engine under the retry and hedging layers. Both send the
 * same call more than once, and everything about one attempt is the same
 * for both; only when the next attempt goes out differs. So one engine
 * owns what an attempt is:
 *
 * - its number (`grpc-previous-rpc-attempts`, through
 *   `RetryProtocol.attempt`) and its request, replayed from the call's
 *   buffer by the protocol;
 * - how it runs (`runAttempt`: settled as soon as its context aborts);
 * - the transparent re-send of gRPC A6: once per call, at once and
 *   uncounted, an attempt that never reached a server application;
 * - the retry budget or A6 throttle: the call deposited, a failure
 *   counted, a retry or hedge paid for;
 * - the commit: the attempt's scope ends with its response, and the budget
 *   hears how the response ended;
 * - the one place an attempt after the first is recorded
 *   ({@link AttemptCall.record}): the layer's counters, the call's
 *   `RetryTally` (read by telemetry) and the layer's event, together.
 *
 * The two schedules extend {@link AttemptCall}: the A6 retry loop
 * (`retry/layer.ts`: one attempt at a time, backoff and pushback between
 * them) and hedging (`hedge/layer.ts`: attempts overlapping, one every
 * `hedgingDelayMs`, the first to commit wins).
 *
 * @internal
 * @module
 */
import type { CallContext, GrpcTowerError, Service } from '@grpc-tower/core';
import { CallRetries, type RetryTally } from '../tally.js';
import { EventStream } from '@grpc-tower/core/internal';
import { type RetryLimiter, budgetDone } from '../budget/budget.js';
import type { Protocol } from '../protocol/protocol.js';
import { type AttemptScope, runAttempt } from '../retry/attempt.js';

/**
 * What an engine counts over every call of its layer; the layer's `stats()`
 * names `again` after its schedule (retries, hedges).
 *
 * @internal
 */
export interface AttemptCounters {
  /** Calls that entered the layer. */
  calls: number;
  /** Attempts sent, transparent re-sends included. */
  attempts: number;
  /** Counted attempts after the first: retries, or hedges. */
  again: number;
  /** Transparent re-sends. */
  transparentRetries: number;
  /** Calls that committed. */
  committed: number;
  /** Calls that failed. */
  failed: number;
  /** Retries or hedges the budget or throttle refused. */
  budgetExhausted: number;
}

/**
 * Why an attempt after the first goes out: after a backoff, after the
 * server's pushback, as a hedge, or as the transparent re-send.
 *
 * @internal
 */
export type AgainCause = 'backoff' | 'pushback' | 'hedge' | 'transparent';

/**
 * What a policy gives the engine: the budget and whether transparent
 * re-sends are on.
 *
 * @internal
 */
export interface EngineSettings {
  readonly budget: RetryLimiter | undefined;
  readonly transparentRetry: boolean;
}

/**
 * One layer's share of the engine: its protocol, budget, counters and
 * events, shared by every call of the layer (nothing here is made per
 * call).
 *
 * @internal
 * @example
 * ```ts
 * const engine = new AttemptEngine<GrpcRequest, GrpcResponse, RetryEvent>(grpcRetryProtocol, policy, 'retries');
 * ```
 */
export class AttemptEngine<Req, Res, E> {
  readonly protocol: Protocol<Req, Res>;
  readonly budget: RetryLimiter | undefined;
  readonly transparentRetry: boolean;
  readonly counters: AttemptCounters = {
    calls: 0,
    attempts: 0,
    again: 0,
    transparentRetries: 0,
    committed: 0,
    failed: 0,
    budgetExhausted: 0,
  };
  readonly events = new EventStream<E>();
  /** Tells the budget how a committed response ended (one function per layer). */
  readonly budgetDone: ((ok: boolean) => void) | undefined;
  /** The field of the call's `RetryTally` that a counted attempt after the first adds to. */
  readonly tallied: 'retries' | 'hedges';

  constructor(protocol: Protocol<Req, Res>, settings: EngineSettings, tallied: 'retries' | 'hedges') {
    this.protocol = protocol;
    this.budget = settings.budget;
    this.transparentRetry = settings.transparentRetry;
    this.budgetDone = budgetDone(settings.budget);
    this.tallied = tallied;
  }

  /** The budget's level now, when there is one. */
  get budgetLevel(): number | undefined {
    return this.budget?.level;
  }
}

/**
 * One call through the engine; a schedule extends it and decides when the
 * next attempt goes out.
 *
 * @internal
 * @example
 * ```ts
 * class OnceCall<Req, Res> extends AttemptCall<Req, Res, never> {
 *   run(): Promise<Res> {
 *     if (!this.enter()) return Promise.reject(this.ctx.reason());
 *     return this.exchange(this.protocol.attempt(this.req, this.nextAttempt()), this.ctx);
 *   }
 * }
 * ```
 */
export abstract class AttemptCall<Req, Res, E> {
  protected readonly engine: AttemptEngine<Req, Res, E>;
  protected readonly protocol: Protocol<Req, Res>;
  protected readonly inner: Service<Req, Res>;
  protected readonly req: Req;
  protected readonly ctx: CallContext;
  /** The number of the call's first attempt (`RetryProtocol.attemptOf`). */
  protected readonly first: number;
  /** Attempts sent, transparent ones included. */
  protected sent = 0;
  /** Endpoints whose attempt failed, made when the first one does. */
  protected failed: Set<string> | undefined;
  #transparentUsed = false;
  /** The call's retry counts, when a layer above asked for them (telemetry). */
  readonly #tally: RetryTally | undefined;
  /** The call's name, made when first needed. */
  #name: string | undefined;

  constructor(engine: AttemptEngine<Req, Res, E>, inner: Service<Req, Res>, req: Req, ctx: CallContext) {
    this.engine = engine;
    this.protocol = engine.protocol;
    this.inner = inner;
    this.req = req;
    this.ctx = ctx;
    this.first = engine.protocol.attemptOf(req);
    this.#tally = ctx.get(CallRetries);
  }

  /** The call's name (`RetryProtocol.method`). */
  get method(): string {
    this.#name ??= this.protocol.method(this.req);
    return this.#name;
  }

  /** Counts the call and deposits it in the budget; `false` (and counted failed) when it was already cancelled. */
  protected enter(): boolean {
    const counters = this.engine.counters;
    counters.calls++;
    if (this.ctx.aborted) {
      counters.failed++;
      return false;
    }
    this.engine.budget?.onCall();
    return true;
  }

  /** Counts an attempt about to be sent and returns its number. */
  protected nextAttempt(): number {
    this.engine.counters.attempts++;
    return this.first + this.sent++;
  }

  /** Runs one attempt's request on `ctx`; settles as soon as `ctx` aborts. */
  protected exchange(req: Req, ctx: CallContext): Promise<Res> {
    return runAttempt(this.inner, req, ctx, this.protocol.abandon);
  }

  /** Remembers the endpoint of a failed attempt, so later attempts avoid it. */
  protected failedOn(endpoint: string | undefined): void {
    if (endpoint === undefined) return;
    this.failed ??= new Set();
    this.failed.add(endpoint);
  }

  /**
   * Whether the attempt that failed with `error` is re-sent transparently
   * (gRPC A6): transparent re-sends are on, none was made for this call
   * yet, the attempt never reached a server application, and the request
   * can still be replayed. Records the re-send when so.
   */
  protected transparent(error: GrpcTowerError): boolean {
    if (
      !this.engine.transparentRetry ||
      this.#transparentUsed ||
      !this.protocol.neverReachedServer(error) ||
      !this.protocol.replayable(this.req)
    ) {
      return false;
    }
    this.#transparentUsed = true;
    this.record('transparent', 0);
    return true;
  }

  /** A failed attempt counts against the budget (A6 throttling: a retryable or non-fatal code, or a pushback that forbids retrying). */
  protected failure(): void {
    this.engine.budget?.onOutcome('failure');
  }

  /** Asks the budget for one counted attempt after the first; a refusal is counted. */
  protected acquire(): boolean {
    const budget = this.engine.budget;
    if (budget === undefined || budget.tryAcquire()) return true;
    this.engine.counters.budgetExhausted++;
    return false;
  }

  /**
   * Records an attempt after the first, in one place: the layer's counters,
   * the call's tally and (through {@link AttemptCall.announce}) the layer's
   * event. `delayMs` is the wait before it (a backoff or a pushback).
   */
  protected record(cause: AgainCause, delayMs: number): void {
    const counters = this.engine.counters;
    const tally = this.#tally;
    if (cause === 'transparent') {
      counters.transparentRetries++;
      if (tally !== undefined) tally.transparentRetries++;
    } else {
      counters.again++;
      if (tally !== undefined) {
        tally[this.engine.tallied]++;
        tally.delayMs += delayMs;
      }
    }
    this.announce(cause, delayMs);
  }

  /** The schedule's event for an attempt after the first; none by default. */
  protected announce(_cause: AgainCause, _delayMs: number): void {
    // a schedule that reports each launch itself has nothing to add
  }

  /**
   * An attempt committed with `res`: its scope (when it has one) lasts until
   * the response is over, the budget then hears how it ended, and the call
   * counts as committed.
   */
  protected commit(res: Res, scope: AttemptScope | undefined): void {
    if (scope !== undefined) scope.committed(res, this.protocol.whenDone);
    const done = this.engine.budgetDone;
    if (done !== undefined) this.protocol.whenDone(res, done);
    this.engine.counters.committed++;
  }

  /** The call failed for good. */
  protected gaveUp(): void {
    this.engine.counters.failed++;
  }
}
