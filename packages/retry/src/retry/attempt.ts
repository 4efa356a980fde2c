/**
 * What the retry and hedging layers share about one attempt: its metadata
 * (`grpc-previous-rpc-attempts`), its context (AvoidEndpoints, its own
 * signal, its per-attempt time limit) and how it is awaited.
 *
 * @internal
 * @module
 */
import {
  AttemptTimeoutError,
  type CallContext,
  type GrpcTowerError,
  type Service,
  Status,
  linkedScope,
  toGrpcTowerError,
  withTimeout,
} from '@grpc-tower/core';
import { AvoidEndpoints } from '@grpc-tower/balance';
import type { GrpcRequest } from '@grpc-tower/core/grpc';
import { callPart as contextPart, settledOnAbort } from '@grpc-tower/core/internal';

/**
 * The request header of gRPC A6 that tells the server how many attempts came before.
 *
 * @example
 * ```ts
 * // server side
 * const previous = Number(call.metadata.get(PREVIOUS_ATTEMPTS_HEADER)[0] ?? 0);
 * ```
 */
export const PREVIOUS_ATTEMPTS_HEADER = 'grpc-previous-rpc-attempts';

/**
 * The request of attempt number `n` (0 for the first). The metadata is not
 * copied here: the endpoint makes the attempt's one copy and adds
 * `grpc-previous-rpc-attempts: n` (from `attempt`) from the second on.
 *
 * @internal
 */
export function attemptRequest(req: GrpcRequest, n: number): GrpcRequest {
  return n === req.attempt ? req : { ...req, attempt: n };
}

/**
 * `ctx` with AvoidEndpoints widened by `avoid` (what the context already
 * asked to avoid is kept).
 *
 * @internal
 */
export function avoiding(ctx: CallContext, avoid: ReadonlySet<string>): CallContext {
  if (avoid.size === 0) return ctx;
  const prior = ctx.get(AvoidEndpoints);
  return ctx.withValue(AvoidEndpoints, prior === undefined ? new Set(avoid) : new Set([...prior, ...avoid]));
}

/** The context of one attempt and what ends it. */
export interface AttemptScope {
  readonly context: CallContext;
  /** Stops the attempt (a hedge that lost, for example). */
  abort(reason: Error): void;
  /** Whether the attempt's own time limit has passed. */
  timedOut(): boolean;
  /** Releases everything; for an attempt that failed or was abandoned. */
  release(): void;
  /**
   * The attempt committed: its time limit ends now, but its link to the
   * call's signal stays until the response is over (`whenDone` says when),
   * so that cancelling the call still reaches the server.
   */
  committed<Res>(res: Res, whenDone: (res: Res, done: () => void) => void): void;
}

/**
 * A scope for one attempt under `ctx`. With `timeoutMs`, the attempt gets a
 * time limit until it commits: for methods that commit at their status
 * (unary, client streaming) the attempt's deadline is lowered, so the
 * server is told through `grpc-timeout`; for streams a timer aborts the
 * attempt only while it has not committed, so a limit meant for reaching a
 * server never cuts a long stream short.
 *
 * @internal
 */
export function attemptScope(ctx: CallContext, whole: boolean, timeoutMs: number | undefined): AttemptScope {
  if (timeoutMs !== undefined && whole) {
    const limit = Date.now() + timeoutMs;
    const scope = withTimeout(ctx, timeoutMs, () => new AttemptTimeoutError(timeoutMs));
    return {
      context: scope.context,
      abort: (reason) => scope.controller.abort(reason),
      // the scope's timer, or the server told the lowered deadline (grpc-timeout)
      timedOut: () => limit < ctx.deadline && Date.now() >= limit,
      release: () => scope.release(),
      committed: (res, whenDone) => whenDone(res, scope.release),
    };
  }
  const scope = linkedScope(ctx);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let fired = false;
  if (timeoutMs !== undefined) {
    timer = setTimeout(() => {
      timer = undefined;
      fired = true;
      scope.controller.abort(new AttemptTimeoutError(timeoutMs));
    }, timeoutMs);
  }
  const stopTimer = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  return {
    context: scope.context,
    abort: (reason) => scope.controller.abort(reason),
    timedOut: () => fired,
    release: () => {
      stopTimer();
      scope.release();
    },
    committed: (res, whenDone) => {
      stopTimer();
      whenDone(res, scope.release);
    },
  };
}

/**
 * The context of an attempt that has no time limit of its own and that
 * nothing but the call stops (a retry's attempts; not a hedge's, whose
 * losers are stopped one by one): a part of the call's own context, so
 * that a layer below cannot lower the whole call's deadline through it,
 * and so that the attempt costs no scope, controller or listener of its
 * own. Cancelling the call still reaches the attempt, before and after it
 * commits.
 *
 * @internal
 */
export function callPart(ctx: CallContext): CallContext {
  return contextPart(ctx);
}

/**
 * Calls `inner` with `req` for one attempt and settles as soon as the
 * attempt's context aborts, even if the inner service is slow to notice. A
 * response that arrives after that is cancelled, so nothing is left open.
 * When the owner of the context's signal settles the call itself as it
 * aborts (the channel's call does), there is nothing to race: the
 * attempt's own promise is returned.
 *
 * @internal
 */
export function runAttempt<Req, Res>(
  inner: Service<Req, Res>,
  req: Req,
  ctx: CallContext,
  abandon: (res: Res) => void,
): Promise<Res> {
  let promise: Promise<Res>;
  try {
    promise = inner.call(req, ctx);
  } catch (err) {
    promise = Promise.reject(err);
  }
  if (settledOnAbort(ctx)) return promise;
  return new Promise<Res>((resolve, reject) => {
    let settled = false;
    const off = ctx.onAbort(() => {
      if (settled) return;
      settled = true;
      reject(ctx.reason());
    });
    promise.then(
      (res) => {
        off();
        if (settled) {
          abandon(res);
          return;
        }
        settled = true;
        resolve(res);
      },
      (err: unknown) => {
        off();
        if (settled) return;
        settled = true;
        reject(err);
      },
    );
  });
}

/**
 * The failure of an attempt as a grpc-tower error. A DEADLINE_EXCEEDED that
 * the server returned for the attempt's own lowered deadline (it learnt it
 * through `grpc-timeout`, and its answer may arrive before the attempt's
 * timer fires) becomes the `AttemptTimeoutError` it stands for.
 *
 * @internal
 */
export function attemptError(
  raw: unknown,
  scope: AttemptScope | undefined,
  call: CallContext,
  timeoutMs: number | undefined,
): GrpcTowerError {
  const err = toGrpcTowerError(raw);
  if (
    timeoutMs !== undefined &&
    !(err instanceof AttemptTimeoutError) &&
    err.code === Status.DEADLINE_EXCEEDED &&
    !call.aborted &&
    scope?.timedOut() === true
  ) {
    return new AttemptTimeoutError(timeoutMs, { endpoint: err.endpoint, cause: err });
  }
  return err;
}
