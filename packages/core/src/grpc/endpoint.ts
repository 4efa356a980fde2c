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
 * and otherwise at the first response message or the status. A unary or
 * client-streaming response resolves as a value (`GrpcResponse.unary`):
 * message and status, with no stream to replay.
 *
 * grpc-tower does the retries (gRPC A6, and the transparent retry of a call
 * that never reached a server), so each endpoint's grpc-js channel runs with
 * its own retries off (`grpc.enable_retries: 0`) and keeps no retry buffer
 * (`grpc.per_rpc_retry_buffer_size: 0`): the request messages are held once,
 * by the call's replay buffer. The one exception grpc-js made without
 * retries configured, a stream it failed to open on a connection that was
 * going away (the call never left the client), the endpoint makes itself.
 *
 * Deadlines: the call's context enforces its deadline (the channel's call
 * runs the one timer and aborts the context, which cancels the attempt);
 * the grpc-js call gets none of its own, and the endpoint tells the server
 * through the `grpc-timeout` header, computed as the attempt starts.
 *
 * Credentials: an endpoint's channel credentials are the only ones its
 * calls use (grpc-js ignores a client constructor's credentials when
 * `channelOverride` is set), so they are required, never defaulted:
 * `grpc.credentials.createSsl(...)` for TLS, or
 * `grpc.credentials.createInsecure()` to choose plaintext.
 *
 * @module
 */
import {
  type Call,
  type ChannelCredentials,
  type ChannelOptions,
  Channel,
  ConnectivityState,
  Metadata,
  type StatusObject,
} from './grpc-js.js';
import type { CallContext } from '../context/index.js';
import type { Readiness } from '../endpoint.js';
import { ConfigError } from '../errors.js';
import { Status } from '../status.js';
import { MAX_TIMER_MS } from '../internal/timers.js';
import { grpcTarget } from './address.js';
import { GrpcEndpointBase } from './endpoint-base.js';
import { type GrpcEndpointOptions, checkEndpointOptions } from './endpoint-options.js';
import { Attempt } from './grpcjs-attempt.js';
import { connectionErrorOf, grpcJsDelivery } from './grpcjs-wording.js';
import type { GrpcRequest, GrpcResponse } from './types.js';

// what moved out of this module, still reachable through it
export { type GrpcEndpointOptions, type GrpcTransport, checkEndpointOptions } from './endpoint-options.js';
export { PREVIOUS_ATTEMPTS_HEADER, timeoutHeader } from './grpcjs-attempt.js';
export { connectionErrorOf, grpcJsDelivery } from './grpcjs-wording.js';

/** The grpc-js channel options every endpoint sets (see the module documentation). */
const baseChannelOptions: ChannelOptions = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.enable_retries': 0,
  'grpc.per_rpc_retry_buffer_size': 0,
};

/** grpc-js's reconnect backoff (1.14, `backoff-timeout.js`): its defaults and its multiplier. */
const GRPC_INITIAL_BACKOFF_MS = 1_000;
const GRPC_MAX_BACKOFF_MS = 120_000;
const GRPC_BACKOFF_MULTIPLIER = 1.6;

/** A backoff option of grpc-js's when it is a number > 0, else grpc-js's default. */
function backoffOption(options: ChannelOptions, key: string, fallback: number): number {
  const value = options[key];
  return typeof value === 'number' && value > 0 ? value : fallback;
}

/**
 * The backoff interval that follows the one a schedule (first wait
 * `initialMs`, growing by grpc-js's multiplier up to `maxMs`) is in,
 * `elapsedMs` after its first failure: what a connection attempt made now,
 * in place of the next scheduled one, is followed by.
 */
function backoffAfter(initialMs: number, maxMs: number, elapsedMs: number): number {
  let interval = Math.min(initialMs, maxMs);
  let ends = interval;
  while (ends <= elapsedMs && interval < maxMs) {
    interval = Math.min(interval * GRPC_BACKOFF_MULTIPLIER, maxMs);
    ends += interval;
  }
  return Math.min(interval * GRPC_BACKOFF_MULTIPLIER, maxMs);
}

/** The method a connection-error probe names; grpc-js fails it locally (see `#probe`). */
const PROBE_METHOD = '/grpc.tower.ConnectionProbe/LastError';
/** How long a probe may wait for grpc-js's pick before it is cancelled, in ms. */
const PROBE_CANCEL_MS = 100;

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

/** grpc-js options it uses as strings (a number there makes grpc-js throw from inside a call). */
const STRING_OPTIONS = new Set([
  'grpc.default_authority',
  'grpc.ssl_target_name_override',
  'grpc.primary_user_agent',
  'grpc.secondary_user_agent',
]);

/**
 * grpc-js uses channel option values as it finds them, and a value of the
 * wrong kind (a symbol, a bigint, NaN, a string where it computes a delay)
 * makes it throw later, from a timer or a call. Refused here instead: every
 * value is a string or a finite number, the authority and user-agent
 * options a string, and an `…_ms` option a number of ms from -1 (grpc-js's
 * "off") to 2147483647.
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
    if (STRING_OPTIONS.has(key) && typeof value !== 'string') {
      throw new ConfigError('grpcEndpoint', `channelOptions.${key}`, value, 'a string');
    }
    const ok = key.endsWith('_ms')
      ? typeof value === 'number' && Number.isInteger(value) && value >= -1 && value <= MAX_TIMER_MS
      : typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
    if (!ok) {
      const expected = key.endsWith('_ms')
        ? `an integer number of ms from -1 to ${MAX_TIMER_MS}`
        : 'a string or a finite number';
      throw new ConfigError('grpcEndpoint', `channelOptions.${key}`, value, expected);
    }
  }
}

/**
 * Creates a grpc-js endpoint for `address` (`host:port`, IPv6 as
 * `[::1]:50051`): what `grpcEndpoint` makes with `transport: 'grpc-js'`. It
 * starts connecting at once and reconnects with grpc-js's backoff.
 *
 * @internal
 * @example
 * ```ts
 * const ep = grpcJsEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() });
 * ```
 */
export function grpcJsEndpoint(address: string, options: GrpcEndpointOptions): GrpcEndpoint {
  return new GrpcEndpoint(address, options);
}

/**
 * The endpoint class behind `grpcEndpoint(address, { transport: 'grpc-js', … })`.
 *
 * @example
 * ```ts
 * const ep = new GrpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() });
 * ```
 */
export class GrpcEndpoint extends GrpcEndpointBase<Attempt> {
  /** The grpc-js channel new calls go to; replaced by {@link GrpcEndpoint.reconnect}. */
  #channel: Channel;
  /** Channels replaced while calls still ran on them; each closes after its last call. */
  readonly #oldChannels = new Set<Channel>();
  readonly #target: string;
  readonly #credentials: ChannelCredentials;
  readonly #channelOptions: ChannelOptions;
  /** grpc-js's first reconnect wait and its cap, as configured. */
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  /** The first reconnect wait of the current channel (larger than configured after a reconnect). */
  #channelBackoffMs: number;
  /** Whether the current channel was made by {@link GrpcEndpoint.reconnect}. */
  #reconnected = false;
  /** Whether the current channel has been READY. */
  #channelWasReady = false;
  /** When the current channel's connection failed (`performance.now()`), while it is failed. */
  #failedAt: number | undefined;
  /** The connection attempt `reconnect()` started, until it ends. */
  #reconnecting: { readonly promise: Promise<void>; readonly end: () => void } | undefined;
  #lastError: string | undefined;

  constructor(address: string, options: GrpcEndpointOptions) {
    const checked = checkEndpointOptions('grpcEndpoint', address, options, 'grpc-js');
    super(checked, 'connecting');
    const { host: hp, credentials: creds } = checked;
    checkChannelOptions(options.channelOptions);
    const channelOptions: ChannelOptions = { ...baseChannelOptions, ...options.channelOptions };
    if (checked.authority !== undefined) {
      channelOptions['grpc.default_authority'] = checked.authority;
      if (this.secure) channelOptions['grpc.ssl_target_name_override'] = checked.authority;
    }
    this.#target = grpcTarget(hp);
    this.#credentials = creds;
    this.#channelOptions = channelOptions;
    this.#initialBackoffMs = backoffOption(
      channelOptions,
      'grpc.initial_reconnect_backoff_ms',
      GRPC_INITIAL_BACKOFF_MS,
    );
    this.#maxBackoffMs = Math.max(
      this.#initialBackoffMs,
      backoffOption(channelOptions, 'grpc.max_reconnect_backoff_ms', GRPC_MAX_BACKOFF_MS),
    );
    this.#channelBackoffMs = this.#initialBackoffMs;
    try {
      this.#channel = new Channel(this.#target, creds, channelOptions);
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
    this.#watch(this.#channel);
  }

  /**
   * The last connection error grpc-js reported for this endpoint's
   * connection, such as `connect ECONNREFUSED 127.0.0.9:50051`; kept after
   * the connection recovers (then `readiness` says it is ready).
   */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /**
   * Starts a connection attempt now when the connection failed and the
   * endpoint waits out grpc-js's reconnect backoff (see
   * `Endpoint.reconnect`); resolves when it ends.
   *
   * grpc-js (1.14) offers no public way to cut its backoff short: the
   * `Channel` has no `resetBackoff`; `getConnectivityState(true)` only
   * leaves IDLE, and a channel whose connection failed stays in
   * TRANSIENT_FAILURE (pick_first's sticky failure) while its subchannel
   * waits out the backoff, for which `startConnecting()` only asks to
   * connect once the wait ends. So the endpoint replaces its grpc-js
   * channel with a new one, which connects at once: the old one closes
   * (after the calls still on it end, if any), and the new one's first
   * backoff wait is the interval the old schedule would have moved to, so
   * the schedule resumes instead of restarting at its first wait (a
   * channel made that way is replaced again, with the configured first
   * wait, when its connection is later lost). One such attempt per backoff
   * interval: after one failed, `undefined` until the new channel's own
   * first retry is due.
   *
   * @example
   * ```ts
   * if (ep.readiness === 'failed') await ep.reconnect();
   * ```
   */
  reconnect(): Promise<void> | undefined {
    if (this.#reconnecting !== undefined) return this.#reconnecting.promise;
    const failedAt = this.#failedAt;
    if (this.closing || this.readiness !== 'failed' || failedAt === undefined) {
      return undefined;
    }
    const elapsed = performance.now() - failedAt;
    if (this.#reconnected && elapsed < this.#channelBackoffMs) return undefined;
    let end!: () => void;
    const promise = new Promise<void>((resolve) => {
      end = resolve;
    });
    this.#reconnecting = { promise, end };
    this.#replaceChannel(backoffAfter(this.#channelBackoffMs, this.#maxBackoffMs, elapsed), true);
    return promise;
  }

  /**
   * Moves new calls to a new grpc-js channel whose first reconnect wait is
   * `backoffMs`, and closes the current one once no call runs on it
   * (grpc-js lets started calls finish on a closed channel, but a call that
   * re-opens a stream grpc-js failed to start needs its channel open).
   */
  #replaceChannel(backoffMs: number, reconnected: boolean): void {
    const old = this.#channel;
    this.#channel = new Channel(this.#target, this.#credentials, {
      ...this.#channelOptions,
      'grpc.initial_reconnect_backoff_ms': backoffMs,
    });
    this.#channelBackoffMs = backoffMs;
    this.#reconnected = reconnected;
    this.#channelWasReady = false;
    this.#failedAt = undefined;
    if (this.#usesChannel(old)) this.#oldChannels.add(old);
    else old.close();
    this.#watch(this.#channel);
  }

  /** Whether a call of this endpoint runs on `channel`. O(calls in flight). */
  #usesChannel(channel: Channel): boolean {
    for (const a of this.attempts) if (a.channel === channel) return true;
    return false;
  }

  #watch(channel: Channel): void {
    // a replaced channel's last change (its close) is not this endpoint's
    if (channel !== this.#channel) return;
    // Only ask a live channel to connect: grpc-js (1.14) restarts the
    // resolver of a closed channel on getConnectivityState(true), and the
    // connection that opens is never closed.
    const current = channel.getConnectivityState(false);
    if (
      current === ConnectivityState.IDLE &&
      this.#channelWasReady &&
      this.#channelBackoffMs !== this.#initialBackoffMs &&
      !this.closing
    ) {
      // the connection a reconnect made was lost: reconnect on a channel
      // whose backoff starts again at the configured first wait
      this.#replaceChannel(this.#initialBackoffMs, false);
      return;
    }
    const state = current === ConnectivityState.SHUTDOWN ? current : channel.getConnectivityState(true);
    // a failure is published with its reason: once the probe has learnt it (a ms or two)
    if (state === ConnectivityState.TRANSIENT_FAILURE && this.readiness !== 'failed') {
      this.#probe(channel, () => {
        if (channel === this.#channel) this.#publish(channel.getConnectivityState(false));
      });
    } else {
      this.#publish(state);
    }
    if (state === ConnectivityState.SHUTDOWN) return;
    // IDLE (after a lost connection or an idle timeout) was kicked back to
    // CONNECTING by getConnectivityState(true) above; watch the next change.
    channel.watchConnectivityState(state, Number.POSITIVE_INFINITY, () => this.#watch(channel));
  }

  /**
   * Learns why the connection failed. grpc-js keeps the reason inside the
   * channel and hands it only to a call that fails for want of a
   * connection, so a call that waits for nothing is started on the channel
   * in TRANSIENT_FAILURE: grpc-js fails it locally, at the pick, with
   * `No connection established. Last error: …`. Should the connection come
   * up within the few ms the pick takes, the probe is cancelled after
   * {@link PROBE_CANCEL_MS}, and a server that saw it answers UNIMPLEMENTED.
   */
  #probe(channel: Channel, then: () => void): void {
    let call: Call | undefined;
    const timer = setTimeout(() => call?.cancelWithStatus(Status.CANCELLED, 'probe done'), PROBE_CANCEL_MS);
    timer.unref?.();
    const done = (status: StatusObject): void => {
      clearTimeout(timer);
      if (
        channel === this.#channel &&
        status.code === Status.UNAVAILABLE &&
        grpcJsDelivery(status.details)?.delivery === 'unconnected'
      ) {
        this.#lastError = connectionErrorOf(status.details);
      }
      then();
    };
    try {
      call = channel.createCall(PROBE_METHOD, Number.POSITIVE_INFINITY, null, null, 0);
      call.start(new Metadata(), {
        onReceiveMetadata: () => {},
        onReceiveMessage: () => {},
        onReceiveStatus: done,
      });
      call.halfClose();
    } catch {
      // a channel closed under the probe: nothing to learn
      clearTimeout(timer);
      then();
    }
  }

  /**
   * Publishes the readiness of `state`, unless the endpoint has closed; a
   * connection attempt `reconnect()` started ends at READY, TRANSIENT_FAILURE
   * (once its reason is known) or SHUTDOWN.
   */
  #publish(state: ConnectivityState): void {
    const readiness = readinessOf(state);
    if (readiness === 'failed') this.#failedAt ??= performance.now();
    else if (readiness === 'ready') {
      this.#failedAt = undefined;
      this.#channelWasReady = true;
    }
    this.setReadiness(readiness);
    if (readiness !== 'connecting' && this.#reconnecting !== undefined) {
      const { end } = this.#reconnecting;
      this.#reconnecting = undefined;
      end();
    }
  }

  call(req: GrpcRequest, ctx: CallContext): Promise<GrpcResponse> {
    const refused = this.refusal(req, ctx);
    if (refused !== undefined) return Promise.reject(refused);
    return new Promise<GrpcResponse>((resolve, reject) => {
      const attempt = new Attempt(this.address, req, ctx, resolve, reject, (a) => this.#finished(a));
      this.attempts.add(attempt);
      attempt.begin(this.#channel);
    });
  }

  #finished(attempt: Attempt): void {
    this.finished(attempt);
    const channel = attempt.channel;
    if (channel !== undefined && this.#oldChannels.has(channel) && !this.#usesChannel(channel)) {
      this.#oldChannels.delete(channel);
      channel.close();
    }
  }

  /**
   * @internal grpc-js (1.14) resolves an IP target on a later tick and
   * delivers that result even to a channel closed in between; the
   * connection it then opens is never closed. An endpoint created and
   * closed in the same tick (discovery flapping) would leak one connection
   * each, so it closes only after that tick has run.
   */
  protected override beforeDrain(): Promise<void> {
    return new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** @internal Closes its grpc-js channels, once the calls have drained. */
  protected override release(): void {
    for (const old of this.#oldChannels) old.close();
    this.#oldChannels.clear();
    this.#channel.close();
  }
}
