/**
 * `createChannel` turns a grpc-tower stack into a grpc-js
 * `ChannelInterface`, so any grpc-js client (proto-loader, ts-proto,
 * grpc-tools) sends its calls through the stack via the `channelOverride`
 * client option. Each call becomes a {@link GrpcRequest}; the stack's
 * {@link GrpcResponse} is replayed to the client.
 *
 * The channel reports the stack's readiness as its connectivity state and
 * closes the stack with itself: build the stack with
 * `ServiceBuilder.service()`, which carries the readiness and `close()` of
 * the innermost service (the balancer) past every layer.
 *
 * Each call has one deadline authority, its {@link CallControl}: one timer
 * for the call's deadline (grpc-tower runs its own because the call may wait
 * for an endpoint before any grpc-js call exists to enforce it), which a
 * timeout layer lowers through the call's context instead of arming a timer
 * of its own. When it fires, the call ends DEADLINE_EXCEEDED at once, with a
 * message that says what the call was waiting for. The call's AbortSignal is
 * created only if a layer asks for it.
 *
 * A unary or client-streaming response comes back from the stack complete
 * (`GrpcResponse.unary`) and is handed to the client as it is.
 *
 * `close()` is graceful, as grpc-js's is: it returns at once, new calls
 * fail at once (UNAVAILABLE, "channel … is closing"), and the calls
 * already started go on, through the stack that stays open for them
 * (retries, calls waiting for an endpoint, streams), until the last one
 * ends or the grace time runs out; then the stack closes. The channel
 * counts its calls anyway (`activeCalls`), so this costs a call nothing.
 *
 * @module
 */
import type { Subscription } from 'rxjs';
import type { CallContext } from '../context/index.js';
import type { Readiness } from '../endpoint.js';
import { ConfigError, GraceExpiredError, GrpcTowerError } from '../errors.js';
import type { Service } from '../service.js';
import { DEFAULT_CLOSE_GRACE_MS, Grace, graceOf } from '../internal/grace.js';
import { type CloseOptions, type Lifecycle, hasLifecycle, untrackedCall } from '../stack.js';
import { Status } from '../status.js';
import {
  type Call,
  type ChannelInterface,
  ConnectivityState,
  type Deadline,
  Propagate,
  type ServerSurfaceCall,
  type ServiceDefinition,
} from './grpc-js.js';
import { TowerCall } from './call.js';
import { ReplayBudget, RequestMessages } from './messages.js';
import type { CallKind, GrpcRequest, GrpcResponse } from './types.js';

/** Something whose readiness the channel reports as its connectivity state. */
type ReadinessSource = Pick<Lifecycle, 'readiness' | 'readiness$'>;

/** Options of {@link createChannel}. */
export interface CreateChannelOptions {
  /** The logical target, reported by `getTarget()` and named in errors, such as `'dns:orders:50051'`. */
  readonly target: string;
  /**
   * Service definitions of the methods this channel carries (from
   * proto-loader or generated code). With them, each call knows its shape,
   * so unary and client-streaming responses are held until their status and
   * remain retryable; without them the channel commits conservatively.
   */
  readonly services?: readonly ServiceDefinition[];
  /** Request replay limits (gRPC A6): per call 1 MiB, per channel 16 MiB by default. */
  readonly replay?: { readonly perCallBytes?: number; readonly perChannelBytes?: number };
  /**
   * How long the calls in flight may go on after `close()`, in ms, before
   * those left end with `GraceExpiredError` (UNAVAILABLE); default 30 000
   * (Kubernetes' default termination grace). `close({ graceMs })`
   * overrides it for one close.
   */
  readonly closeGraceMs?: number;
}

let channelNumber = 0;

/**
 * Creates a grpc-js `ChannelInterface` over `stack`. Its connectivity
 * state is the stack's readiness (`ready` → READY, `connecting` →
 * CONNECTING, `failed` → TRANSIENT_FAILURE, `closed` → SHUTDOWN); a stack
 * without readiness is always READY. `close()` refuses new calls at once,
 * lets the calls in flight finish within the grace time (`closeGraceMs`),
 * then closes the stack, which closes everything it holds. A client over it
 * ignores its own channel credentials (grpc-js does with `channelOverride`):
 * the calls use those of the endpoints (`grpcEndpoint`'s `credentials`).
 *
 * @example
 * ```ts
 * const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>().layer(timeout({ ms: 2_000 })).service(balancer);
 * const channel = createChannel(stack, { target: 'dns:orders.internal:50051' });
 * const client = new EchoClient('orders.internal:50051', grpc.credentials.createInsecure(), {
 *   channelOverride: channel,
 * });
 * ```
 */
export function createChannel(
  stack: Service<GrpcRequest, GrpcResponse>,
  options: CreateChannelOptions,
): TowerChannel {
  return new TowerChannel(stack, options);
}

const hasReadiness = (x: unknown): x is ReadinessSource =>
  typeof x === 'object' &&
  x !== null &&
  'readiness' in x &&
  typeof (x as { readiness$?: { subscribe?: unknown } }).readiness$?.subscribe === 'function';

const isServiceDefinition = (def: unknown): def is ServiceDefinition =>
  typeof def === 'object' &&
  def !== null &&
  Object.values(def).every(
    (m: unknown) => typeof m === 'object' && m !== null && typeof (m as { path?: unknown }).path === 'string',
  );

const stateOf = (r: Readiness): ConnectivityState => {
  switch (r) {
    case 'ready':
      return ConnectivityState.READY;
    case 'connecting':
      return ConnectivityState.CONNECTING;
    case 'failed':
      return ConnectivityState.TRANSIENT_FAILURE;
    case 'closed':
      return ConnectivityState.SHUTDOWN;
  }
};

/**
 * The `ChannelInterface` returned by {@link createChannel}.
 *
 * @example
 * ```ts
 * const ch: TowerChannel = createChannel(stack, { target: 'orders' });
 * ch.close();
 * ```
 */
export class TowerChannel implements ChannelInterface {
  readonly #call: (req: GrpcRequest, ctx: CallContext) => Promise<GrpcResponse>;
  readonly #target: string;
  readonly #kinds = new Map<string, CallKind>();
  readonly #readiness: ReadinessSource | undefined;
  readonly #lifecycle: Lifecycle | undefined;
  readonly #perCallBytes: number;
  readonly #budget: ReplayBudget;
  readonly #calls = new Set<TowerCall>();
  readonly #watchers = new Set<() => void>();
  readonly #id = ++channelNumber;
  readonly #graceMs: number;
  /** Why a new call is refused: `undefined` while open, then "… is closing", then "… is closed". */
  #refusal: string | undefined;
  #grace: Grace | undefined;
  #closing: Promise<void> | undefined;

  constructor(stack: Service<GrpcRequest, GrpcResponse>, options: CreateChannelOptions) {
    if (typeof options?.target !== 'string' || options.target.length === 0) {
      throw new ConfigError('createChannel', 'target', options?.target, 'a non-empty string');
    }
    if (typeof stack !== 'object' || stack === null || typeof stack.call !== 'function') {
      throw new ConfigError('createChannel', 'stack', stack, 'a Service (an object with a call method)');
    }
    for (const removed of ['readiness', 'owns'] as const) {
      if ((options as unknown as Record<string, unknown>)[removed] !== undefined) {
        throw new ConfigError(
          'createChannel',
          removed,
          (options as unknown as Record<string, unknown>)[removed],
          'no such option: the channel reports the readiness of the stack and closes it; build the stack ' +
            "with ServiceBuilder.service(balancer) so that it carries the balancer's readiness and close()",
        );
      }
    }
    const services: unknown = options.services ?? [];
    if (!Array.isArray(services) || !services.every(isServiceDefinition)) {
      throw new ConfigError('createChannel', 'services', services, 'an array of service definitions');
    }
    // the channel counts its calls itself: the stack need not count them again
    this.#call = untrackedCall(stack);
    this.#target = options.target;
    this.#graceMs = graceOf('createChannel', 'closeGraceMs', options.closeGraceMs, DEFAULT_CLOSE_GRACE_MS);
    this.#lifecycle = hasLifecycle(stack) ? stack : undefined;
    this.#readiness = this.#lifecycle ?? (hasReadiness(stack) ? stack : undefined);
    const perCall = options.replay?.perCallBytes ?? 1024 * 1024;
    if (!Number.isFinite(perCall) || perCall < 0) {
      throw new ConfigError('createChannel', 'replay.perCallBytes', perCall, 'a finite number >= 0');
    }
    this.#perCallBytes = perCall;
    this.#budget = new ReplayBudget(options.replay?.perChannelBytes ?? 16 * 1024 * 1024);
    for (const def of services as readonly ServiceDefinition[]) {
      for (const method of Object.values(def)) {
        const kind: CallKind = method.requestStream
          ? method.responseStream
            ? 'bidi'
            : 'clientStream'
          : method.responseStream
            ? 'serverStream'
            : 'unary';
        this.#kinds.set(method.path, kind);
      }
    }
  }

  /** Calls started and not finished. */
  get activeCalls(): number {
    return this.#calls.size;
  }

  /** Bytes of request messages currently held for replay by all calls. */
  get replayBytes(): number {
    return this.#budget.used;
  }

  getTarget(): string {
    return this.#target;
  }

  getConnectivityState(_tryToConnect: boolean): ConnectivityState {
    if (this.#refusal !== undefined) return ConnectivityState.SHUTDOWN;
    return this.#readiness === undefined ? ConnectivityState.READY : stateOf(this.#readiness.readiness);
  }

  watchConnectivityState(
    currentState: ConnectivityState,
    deadline: Date | number,
    callback: (error?: Error) => void,
  ): void {
    let sub: Subscription | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      sub?.unsubscribe();
      this.#watchers.delete(onClose);
      // grpc-js calls watchers asynchronously; so do we.
      process.nextTick(() => callback(err));
    };
    const onClose = (): void => finish();
    if (this.getConnectivityState(false) !== currentState) {
      finish();
      return;
    }
    this.#watchers.add(onClose);
    const ms = (deadline instanceof Date ? deadline.getTime() : deadline) - Date.now();
    if (Number.isFinite(ms)) {
      timer = setTimeout(
        () => finish(new Error('Deadline passed without connectivity state change')),
        Math.max(0, ms),
      );
    }
    sub = this.#readiness?.readiness$.subscribe(() => {
      if (this.getConnectivityState(false) !== currentState) finish();
    });
    if (done) sub?.unsubscribe();
  }

  getChannelzRef(): ReturnType<ChannelInterface['getChannelzRef']> {
    // channelz is not tracked for this channel; the reference only names it.
    return { kind: 'channel', id: this.#id, name: this.#target } as unknown as ReturnType<
      ChannelInterface['getChannelzRef']
    >;
  }

  createCall(
    method: string,
    deadline: Deadline,
    host: string | null | undefined,
    parentCall: ServerSurfaceCall | null,
    propagateFlags: number | null | undefined,
  ): Call {
    let ms = deadline instanceof Date ? deadline.getTime() : deadline;
    const flags = propagateFlags ?? Propagate.DEFAULTS;
    if (parentCall && flags & Propagate.DEADLINE) {
      const parent = parentCall.getDeadline();
      const parentMs = parent instanceof Date ? parent.getTime() : parent;
      ms = Math.min(ms, parentMs);
    }
    const call = new TowerCall({
      channel: this,
      call: this.#call,
      method,
      kind: this.#kinds.get(method),
      deadline: Number.isNaN(ms) ? Number.POSITIVE_INFINITY : ms,
      host: host ?? undefined,
      target: this.#target,
      messages: new RequestMessages({ perCallBytes: this.#perCallBytes, budget: this.#budget }),
      refusal: this.#refusal,
    });
    if (parentCall && flags & Propagate.CANCELLATION) {
      call.followParent(parentCall);
    }
    return call;
  }

  /** @internal */
  track(call: TowerCall, active: boolean): void {
    if (active) this.#calls.add(call);
    else {
      this.#calls.delete(call);
      if (this.#calls.size === 0) this.#grace?.ended();
    }
  }

  /**
   * Closes gracefully and returns at once, as grpc-js's `close()` does:
   * from now on new calls fail at once (UNAVAILABLE, "channel … is
   * closing") and the connectivity state is SHUTDOWN; the calls already
   * started go on (streams, calls waiting for an endpoint, retries waiting
   * out their backoff) until the last one ends or the grace time
   * (`graceMs`, default the channel's `closeGraceMs`, 30 s) runs out, when
   * those left end UNAVAILABLE with `GraceExpiredError`'s message ("channel
   * … closed: the 30000 ms grace time ran out"). Then the stack closes (and
   * so everything it holds: the balancer, its discovery subscription,
   * endpoints, health watches). No timer of the close outlives the last
   * call, so a process whose only work was those calls exits when they end.
   * A second call may shorten the grace (`close({ graceMs: 0 })` ends the
   * calls left at once), never lengthen it. {@link closeGracefully} does the
   * same and resolves when everything is released.
   *
   * Throws `ConfigError` for a `graceMs` that is not a finite number from 0
   * to 2^31 - 1.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => client.close()); // grpc-js's Client.close() calls channel.close()
   * channel.close({ graceMs: 0 }); // or: end every call now
   * ```
   */
  close(options?: CloseOptions): void {
    graceOf('TowerChannel.close', 'graceMs', options?.graceMs, this.#graceMs);
    this.closeGracefully(options).catch((err: unknown) => {
      process.emitWarning(err instanceof Error ? err : String(err), { code: 'GRPC_TOWER_CLOSE' });
    });
  }

  /**
   * Like {@link close}, and resolves when everything is released: the
   * calls have ended (or were ended when the grace ran out), the stack has
   * closed, its sockets and timers are gone. Rejects with `ConfigError` for
   * a bad `graceMs`, and with an INTERNAL error when the stack's `close()`
   * rejects (`close()` reports that on the process's `warning` event
   * instead).
   *
   * @example
   * ```ts
   * process.once('SIGTERM', async () => {
   *   await channel.closeGracefully({ graceMs: 20_000 });
   *   await server.tryShutdown?.(); // then the rest of the process
   * });
   * ```
   */
  closeGracefully(options?: CloseOptions): Promise<void> {
    let graceMs: number;
    try {
      graceMs = graceOf('TowerChannel.close', 'graceMs', options?.graceMs, this.#graceMs);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#closing === undefined) this.#closing = this.#close(graceMs);
    else if (this.#grace !== undefined) void this.#grace.wait(graceMs);
    return this.#closing;
  }

  /**
   * The same as {@link closeGracefully} (its earlier name).
   *
   * @example
   * ```ts
   * await channel.closeAsync();
   * ```
   */
  closeAsync(options?: CloseOptions): Promise<void> {
    return this.closeGracefully(options);
  }

  async #close(graceMs: number): Promise<void> {
    this.#refusal = `channel ${this.#target} is closing`;
    for (const w of [...this.#watchers]) w();
    let left = graceMs;
    if (this.#calls.size > 0) {
      const grace = new Grace();
      this.#grace = grace;
      if (!(await grace.wait(graceMs))) {
        const what = `channel ${this.#target}`;
        for (const call of [...this.#calls]) call.endWith(new GraceExpiredError(what, grace.graceMs));
      }
      left = grace.remainingMs();
      this.#grace = undefined;
    }
    try {
      // every call has ended: what the endpoints may still hold drains for the rest of the grace
      await this.#lifecycle?.close({ graceMs: left });
    } catch (err) {
      throw new GrpcTowerError(Status.INTERNAL, `channel ${this.#target}: the stack failed to close`, {
        cause: err,
      });
    } finally {
      this.#refusal = `channel ${this.#target} is closed`;
    }
  }
}
