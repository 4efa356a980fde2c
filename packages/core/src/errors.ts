/**
 * Named errors. Every failure grpc-tower reports is an instance of
 * {@link GrpcTowerError}: it has a gRPC status `code`, the `endpoint` address
 * when one server was involved, and the underlying `cause` when there is one,
 * so a caller can always tell what failed and where.
 *
 * @module
 */
import { type StatusCode, Status, statusName } from './status.js';

/** Options shared by the error constructors. */
export interface ErrorOptions {
  /** The address of the endpoint involved, such as `'10.0.0.7:50051'`. */
  readonly endpoint?: string | undefined;
  /** The error that caused this one. */
  readonly cause?: unknown;
  /**
   * `false` when sending the call again cannot help whatever its status
   * code, so a retry layer must not (a balancer had no endpoint that could
   * take it: the next attempt would meet the same pool).
   */
  readonly retryable?: false | undefined;
  /** What the transport knows of how far the attempt got (see {@link Delivery}). */
  readonly delivery?: Delivery | undefined;
}

/**
 * How far a failed attempt got, as the transport that ran it knows it:
 * - `not-sent`: no byte of the request left this process, for a reason of
 *   this process (the stream could not be opened, call credentials failed,
 *   the endpoint was closed);
 * - `unconnected`: no byte of the request left this process because the
 *   endpoint had no connection (it could not connect): nothing was sent,
 *   but the failure is the connection's;
 * - `refused`: the server reset the stream with REFUSED_STREAM before its
 *   application saw it;
 * - `goaway`: the server's GOAWAY named a last stream below this one, so
 *   its application never saw it;
 * - `lost`: the stream or its connection ended after the request was sent,
 *   without a gRPC status (the connection dropped, the peer reset the
 *   stream): the method may have run.
 *
 * All but `lost` are safe to send again anywhere (the server application
 * never saw the call); `lost` is not. `unconnected` and `lost` count
 * against the endpoint where a layer judges endpoints by their failures;
 * the others do not.
 *
 * @example
 * ```ts
 * if (err instanceof GrpcTowerError && err.delivery !== undefined && err.delivery !== 'lost') resend();
 * ```
 */
export type Delivery = 'not-sent' | 'unconnected' | 'refused' | 'goaway' | 'lost';

/**
 * The base class of every grpc-tower error.
 *
 * @example
 * ```ts
 * try { await svc.call(req, ctx); } catch (err) {
 *   if (err instanceof GrpcTowerError) console.log(err.code, err.endpoint);
 * }
 * ```
 */
export class GrpcTowerError extends Error {
  /** The gRPC status code that this failure maps to. */
  readonly code: StatusCode;
  /** The endpoint address involved, when one was. */
  readonly endpoint: string | undefined;
  /**
   * `false` when a retry layer must not send the call again, whatever its
   * code (see {@link ErrorOptions.retryable}); `undefined` leaves it to the
   * retry policy.
   */
  readonly retryable: false | undefined;
  /**
   * How far the attempt got, when its transport knows (see {@link Delivery});
   * `undefined` when it does not say (a status the server sent, a layer's
   * error, a status the transport made up for a reason of its own).
   */
  readonly delivery: Delivery | undefined;

  constructor(code: StatusCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.endpoint = options.endpoint;
    this.retryable = options.retryable === false ? false : undefined;
    this.delivery = options.delivery;
  }

  override get name(): string {
    return this.constructor.name;
  }

  /** The status name, such as `'UNAVAILABLE'`. */
  get codeName(): string {
    return statusName(this.code);
  }
}

/**
 * A call's deadline passed, or a timeout layer's limit was reached.
 *
 * @example
 * ```ts
 * throw new DeadlineExceededError('deadline of 200 ms passed while waiting for an endpoint');
 * ```
 */
export class DeadlineExceededError extends GrpcTowerError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(Status.DEADLINE_EXCEEDED, message, options);
  }
}

/**
 * The caller cancelled the call (its AbortSignal aborted without a reason of
 * its own, or the client cancelled the gRPC call).
 *
 * @example
 * ```ts
 * controller.abort(new CancelledError('user navigated away'));
 * ```
 */
export class CancelledError extends GrpcTowerError {
  constructor(message = 'call cancelled by the caller', options: ErrorOptions = {}) {
    super(Status.CANCELLED, message, options);
  }
}

/**
 * A service or channel was used after `close()`.
 *
 * @example
 * ```ts
 * if (this.closed) throw new ClosedError('endpoint 127.0.0.2:50051 is closed', { endpoint });
 * ```
 */
export class ClosedError extends GrpcTowerError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(Status.UNAVAILABLE, message, options);
  }
}

/**
 * A call still in flight when the grace time of a graceful close ran out
 * (`close()` of a channel, stack, balancer or dispatcher), ended by the
 * close. UNAVAILABLE, and never retried: whatever closed has stopped
 * taking calls.
 *
 * @example
 * ```ts
 * throw new GraceExpiredError('channel dns:///orders:50051', 30_000);
 * // message: "channel dns:///orders:50051 closed: the 30000 ms grace time ran out"
 * ```
 */
export class GraceExpiredError extends GrpcTowerError {
  /** The grace time that ran out, in ms. */
  readonly graceMs: number;

  /**
   * @param what - what closed, such as `'channel dns:///orders:50051'`
   * @param graceMs - its grace time, in ms
   */
  constructor(what: string, graceMs: number, options: Omit<ErrorOptions, 'retryable'> = {}) {
    super(Status.UNAVAILABLE, `${what} closed: the ${graceMs} ms grace time ran out`, {
      ...options,
      retryable: false,
    });
    this.graceMs = graceMs;
  }
}

/**
 * A load-shedding layer refused the call because the inner service was not
 * ready to take it.
 *
 * @example
 * ```ts
 * const shed = loadShed(); // throws OverloadedError instead of queueing
 * ```
 */
export class OverloadedError extends GrpcTowerError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(Status.UNAVAILABLE, message, options);
  }
}

/**
 * A limit refused the call: a full wait queue, or a rate limit.
 *
 * @example
 * ```ts
 * throw new ResourceExhaustedError('concurrency limit 64 reached and its wait queue (128) is full');
 * ```
 */
export class ResourceExhaustedError extends GrpcTowerError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(Status.RESOURCE_EXHAUSTED, message, options);
  }
}

/**
 * An endpoint could not be reached or failed below the gRPC layer
 * (connection refused, reset, GOAWAY).
 *
 * @example
 * ```ts
 * throw new UnavailableError('connection to 127.0.0.3:50051 refused', { endpoint: '127.0.0.3:50051' });
 * ```
 */
export class UnavailableError extends GrpcTowerError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(Status.UNAVAILABLE, message, options);
  }
}

/**
 * Invalid configuration or input: names the option, the value and what was
 * expected. Thrown synchronously at construction, never from inside a call.
 *
 * @example
 * ```ts
 * throw new ConfigError('timeout', 'ms', -1, 'a finite number >= 0');
 * // ConfigError: timeout: option "ms" must be a finite number >= 0, got -1
 * ```
 */
export class ConfigError extends GrpcTowerError {
  /** Where the option belongs, such as `'timeout'` or `'createChannel'`. */
  readonly where: string;
  /** The option's name (a dotted path for nested options). */
  readonly option: string;
  /** The value that was given. */
  readonly value: unknown;

  constructor(where: string, option: string, value: unknown, expected: string) {
    super(
      Status.INVALID_ARGUMENT,
      `${where}: option "${option}" must be ${expected}, got ${describeValue(value)}`,
    );
    this.where = where;
    this.option = option;
    this.value = value;
  }
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (value === null || typeof value !== 'object') return String(value);
  try {
    const json = JSON.stringify(value);
    return json.length > 80 ? `${json.slice(0, 80)}…` : json;
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * Converts anything thrown into a {@link GrpcTowerError}, keeping the
 * original as `cause`. An object with a numeric gRPC `code` (a grpc-js
 * `ServiceError`) keeps that code.
 *
 * @example
 * ```ts
 * const e = toGrpcTowerError(new Error('boom')); // code UNKNOWN, cause: the Error
 * ```
 */
export function toGrpcTowerError(err: unknown, endpoint?: string): GrpcTowerError {
  if (err instanceof GrpcTowerError) return err;
  const code =
    typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number'
      ? ((err as { code: number }).code as StatusCode)
      : Status.UNKNOWN;
  const message = err instanceof Error ? err.message : String(err);
  return new GrpcTowerError(code >= 0 && code <= 16 ? code : Status.UNKNOWN, message, {
    endpoint,
    cause: err,
  });
}
