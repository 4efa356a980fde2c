/**
 * An {@link Endpoint} for one gRPC server address, backed by its own grpc-js
 * `Channel` with a private subchannel pool (`pick_first` inside), so every
 * endpoint owns exactly one connection and reports its own readiness.
 *
 * Commit point (gRPC A6): an attempt resolves when the call can no longer
 * move to another endpoint. Unary and client-streaming calls resolve at
 * their status (the response is held until then); streaming responses
 * resolve at their headers. When the shape of the method is unknown, the
 * attempt commits at the headers while the request stream is still open,
 * and otherwise at the first response message or the status.
 *
 * grpc-tower does the retries (gRPC A6, and the transparent retry of a call
 * that never reached a server), so each endpoint's grpc-js channel runs with
 * its own retries off (`grpc.enable_retries: 0`) and keeps no retry buffer
 * (`grpc.per_rpc_retry_buffer_size: 0`): the request messages are held once,
 * by the call's replay buffer.
 *
 * @module
 */
import {
  type Call,
  type ChannelCredentials,
  type ChannelOptions,
  Channel,
  ConnectivityState,
  credentials as grpcCredentials,
  Metadata,
  type StatusObject,
} from './grpc-js.js';
import { BehaviorSubject, type Observable, distinctUntilChanged } from 'rxjs';
import { type CallContext, abortReason } from '../context.js';
import type { Endpoint, Readiness } from '../endpoint.js';
import { ClosedError, ConfigError, GrpcTowerError } from '../errors.js';
import { Status, type StatusCode } from '../status.js';
import { formatAddress, grpcTarget, parseAddress } from './address.js';
import type { MessageReader } from './messages.js';
import {
  type CallKind,
  GrpcStatusError,
  type GrpcRequest,
  type GrpcResponse,
  type ResponseListener,
  type ResponseStream,
} from './types.js';

/** Options of {@link grpcEndpoint}. */
export interface GrpcEndpointOptions {
  /** Channel credentials; default insecure. */
  readonly credentials?: ChannelCredentials;
  /**
   * The logical host name of the service. Used as `:authority` and, with
   * TLS, as the name the server certificate must match (SNI), which is what
   * an endpoint discovered as an IP address needs.
   */
  readonly authority?: string;
  /** Extra grpc-js channel options (message size limits, keepalive…). */
  readonly channelOptions?: ChannelOptions;
  /** How long `close()` waits for calls in flight before cancelling them; default 30 s. */
  readonly closeGraceMs?: number;
}

/** The grpc-js channel options every endpoint sets (see the module documentation). */
const baseChannelOptions: ChannelOptions = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.enable_retries': 0,
  'grpc.per_rpc_retry_buffer_size': 0,
};

const readinessOf = (state: ConnectivityState): Readiness => {
  switch (state) {
    case ConnectivityState.READY:
      return 'ready';
    case ConnectivityState.TRANSIENT_FAILURE:
      return 'failed';
    case ConnectivityState.SHUTDOWN:
      return 'closed';
    default:
      return 'connecting';
  }
};

/** The longest delay `setTimeout` honours. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * grpc-js uses channel option values as it finds them, and a value of the
 * wrong kind (a symbol, a bigint, NaN, a string where it computes a delay)
 * makes it throw later, from a timer. Refused here instead: every value is a
 * string or a finite number, and an `…_ms` option is a number of ms from -1
 * (grpc-js's "off") to 2147483647.
 */
function checkChannelOptions(channelOptions: unknown): void {
  if (channelOptions === undefined) return;
  if (typeof channelOptions !== 'object' || channelOptions === null) {
    throw new ConfigError(
      'grpcEndpoint',
      'channelOptions',
      channelOptions,
      'an object of grpc-js channel options',
    );
  }
  for (const [key, value] of Object.entries(channelOptions)) {
    const ok = key.endsWith('_ms')
      ? typeof value === 'number' && Number.isInteger(value) && value >= -1 && value <= MAX_TIMER_MS
      : typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
    if (!ok) {
      const expected = key.endsWith('_ms')
        ? 'an integer number of ms from -1 to 2147483647'
        : 'a string or a finite number';
      throw new ConfigError('grpcEndpoint', `channelOptions.${key}`, value, expected);
    }
  }
}

/**
 * Creates an endpoint for `address` (`host:port`, IPv6 as `[::1]:50051`).
 * It starts connecting at once and reconnects with grpc-js's backoff.
 *
 * @example
 * ```ts
 * const ep = grpcEndpoint('10.0.0.7:50051', {
 *   credentials: grpc.credentials.createSsl(ca),
 *   authority: 'orders.internal',
 * });
 * ```
 */
export function grpcEndpoint(address: string, options: GrpcEndpointOptions = {}): GrpcEndpoint {
  return new GrpcEndpoint(address, options);
}

/**
 * The endpoint class behind {@link grpcEndpoint}.
 *
 * @example
 * ```ts
 * const ep = new GrpcEndpoint('127.0.0.2:50051');
 * ```
 */
export class GrpcEndpoint implements Endpoint<GrpcRequest, GrpcResponse> {
  readonly address: string;
  readonly #channel: Channel;
  readonly #secure: boolean;
  readonly #graceMs: number;
  readonly #readiness: BehaviorSubject<Readiness>;
  readonly #attempts = new Set<Attempt>();
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  constructor(address: string, options: GrpcEndpointOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('grpcEndpoint', 'options', options, 'an object');
    }
    const hp = parseAddress(address, 'grpcEndpoint');
    this.address = formatAddress(hp.host, hp.port);
    const graceMs = options.closeGraceMs ?? 30_000;
    if (!Number.isFinite(graceMs) || graceMs < 0) {
      throw new ConfigError('grpcEndpoint', 'closeGraceMs', graceMs, 'a finite number >= 0');
    }
    this.#graceMs = graceMs;
    const creds = options.credentials ?? grpcCredentials.createInsecure();
    if (typeof (creds as { _isSecure?: unknown } | null)?._isSecure !== 'function') {
      throw new ConfigError('grpcEndpoint', 'credentials', creds, 'grpc-js ChannelCredentials');
    }
    this.#secure = creds._isSecure();
    checkChannelOptions(options.channelOptions);
    const channelOptions: ChannelOptions = { ...baseChannelOptions, ...options.channelOptions };
    if (options.authority !== undefined) {
      if (typeof options.authority !== 'string' || options.authority.length === 0) {
        throw new ConfigError('grpcEndpoint', 'authority', options.authority, 'a non-empty host name');
      }
      channelOptions['grpc.default_authority'] = options.authority;
      if (this.#secure) channelOptions['grpc.ssl_target_name_override'] = options.authority;
    }
    try {
      this.#channel = new Channel(grpcTarget(hp), creds, channelOptions);
    } catch (err) {
      // grpc-js checks some options itself (a service config that does not parse, say)
      const reason = err instanceof Error ? err.message : String(err);
      throw new ConfigError(
        'grpcEndpoint',
        'channelOptions',
        options.channelOptions,
        `options grpc-js accepts (${reason})`,
      );
    }
    this.#readiness = new BehaviorSubject<Readiness>('connecting');
    this.readiness$ = this.#readiness.pipe(distinctUntilChanged());
    this.#watch();
  }

  /** Emits the current readiness on subscribe, then each change; completes on close. */
  readonly readiness$: Observable<Readiness>;

  get readiness(): Readiness {
    return this.#readiness.value;
  }

  get pending(): number {
    return this.#attempts.size;
  }

  /** Whether the channel uses TLS. */
  get secure(): boolean {
    return this.#secure;
  }

  #watch(): void {
    // Only ask a live channel to connect: grpc-js (1.14) restarts the
    // resolver of a closed channel on getConnectivityState(true), and the
    // connection that opens is never closed.
    const current = this.#channel.getConnectivityState(false);
    const state = current === ConnectivityState.SHUTDOWN ? current : this.#channel.getConnectivityState(true);
    const readiness = readinessOf(state);
    if (this.#readiness.value !== readiness && !this.#readiness.closed) this.#readiness.next(readiness);
    if (state === ConnectivityState.SHUTDOWN) return;
    // IDLE (after a lost connection or an idle timeout) was kicked back to
    // CONNECTING by getConnectivityState(true) above; watch the next change.
    this.#channel.watchConnectivityState(state, Number.POSITIVE_INFINITY, () => this.#watch());
  }

  call(req: GrpcRequest, ctx: CallContext): Promise<GrpcResponse> {
    if (this.#closing !== undefined) {
      return Promise.reject(
        new ClosedError(`endpoint ${this.address} is closed or draining`, { endpoint: this.address }),
      );
    }
    if (ctx.signal.aborted) return Promise.reject(abortReason(ctx.signal));
    if (req.credentials !== undefined && !this.#secure) {
      return Promise.reject(
        new GrpcTowerError(
          Status.UNAUTHENTICATED,
          `call credentials refused: endpoint ${this.address} is not secure (use TLS credentials)`,
          { endpoint: this.address },
        ),
      );
    }
    return new Promise<GrpcResponse>((resolve, reject) => {
      const attempt = new Attempt(this.address, req, ctx, resolve, reject, (a) => this.#finished(a));
      this.#attempts.add(attempt);
      attempt.begin(this.#channel);
    });
  }

  #finished(attempt: Attempt): void {
    this.#attempts.delete(attempt);
    if (this.#attempts.size === 0) this.#drained?.();
  }

  close(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    const graceMs = options.graceMs ?? this.#graceMs;
    this.#closing = (async () => {
      // grpc-js (1.14) resolves an IP target on a later tick and delivers
      // that result even to a channel closed in between; the connection it
      // then opens is never closed. An endpoint created and closed in the
      // same tick (discovery flapping) would leak one connection each, so
      // close only after that tick has run.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.#attempts.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            for (const a of [...this.#attempts]) {
              a.cancel(
                Status.UNAVAILABLE,
                `endpoint ${this.address} closed after a ${graceMs} ms grace period`,
              );
            }
            resolve();
          }, graceMs);
          this.#drained = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      this.#drained = undefined;
      this.#channel.close();
      if (!this.#readiness.closed) {
        if (this.#readiness.value !== 'closed') this.#readiness.next('closed');
        this.#readiness.complete();
      }
    })();
    return this.#closing;
  }
}

type CommitAt = 'status' | 'headers' | 'auto';

const commitPoint = (kind: CallKind | undefined): CommitAt => {
  if (kind === 'unary' || kind === 'clientStream') return 'status';
  if (kind === 'serverStream' || kind === 'bidi') return 'headers';
  return 'auto';
};

/** One call on one endpoint. */
class Attempt implements ResponseStream {
  readonly #address: string;
  readonly #req: GrpcRequest;
  readonly #ctx: CallContext;
  readonly #resolve: (res: GrpcResponse) => void;
  readonly #reject: (err: unknown) => void;
  readonly #onFinished: (a: Attempt) => void;
  readonly #commitAt: CommitAt;
  #inner: Call | undefined;
  #reader: MessageReader | undefined;
  #headers: Metadata | undefined;
  readonly #queue: Buffer[] = [];
  #committed = false;
  #settled = false;
  #status: StatusObject | undefined;
  #statusDelivered = false;
  #consumer: ResponseListener | undefined;
  #consumerReads = 0;
  #innerReadOutstanding = false;
  #writing = false;
  #halfClosed = false;
  #resolveDone!: (s: StatusObject) => void;
  readonly #done: Promise<StatusObject>;

  constructor(
    address: string,
    req: GrpcRequest,
    ctx: CallContext,
    resolve: (res: GrpcResponse) => void,
    reject: (err: unknown) => void,
    onFinished: (a: Attempt) => void,
  ) {
    this.#address = address;
    this.#req = req;
    this.#ctx = ctx;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#onFinished = onFinished;
    this.#commitAt = commitPoint(req.kind);
    this.#done = new Promise((r) => {
      this.#resolveDone = r;
    });
  }

  begin(channel: Channel): void {
    let reader: MessageReader;
    try {
      reader = this.#req.messages.reader();
    } catch (err) {
      this.#fail(
        new ClosedError('request messages can no longer be replayed', {
          endpoint: this.#address,
          cause: err,
        }),
      );
      return;
    }
    this.#reader = reader;
    const deadline = Number.isFinite(this.#ctx.deadline)
      ? new Date(this.#ctx.deadline)
      : Number.POSITIVE_INFINITY;
    const inner = channel.createCall(this.#req.method, deadline, this.#req.host, null, 0);
    this.#inner = inner;
    if (this.#req.credentials !== undefined) inner.setCredentials(this.#req.credentials);
    this.#ctx.signal.addEventListener('abort', this.#onAbort);
    inner.start(this.#req.metadata.clone(), {
      onReceiveMetadata: (md) => this.#onHeaders(md),
      onReceiveMessage: (msg: Buffer) => this.#onMessage(msg),
      onReceiveStatus: (status) => this.#onStatus(status),
    });
    this.#innerReadOutstanding = true;
    inner.startRead();
    reader.onAvailable(() => this.#pump());
    this.#pump();
  }

  #fail(err: unknown): void {
    this.#settled = true;
    this.#status = { code: Status.UNAVAILABLE, details: String(err), metadata: new Metadata() };
    this.#resolveDone(this.#status);
    this.#onFinished(this);
    this.#reject(err);
  }

  #pump(): void {
    const inner = this.#inner;
    const reader = this.#reader;
    if (inner === undefined || reader === undefined) return;
    // One message at a time (its write callback is the caller's
    // backpressure), but the half-close goes out right behind the last
    // message: waiting for that write to finish would cost a unary call an
    // extra HTTP/2 frame and event-loop turn.
    while (!this.#halfClosed && this.#status === undefined) {
      if (this.#writing) {
        if (!reader.endsAfterCurrent()) return;
        this.#halfClosed = true;
        inner.halfClose();
        return;
      }
      const next = reader.next();
      if (next.kind === 'pending') return;
      if (next.kind === 'end') {
        this.#halfClosed = true;
        inner.halfClose();
        return;
      }
      this.#writing = true;
      const index = next.index;
      const context = {
        callback: () => {
          this.#writing = false;
          reader.written(index);
          this.#pump();
        },
        ...(next.message.flags === undefined ? {} : { flags: next.message.flags }),
      };
      inner.sendMessageWithContext(context, next.message.data);
    }
  }

  readonly #onAbort = (): void => {
    if (this.#status !== undefined) return;
    const reason = abortReason(this.#ctx.signal);
    const code = reason instanceof GrpcTowerError ? reason.code : Status.CANCELLED;
    this.#inner?.cancelWithStatus(code, reason.message);
  };

  #onHeaders(md: Metadata): void {
    this.#headers = md;
    if (this.#committed) return;
    if (this.#commitAt === 'headers' || (this.#commitAt === 'auto' && !this.#req.messages.ended))
      this.#commit();
  }

  #onMessage(msg: Buffer): void {
    this.#innerReadOutstanding = false;
    this.#queue.push(msg);
    if (!this.#committed) {
      if (this.#commitAt === 'status') {
        // hold the response until its status: keep draining
        this.#innerReadOutstanding = true;
        this.#inner?.startRead();
        return;
      }
      this.#commit();
      return;
    }
    this.#deliver();
  }

  #onStatus(status: StatusObject): void {
    if (this.#status !== undefined) return;
    this.#status = status;
    this.#ctx.signal.removeEventListener('abort', this.#onAbort);
    this.#reader?.close();
    this.#resolveDone(status);
    this.#onFinished(this);
    if (!this.#committed) {
      if (status.code === Status.OK) {
        this.#commit();
        return;
      }
      this.#settled = true;
      if (this.#ctx.signal.aborted) {
        this.#reject(abortReason(this.#ctx.signal));
      } else {
        const serverResponded = this.#headers !== undefined || status.metadata.get('content-type').length > 0;
        this.#reject(new GrpcStatusError(status, { endpoint: this.#address, serverResponded }));
      }
      return;
    }
    this.#deliver();
  }

  #commit(): void {
    this.#committed = true;
    this.#settled = true;
    this.#req.messages.commit();
    this.#resolve({
      endpoint: this.#address,
      headers: this.#headers ?? new Metadata(),
      stream: this,
      done: this.#done,
    });
  }

  #deliver(): void {
    const consumer = this.#consumer;
    if (consumer === undefined) return;
    while (this.#consumerReads > 0 && this.#queue.length > 0) {
      this.#consumerReads--;
      consumer.onMessage(this.#queue.shift() as Buffer);
    }
    if (this.#queue.length === 0) {
      if (this.#status !== undefined) {
        if (!this.#statusDelivered) {
          this.#statusDelivered = true;
          consumer.onStatus(this.#status);
        }
      } else if (this.#consumerReads > 0 && !this.#innerReadOutstanding) {
        this.#innerReadOutstanding = true;
        this.#inner?.startRead();
      }
    }
  }

  // ResponseStream, used once committed
  start(listener: ResponseListener): void {
    this.#consumer = listener;
    this.#deliver();
  }

  read(): void {
    this.#consumerReads++;
    this.#deliver();
  }

  cancel(code: StatusCode, details: string): void {
    if (this.#status !== undefined) return;
    if (this.#inner === undefined) {
      this.#fail(new GrpcTowerError(code, details, { endpoint: this.#address }));
      return;
    }
    this.#inner.cancelWithStatus(code, details);
  }

  get settled(): boolean {
    return this.#settled;
  }
}
