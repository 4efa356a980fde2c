/**
 * The named errors of the retry, budget and hedging layers.
 *
 * @module
 */
import { ConfigError, GrpcTowerError, Status } from '@grpc-tower/core';
import { GrpcStatusError } from '@grpc-tower/core/grpc';
import { Metadata } from '@grpc/grpc-js';

/**
 * A retry, hedging, budget or throttling policy was given a bad value. It is
 * a `ConfigError`: `where` names the layer (`'retry'`, `'hedge'`,
 * `'retryBudget'`, `'retryThrottling'`), `option` the field (a dotted path
 * for overrides, such as `overrides["pkg.Echo/Unary"].maxAttempts`) and
 * `value` what was given. Thrown synchronously when the policy is built.
 *
 * @example
 * ```ts
 * try { retry({ maxAttempts: 0 }); } catch (err) {
 *   if (err instanceof RetryPolicyError) console.log(err.option); // 'maxAttempts'
 * }
 * ```
 */
export class RetryPolicyError extends ConfigError {}

/** The trailer that carries a budget's verdict on a call that ended with its last attempt's status. */
export const RETRY_VERDICT_METADATA_KEY = 'grpc-tower-retry';

/**
 * A retry (or hedge) was refused because the retry budget or the retry
 * throttle was empty, so the call ends with the failure of its last
 * attempt. It is a {@link GrpcStatusError} that keeps that failure's status
 * whole: its code, the server's own details, its trailing metadata (status
 * details included) and its endpoint, so the caller sees what the server
 * said. The budget's verdict is added, never put in their place: as the
 * `grpc-tower-retry` trailer (`budget exhausted after N attempts`), in the
 * error's message, and the failure itself is the `cause`.
 *
 * @example
 * ```ts
 * if (err instanceof RetryBudgetExhaustedError) {
 *   console.log(err.code, err.details, err.metadata.get('grpc-tower-retry'), err.attempts, err.cause);
 * }
 * ```
 */
export class RetryBudgetExhaustedError extends GrpcStatusError {
  /** How many attempts the call made before the budget refused another one. */
  readonly attempts: number;

  constructor(original: unknown, attempts: number) {
    const verdict = `budget exhausted after ${attempts} attempt${attempts === 1 ? '' : 's'}`;
    const server = original instanceof GrpcStatusError ? original : undefined;
    const base = original instanceof GrpcTowerError ? original : undefined;
    const text = original instanceof Error ? original.message : String(original);
    const metadata = server === undefined ? new Metadata() : server.metadata.clone();
    metadata.set(RETRY_VERDICT_METADATA_KEY, verdict);
    super(
      { code: base?.code ?? Status.UNKNOWN, details: server?.details ?? text, metadata },
      {
        endpoint: base?.endpoint,
        cause: original,
        serverResponded: server?.serverResponded ?? false,
      },
    );
    this.message = `retry ${verdict}; last error: ${text}`;
    this.attempts = attempts;
  }
}

/**
 * Whether `err` shows that the attempt never reached a server application
 * (core's rule, which every protocol's `neverReachedServer` applies: a
 * `ClosedError`, or the transport's `delivery` other than `lost`).
 */
export { neverReachedServer } from '@grpc-tower/core';
