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
  AvoidEndpoints,
  type CallContext,
  type GrpcTowerError,
  Status,
  abortReason,
  linkedScope,
  toGrpcTowerError,
  withTimeout,
} from '@grpc-tower/core';
import type { CallKind, GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';

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
 * The request of attempt number `n` (0 for the first): a clone of the
 * metadata, with `grpc-previous-rpc-attempts: n` from the second on.
 *
 * @internal
 */
export function attemptRequest(req: GrpcRequest, n: number): GrpcRequest {
  const metadata = req.metadata.clone();
  if (n > 0) metadata.set(PREVIOUS_ATTEMPTS_HEADER, String(n));
  return { ...req, metadata, attempt: n };
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

/** How early a timer may fire as seen by `Date.now()`. */
const TIMER_SLACK_MS = 10;

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
   * call's signal stays until the response is over, so that cancelling the
   * call still reaches the server.
   */
  committed(res: GrpcResponse): void;
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
export function attemptScope(
  ctx: CallContext,
  kind: CallKind | undefined,
  timeoutMs: number | undefined,
): AttemptScope {
  if (timeoutMs !== undefined && (kind === 'unary' || kind === 'clientStream')) {
    const limit = Date.now() + timeoutMs;
    const scope = withTimeout(ctx, timeoutMs, () => new AttemptTimeoutError(timeoutMs));
    return {
      context: scope.context,
      abort: (reason) => scope.controller.abort(reason),
      // grpc-js enforces the lowered deadline with its own timer, which may
      // fire a little before Date.now() reaches it: allow for that
      timedOut: () => limit < ctx.deadline && Date.now() >= limit - TIMER_SLACK_MS,
      release: () => scope.release(),
      committed: (res) => {
        void res.done.then(() => scope.release());
      },
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
    committed: (res) => {
      stopTimer();
      void res.done.then(() => scope.release());
    },
  };
}

/**
 * The scope of an attempt that has no time limit of its own and that
 * nothing but the call stops (a retry's attempts; not a hedge's, whose
 * losers are stopped one by one): it is the call's own context, so an
 * attempt costs no controller and no listener of its own. Cancelling the
 * call still reaches the attempt, before and after it commits.
 *
 * @internal
 */
export function callScope(ctx: CallContext): AttemptScope {
  return {
    context: ctx,
    abort: () => {
      throw new Error('callScope: an attempt that shares the call context cannot be stopped on its own');
    },
    timedOut: () => false,
    release: noop,
    committed: noop,
  };
}

const noop = (): void => undefined;

/**
 * Calls `inner` for one attempt and settles as soon as the attempt's signal
 * aborts, even if the inner service is slow to notice. A response that
 * arrives after that is cancelled, so nothing is left open.
 *
 * @internal
 */
export function runAttempt(call: () => Promise<GrpcResponse>, signal: AbortSignal): Promise<GrpcResponse> {
  let promise: Promise<GrpcResponse>;
  try {
    promise = call();
  } catch (err) {
    promise = Promise.reject(err);
  }
  return new Promise<GrpcResponse>((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      reject(abortReason(signal));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (res) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) {
          res.stream.cancel(Status.CANCELLED, 'attempt abandoned');
          return;
        }
        settled = true;
        resolve(res);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) return;
        settled = true;
        reject(err);
      },
    );
  });
}

/**
 * The failure of an attempt as a grpc-tower error. A DEADLINE_EXCEEDED that
 * grpc-js raised for the attempt's own lowered deadline (it may fire a hair
 * before our timer) becomes the `AttemptTimeoutError` it stands for.
 *
 * @internal
 */
export function attemptError(
  raw: unknown,
  scope: AttemptScope,
  callSignal: AbortSignal,
  timeoutMs: number | undefined,
): GrpcTowerError {
  const err = toGrpcTowerError(raw);
  if (
    timeoutMs !== undefined &&
    !(err instanceof AttemptTimeoutError) &&
    err.code === Status.DEADLINE_EXCEEDED &&
    !callSignal.aborted &&
    scope.timedOut()
  ) {
    return new AttemptTimeoutError(timeoutMs, { endpoint: err.endpoint, cause: err });
  }
  return err;
}
