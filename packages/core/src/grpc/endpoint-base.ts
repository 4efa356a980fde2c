/**
 * What the two gRPC endpoints share (`GrpcEndpoint` over a grpc-js
 * channel, `NativeGrpcEndpoint` over an `Http2Connection`): the checked
 * address and discovery metadata, the readiness they publish, the calls in
 * flight, and `close()`, which stops new calls, waits for those in flight
 * (at most the grace period, then cancels them) and then lets the
 * transport release its connection.
 *
 * @module
 */
import { BehaviorSubject, type Observable, distinctUntilChanged } from 'rxjs';
import type { CallContext } from '../context.js';
import type { Endpoint, Readiness } from '../endpoint.js';
import { ClosedError, GrpcTowerError } from '../errors.js';
import { Status, type StatusCode } from '../status.js';
import type { GrpcRequest, GrpcResponse } from './types.js';

/** What the endpoint's options said, once checked (see `checkEndpointOptions`). */
interface CheckedFacts {
  readonly address: string;
  readonly weight: number | undefined;
  readonly zone: string | undefined;
  readonly forZones: readonly string[] | undefined;
  readonly priority: number | undefined;
  readonly group: string | undefined;
  readonly groupWeight: number | undefined;
  readonly secure: boolean;
  readonly graceMs: number;
}

/** One call in flight, as the endpoint cancels it when its grace period ends. */
interface Cancellable {
  cancel(code: StatusCode, details: string): void;
}

/**
 * The base of both gRPC endpoint classes (see the module documentation):
 * use `grpcEndpoint` to make one.
 *
 * @example
 * ```ts
 * const endpoint: GrpcEndpointBase = grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() });
 * console.log(endpoint.address, endpoint.secure, endpoint.readiness, endpoint.pending);
 * ```
 */
export abstract class GrpcEndpointBase<A extends Cancellable = Cancellable>
  implements Endpoint<GrpcRequest, GrpcResponse>
{
  readonly address: string;
  /** Its weight (see `GrpcEndpointOptions.weight`), or `undefined`. */
  readonly weight: number | undefined;
  /** Its zone (see `GrpcEndpointOptions.zone`), or `undefined`. */
  readonly zone: string | undefined;
  /** Its topology hints (see `GrpcEndpointOptions.forZones`), or `undefined`. */
  readonly forZones: readonly string[] | undefined;
  /** Its priority (see `GrpcEndpointOptions.priority`), or `undefined`. */
  readonly priority: number | undefined;
  /** Its group (see `GrpcEndpointOptions.group`), or `undefined`. */
  readonly group: string | undefined;
  /** Its group's weight (see `GrpcEndpointOptions.groupWeight`), or `undefined`. */
  readonly groupWeight: number | undefined;
  /** Whether the connection uses TLS. */
  readonly secure: boolean;
  /** Emits the current readiness on subscribe, then each change; completes on close. */
  readonly readiness$: Observable<Readiness>;
  /** @internal The calls in flight: added by `call`, removed by {@link GrpcEndpointBase.finished}. */
  protected readonly attempts = new Set<A>();
  /** @internal Whether `close()` was called: new calls are refused. */
  protected closing = false;
  readonly #readiness: BehaviorSubject<Readiness>;
  readonly #graceMs: number;
  #closed: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  /** @internal */
  constructor(checked: CheckedFacts, readiness: Readiness) {
    ({ address: this.address, weight: this.weight, zone: this.zone, forZones: this.forZones } = checked);
    ({ priority: this.priority, group: this.group, groupWeight: this.groupWeight } = checked);
    ({ secure: this.secure, graceMs: this.#graceMs } = checked);
    this.#readiness = new BehaviorSubject<Readiness>(readiness);
    this.readiness$ = this.#readiness.pipe(distinctUntilChanged());
  }

  get readiness(): Readiness {
    return this.#readiness.value;
  }

  /** Calls started and not yet settled. */
  get pending(): number {
    return this.attempts.size;
  }

  abstract call(req: GrpcRequest, ctx: CallContext): Promise<GrpcResponse>;

  /**
   * Stops taking new calls, waits for the calls in flight (at most
   * `graceMs`, by default the `closeGraceMs` option, then cancels them with
   * UNAVAILABLE), closes the connection and completes `readiness$`.
   */
  close(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.closing = true;
    const graceMs = options.graceMs ?? this.#graceMs;
    this.#closed = (async () => {
      const before = this.beforeDrain();
      if (before !== undefined) await before;
      if (this.attempts.size > 0) await this.#drain(graceMs);
      this.#drained = undefined;
      this.release();
      if (!this.#readiness.closed) {
        if (this.#readiness.value !== 'closed') this.#readiness.next('closed');
        this.#readiness.complete();
      }
    })();
    return this.#closed;
  }

  /**
   * @internal Publishes `readiness` unless the endpoint has closed
   * (`closed` is the last value).
   */
  protected setReadiness(readiness: Readiness): void {
    const subject = this.#readiness;
    if (!subject.closed && subject.value !== 'closed' && subject.value !== readiness) subject.next(readiness);
  }

  /**
   * @internal Why `call` refuses `req` before it starts: the endpoint is
   * closing, the caller has gone, or call credentials would go over
   * plaintext (a refusal of this call, never re-sent elsewhere);
   * `undefined` when it may start.
   */
  protected refusal(req: GrpcRequest, ctx: CallContext): Error | undefined {
    if (this.closing) {
      return new ClosedError(`endpoint ${this.address} is closed or draining`, { endpoint: this.address });
    }
    if (ctx.aborted) return ctx.reason();
    if (req.credentials !== undefined && !this.secure) {
      return new GrpcTowerError(
        Status.UNAUTHENTICATED,
        `call credentials refused: endpoint ${this.address} is not secure (use TLS credentials)`,
        { endpoint: this.address },
      );
    }
    return undefined;
  }

  /** @internal A call settled its status: it no longer holds up `close()`. */
  finished(attempt: A): void {
    this.attempts.delete(attempt);
    if (this.attempts.size === 0) this.#drained?.();
  }

  /** @internal What `close()` waits for before it waits for the calls in flight; nothing by default. */
  protected beforeDrain(): Promise<void> | undefined {
    return undefined;
  }

  /** @internal Releases the connection, once no call is in flight (or their grace period ended). */
  protected abstract release(): void;

  /** Waits for the calls in flight, at most `graceMs`, then cancels them. */
  #drain(graceMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        for (const a of [...this.attempts]) {
          a.cancel(Status.UNAVAILABLE, `endpoint ${this.address} closed after a ${graceMs} ms grace period`);
        }
        resolve();
      }, graceMs);
      this.#drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
