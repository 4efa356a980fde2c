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
import type { CallContext } from '../context.js';
import type { Readiness } from '../endpoint.js';
import { ClosedError, ConfigError, type Delivery, GrpcTowerError } from '../errors.js';
import { Status, type StatusCode } from '../status.js';
import { MAX_TIMER_MS } from '../internal/timers.js';
import { readableTlsError } from '../transport/tls.js';
import { checkForZones, checkGroup, checkPriority, checkWeight, checkZone } from '../endpoint.js';
import { type HostPort, formatAddress, grpcTarget, parseAddress } from './address.js';
import type { MessageReader } from './messages.js';
import { GrpcEndpointBase } from './endpoint-base.js';
import { ResponseHalf, type ResponseWire } from './response.js';
import type { GrpcRequest, GrpcResponse } from './types.js';

/** Options of {@link grpcEndpoint}. */
export interface GrpcEndpointOptions {
  /**
   * Channel credentials, required: `grpc.credentials.createSsl(...)` for
   * TLS, or `grpc.credentials.createInsecure()` to choose plaintext. They
   * are the ones the calls use: grpc-js ignores a client constructor's
   * credentials when `channelOverride` is set.
   */
  readonly credentials: ChannelCredentials;
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
  /**
   * Its share among equally loaded endpoints, relative to the others' (a
   * finite number ≥ 0, such as a discovered address's `weight`); default 1.
   * See `Endpoint.weight`.
   */
  readonly weight?: number | undefined;
  /** The zone it runs in (a non-empty string, such as a discovered address's `zone`). See `Endpoint.zone`. */
  readonly zone?: string | undefined;
  /** Topology hints: the zones whose clients it is meant for (non-empty strings). See `Endpoint.forZones`. */
  readonly forZones?: readonly string[] | undefined;
  /** Its priority level (an integer ≥ 0, 0 the highest, such as an xDS locality's). See `Endpoint.priority`. */
  readonly priority?: number | undefined;
  /** The group it belongs to (such as a weighted cluster). See `Endpoint.group`. */
  readonly group?: string | undefined;
  /** Its group's weight among the groups (a finite number > 0). See `Endpoint.groupWeight`. */
  readonly groupWeight?: number | undefined;
  /**
   * How `grpcEndpoint` speaks gRPC: `'native'` (default), over its own
   * HTTP/2 connection (`NativeGrpcEndpoint`), or `'grpc-js'`, through a
   * grpc-js channel of its own (`GrpcEndpoint`), the way back for what the
   * native transport does not do: a grpc-js channel option it refuses (its
   * error names it), grpc-js's own tracing (`GRPC_TRACE`), or behaviour
   * that must match a plain grpc-js client exactly.
   */
  readonly transport?: GrpcTransport | undefined;
}

/**
 * The two ways an endpoint speaks gRPC (see {@link GrpcEndpointOptions.transport}).
 *
 * @example
 * ```ts
 * const transport: GrpcTransport = process.env.GRPC_TRANSPORT === 'grpc-js' ? 'grpc-js' : 'native';
 * ```
 */
export type GrpcTransport = 'native' | 'grpc-js';

/** What a missing or wrong `credentials` option is told to be. */
const CREDENTIALS_EXPECTED =
  'grpc-js ChannelCredentials: grpc.credentials.createSsl(…) for TLS, ' +
  'or grpc.credentials.createInsecure() to choose plaintext';

/**
 * The options both gRPC endpoints check alike, checked for `where` (the
 * function the user called).
 *
 * @internal
 * @example
 * ```ts
 * const { address, secure } = checkEndpointOptions('grpcEndpoint', '127.0.0.2:50051', options, 'grpc-js');
 * ```
 */
export function checkEndpointOptions(
  where: string,
  address: string,
  options: GrpcEndpointOptions,
  transport: GrpcTransport,
): {
  readonly host: HostPort;
  readonly address: string;
  readonly graceMs: number;
  readonly weight: number | undefined;
  readonly zone: string | undefined;
  readonly forZones: readonly string[] | undefined;
  readonly priority: number | undefined;
  readonly group: string | undefined;
  readonly groupWeight: number | undefined;
  readonly credentials: ChannelCredentials;
  readonly secure: boolean;
  readonly authority: string | undefined;
} {
  // no options at all: what is missing is the credentials
  if (options === undefined) throw new ConfigError(where, 'credentials', undefined, CREDENTIALS_EXPECTED);
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(where, 'options', options, 'an object');
  }
  const host = parseAddress(address, where);
  if (options.transport !== undefined && options.transport !== transport) {
    // the class of one transport, asked for the other
    throw new ConfigError(
      where,
      'transport',
      options.transport,
      `'${transport}' or nothing here (grpcEndpoint makes either transport's endpoint)`,
    );
  }
  const graceMs = options.closeGraceMs ?? 30_000;
  if (!Number.isFinite(graceMs) || graceMs < 0) {
    throw new ConfigError(where, 'closeGraceMs', graceMs, 'a finite number >= 0');
  }
  const credentials = options.credentials;
  if (typeof (credentials as { _isSecure?: unknown } | null | undefined)?._isSecure !== 'function') {
    throw new ConfigError(where, 'credentials', credentials, CREDENTIALS_EXPECTED);
  }
  const authority = options.authority;
  if (authority !== undefined && (typeof authority !== 'string' || authority.length === 0)) {
    throw new ConfigError(where, 'authority', authority, 'a non-empty host name');
  }
  return {
    host,
    address: formatAddress(host.host, host.port),
    graceMs,
    weight: checkWeight(where, options.weight),
    zone: checkZone(where, options.zone),
    forZones: checkForZones(where, options.forZones),
    priority: checkPriority(where, options.priority),
    ...checkGroup(where, options.group, options.groupWeight),
    credentials,
    secure: credentials._isSecure(),
    authority,
  };
}

/** The grpc-js channel options every endpoint sets (see the module documentation). */
const baseChannelOptions: ChannelOptions = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.enable_retries': 0,
  'grpc.per_rpc_retry_buffer_size': 0,
};

/** gRPC A6's request header: how many attempts of this call came before. */
export const PREVIOUS_ATTEMPTS_HEADER = 'grpc-previous-rpc-attempts';

/**
 * What a status grpc-js made up (no response from the server) says of how
 * far the attempt got, read from grpc-js's wording (1.12 to 1.14), since
 * grpc-js keeps its own account (`NOT_STARTED`, `REFUSED`, `DROP`,
 * `PROCESSED`) from a `Channel`'s caller. The only place that reads its
 * words; `restart` marks a stream grpc-js could not open on the picked
 * connection (`session.request` threw: the connection got a GOAWAY or
 * closed in between), which the attempt opens again itself.
 *
 * - `Failed to start HTTP/2 stream…`, `Getting metadata from plugin
 *   failed…` (call credentials of this process): `not-sent`;
 * - `No connection established…` (connect failed; no stream was opened):
 *   `unconnected`;
 * - `Stream refused by server` (RST_STREAM REFUSED_STREAM, which is also
 *   how a stream beyond a GOAWAY's last stream is refused): `refused`;
 * - `Connection dropped…`, `Received RST_STREAM…`: `lost` (the method may
 *   have run; grpc-js 1.14 also reports a GOAWAY followed by the
 *   connection closing before the stream was accepted this way, so that
 *   takes the safe side);
 * - anything else: not known (`undefined`).
 *
 * A wording a future grpc-js changes falls to `undefined`: such a failure
 * is then never sent again transparently, the safe direction.
 *
 * @internal
 * @example
 * ```ts
 * grpcJsDelivery('Stream refused by server'); // { delivery: 'refused', restart: false }
 * ```
 */
export function grpcJsDelivery(details: string): { delivery: Delivery; restart: boolean } | undefined {
  if (details.startsWith('Failed to start HTTP/2 stream')) return { delivery: 'not-sent', restart: true };
  if (details.startsWith('Getting metadata from plugin failed'))
    return { delivery: 'not-sent', restart: false };
  if (details.startsWith('No connection established')) return { delivery: 'unconnected', restart: false };
  if (details === 'Stream refused by server') return { delivery: 'refused', restart: false };
  if (details.startsWith('Connection dropped') || details.startsWith('Received RST_STREAM')) {
    return { delivery: 'lost', restart: false };
  }
  return undefined;
}

/** How many times one attempt re-opens a stream that grpc-js failed to start. */
const MAX_RESTARTS = 3;

/** The `grpc-timeout` header value for `ms` milliseconds (gRPC over HTTP/2: at most 8 digits). */
export function timeoutHeader(ms: number): string {
  const t = Math.max(0, Math.ceil(ms));
  if (t < 1e8) return `${t}m`;
  if (t < 1e11) return `${Math.ceil(t / 1_000)}S`;
  if (t < 6e12) return `${Math.ceil(t / 60_000)}M`;
  return `${Math.min(99_999_999, Math.ceil(t / 3_600_000))}H`;
}

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

/**
 * The reason inside grpc-js's "no connection" status, such as
 * `connect ECONNREFUSED 127.0.0.9:50051` out of `No connection established.
 * Last error: Error: connect ECONNREFUSED 127.0.0.9:50051. Resolution note: `;
 * the details as they are when they have another shape.
 */
export function connectionErrorOf(details: string): string {
  const marker = 'Last error: ';
  const at = details.indexOf(marker);
  if (at < 0) return details;
  let reason = details.slice(at + marker.length);
  const note = reason.indexOf('. Resolution note:');
  if (note >= 0) reason = reason.slice(0, note);
  if (reason.startsWith('Error: ')) reason = reason.slice('Error: '.length);
  // grpc-js before 1.13 appends the time of the failure: `… (2026-12-02T16:00:00.000Z)`
  reason = reason.replace(/ \(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z\)$/, '');
  reason = readableTlsError(reason);
  return reason.length > 0 ? reason : details;
}

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

/** One call on one endpoint. */
class Attempt implements ResponseWire {
  readonly #address: string;
  readonly #req: GrpcRequest;
  readonly #ctx: CallContext;
  readonly #onFinished: (a: Attempt) => void;
  /** The response side: headers, messages, commit, the consumer. */
  readonly #res: ResponseHalf;
  #channel: Channel | undefined;
  #inner: Call | undefined;
  #reader: MessageReader | undefined;
  #offAbort: (() => void) | undefined;
  #innerReadOutstanding = false;
  #writing = false;
  #halfClosed = false;
  #restarts = 0;

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
    this.#onFinished = onFinished;
    this.#res = new ResponseHalf(address, req, ctx, resolve, reject, this);
  }

  /** The grpc-js channel the attempt runs on, once begun. */
  get channel(): Channel | undefined {
    return this.#channel;
  }

  begin(channel: Channel): void {
    this.#channel = channel;
    if (!this.#open()) return;
    this.#offAbort = this.#ctx.onAbort(() => this.#onAbort());
  }

  /** Opens the grpc-js call and starts sending; false when the request can no longer be replayed. */
  #open(): boolean {
    const channel = this.#channel as Channel;
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
      return false;
    }
    this.#reader = reader;
    // the one copy of the metadata this attempt sends
    const metadata = this.#req.metadata.clone();
    const deadline = this.#ctx.deadline;
    if (deadline !== Number.POSITIVE_INFINITY)
      metadata.set('grpc-timeout', timeoutHeader(deadline - Date.now()));
    if (this.#req.attempt > 0) metadata.set(PREVIOUS_ATTEMPTS_HEADER, String(this.#req.attempt));
    const inner = channel.createCall(this.#req.method, Number.POSITIVE_INFINITY, this.#req.host, null, 0);
    this.#inner = inner;
    if (this.#req.credentials !== undefined) inner.setCredentials(this.#req.credentials);
    this.#ctx.note(
      channel.getConnectivityState(false) === ConnectivityState.READY ? 'in-flight' : 'connecting',
      this.#address,
    );
    // the attempt is the grpc-js listener (no closures per call)
    inner.start(metadata, this);
    this.#innerReadOutstanding = true;
    inner.startRead();
    reader.onAvailable(() => this.#pump());
    this.#pump();
    return true;
  }

  #fail(err: unknown): void {
    const status = { code: Status.UNAVAILABLE, details: String(err), metadata: new Metadata() };
    this.#onFinished(this);
    this.#res.onStatus(status, undefined, err);
  }

  #pump(): void {
    const inner = this.#inner;
    const reader = this.#reader;
    if (inner === undefined || reader === undefined) return;
    // One message at a time (its write callback is the caller's
    // backpressure), but the half-close goes out right behind the last
    // message: waiting for that write to finish would cost a unary call an
    // extra HTTP/2 frame and event-loop turn.
    while (!this.#halfClosed && this.#res.status === undefined) {
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
      const callback = writtenCallback(this, inner, next.index);
      const flags = next.message.flags;
      inner.sendMessageWithContext(
        flags === undefined ? { callback } : { callback, flags },
        next.message.data,
      );
    }
  }

  /** @internal grpc-js wrote message `index` of `inner`'s stream. */
  written(inner: Call, index: number): void {
    if (this.#inner !== inner) return; // a restarted stream's late callback
    this.#writing = false;
    this.#reader?.written(index);
    this.#pump();
  }

  #onAbort(): void {
    if (this.#res.status !== undefined) return;
    const reason = this.#ctx.reason();
    const code = reason instanceof GrpcTowerError ? reason.code : Status.CANCELLED;
    this.#inner?.cancelWithStatus(code, reason.message);
  }

  // grpc-js's listener of the inner call. A restarted attempt's earlier
  // call has ended (its status is what restarted it) and says no more.

  /** @internal */
  onReceiveMetadata(md: Metadata): void {
    this.#res.onHeaders(md);
  }

  /** @internal */
  onReceiveMessage(msg: Buffer): void {
    this.#innerReadOutstanding = false;
    // a response held until its status keeps draining
    if (this.#res.onMessage(msg)) this.more();
  }

  /**
   * Whether the attempt opens its stream again, after grpc-js failed to
   * open it on a connection that was going away (`restart`, see
   * {@link grpcJsDelivery}): the call never left the client, so it is
   * opened again at once (grpc-js did this itself with its retries on).
   */
  #restart(restart: boolean): boolean {
    if (
      !restart ||
      this.#res.committed ||
      this.#res.headers !== undefined ||
      this.#restarts >= MAX_RESTARTS ||
      this.#ctx.aborted
    ) {
      return false;
    }
    this.#restarts++;
    this.#reader?.close();
    this.#reader = undefined;
    this.#inner = undefined;
    this.#writing = false;
    this.#halfClosed = false;
    this.#res.reset();
    if (!this.#open()) {
      this.#offAbort?.();
      return true;
    }
    return true;
  }

  /** @internal */
  onReceiveStatus(status: StatusObject): void {
    if (this.#res.status !== undefined) return;
    // a status without a response is grpc-js's own: its words say how far the attempt got
    const made =
      status.code === Status.OK || this.#res.responded(status) ? undefined : grpcJsDelivery(status.details);
    if (this.#restart(made?.restart === true)) return;
    this.#offAbort?.();
    this.#offAbort = undefined;
    this.#reader?.close();
    this.#onFinished(this);
    this.#res.onStatus(status, made?.delivery);
  }

  // what the response side asks of the grpc-js call

  /** @internal */
  more(): void {
    if (this.#innerReadOutstanding) return;
    this.#innerReadOutstanding = true;
    this.#inner?.startRead();
  }

  /** @internal grpc-js hands over one message per read: nothing to hold. */
  hold(): void {}

  /** @internal */
  cancel(code: StatusCode, details: string): void {
    if (this.#res.status !== undefined) return;
    if (this.#inner === undefined) {
      this.#fail(new GrpcTowerError(code, details, { endpoint: this.#address }));
      return;
    }
    this.#inner.cancelWithStatus(code, details);
  }

  get settled(): boolean {
    return this.#res.settled;
  }
}

/**
 * The callback grpc-js runs once message `index` of `inner` is written
 * (grpc-js may call it detached from its context object, so it is a closure).
 */
function writtenCallback(attempt: Attempt, inner: Call, index: number): () => void {
  return () => attempt.written(inner, index);
}
