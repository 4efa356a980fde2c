/**
 * One HTTP/2 connection to one address: the part of a client transport
 * that owns sessions, so the protocols above it only open streams.
 *
 * - **Connect**: a TCP socket with Nagle off, optionally upgraded by a
 *   {@link SecureUpgrade} (TLS), then an HTTP/2 session over it. The
 *   connection is `ready` only once the server's first SETTINGS frame has
 *   arrived: until then its `max_concurrent_streams` is unknown, and a
 *   stream opened early may be refused by a server with a small limit.
 *   Streams asked for while connecting wait for that moment; once the
 *   server's limit is known, nghttp2 holds streams beyond it until others
 *   finish, so a full server delays streams instead of refusing them.
 * - **Backoff**: a failed attempt waits (gRPC's connection backoff, see
 *   `backoff.ts`) and tries again; {@link Http2Connection.connectNow} cuts
 *   the wait short. A session that was ready and ends (GOAWAY, lost socket)
 *   is replaced at once.
 * - **GOAWAY**: the session takes no new streams; its streams the server
 *   accepted finish on it, and those it did not are closed by nghttp2 with
 *   REFUSED_STREAM. New streams go to a new session. Every session's
 *   GOAWAY is on {@link SessionInfo}, so a stream can tell "the server never
 *   took me" from "the connection was lost under me".
 * - **Keepalive** (gRPC A8): with `keepaliveTimeMs`, a PING after that long
 *   without one, while streams are open (or always, with
 *   `keepalivePermitWithoutCalls`); no answer within `keepaliveTimeoutMs`
 *   ends the session. A GOAWAY `ENHANCE_YOUR_CALM` with `too_many_pings`
 *   doubles the interval for the rest of the connection's life.
 * - **Idle timeout**: with `idleTimeoutMs`, a connection without a stream
 *   for that long closes its session and is `idle`; the next stream asked
 *   for connects again (and waits for it).
 * - **Events**: state changes, GOAWAYs and keepalive timeouts on
 *   {@link Http2Connection.events$}.
 *
 * Two protocols open streams on it: the native gRPC endpoint
 * (`grpc/native/`) and the plain HTTP/2 endpoint (`http2/endpoint.ts`),
 * each owning one connection per address.
 *
 * @internal
 * @module
 */
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Observable } from 'rxjs';
import { EventStream } from '../internal/events.js';
import { ReconnectBackoff } from './backoff.js';
import { dial } from './dial.js';
import { Keepalive, SessionRecord, headerListSize } from './session.js';
import { readableTlsError } from './tls.js';
import type { ConnectionEvent, ConnectionState, Http2ConnectionOptions, StreamOpener } from './types.js';

export type {
  ConnectionEvent,
  ConnectionState,
  Http2ConnectionOptions,
  SecureUpgrade,
  SessionInfo,
  StreamOpener,
} from './types.js';

const { NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;

/** The options of a stream whose request goes on after its headers. */
const OPEN_STREAM: http2.ClientSessionRequestOptions = Object.freeze({ endStream: false });

/** A stream asked for before the connection was ready. */
interface Waiting {
  readonly headers: http2.OutgoingHttpHeaders;
  readonly opener: StreamOpener;
  readonly options: http2.ClientSessionRequestOptions;
}

/**
 * An HTTP/2 connection to one address (see the module documentation).
 *
 * @internal
 * @example
 * ```ts
 * const conn = new Http2Connection({ host: '127.0.0.2', port: 50051, address: '127.0.0.2:50051' });
 * conn.request({ ':method': 'POST', ':path': '/pkg.S/M' }, {
 *   opened(stream) { stream.end(); },
 *   notSent(reason) { console.log(reason); },
 * });
 * ```
 */
export class Http2Connection {
  readonly address: string;
  readonly #options: Http2ConnectionOptions;
  readonly #backoff: ReconnectBackoff;
  readonly #events = new EventStream<ConnectionEvent>();
  readonly #waiting: Waiting[] = [];
  /** Sessions not yet closed, the current one last. */
  readonly #sessions = new Set<SessionRecord>();
  #current: SessionRecord | undefined;
  #state: ConnectionState = 'connecting';
  #lastError: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #socket: net.Socket | undefined;
  #attempt = 0;
  /** Keepalive PINGs, with `keepaliveTimeMs`. */
  readonly #keepalive: Keepalive | undefined;
  /** The attempt `connectNow` started, until it ends. */
  #early: { readonly promise: Promise<void>; readonly end: () => void } | undefined;
  /** Whether `connectNow` started an attempt in the current backoff interval. */
  #earlyUsed = false;
  /** Streams open, counted only with an idle timeout. */
  #active = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  /** Called on every state change (cheaper than a subscription for the one owner). */
  onState: ((state: ConnectionState) => void) | undefined;

  constructor(options: Http2ConnectionOptions) {
    this.address = options.address;
    this.#options = options;
    this.#backoff = new ReconnectBackoff(options.backoff);
    const keepaliveMs = options.keepaliveTimeMs;
    this.#keepalive =
      keepaliveMs === undefined
        ? undefined
        : new Keepalive(
            keepaliveMs,
            options.keepaliveTimeoutMs ?? 20_000,
            options.keepalivePermitWithoutCalls === true,
            (timeoutMs) => {
              if (this.#events.observed) {
                this.#events.next({ kind: 'keepalive-timeout', address: this.address, timeoutMs });
              }
            },
          );
    this.events$ = this.#events.events$;
    this.#connect();
  }

  /** State changes, GOAWAYs and keepalive timeouts; completes on close. */
  readonly events$: Observable<ConnectionEvent>;

  get state(): ConnectionState {
    return this.#state;
  }

  /** Why the last connection attempt failed or the last session ended, if it did. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** The keepalive interval in force (doubled by each `too_many_pings`), in ms. */
  get keepaliveTimeMs(): number | undefined {
    return this.#keepalive?.intervalMs;
  }

  /**
   * Opens a stream: at once when ready, once ready when connecting, never
   * when the connection has failed or closed (`opener.notSent`). `options`
   * go to `session.request` (by default the stream stays open after the
   * headers).
   */
  request(
    headers: http2.OutgoingHttpHeaders,
    opener: StreamOpener,
    options: http2.ClientSessionRequestOptions = OPEN_STREAM,
  ): void {
    const current = this.#current;
    if (current?.usable === true) {
      this.#open(current, headers, opener, options);
      return;
    }
    if (this.#state === 'idle') this.#connect();
    if (this.#state === 'connecting') {
      this.#waiting.push({ headers, opener, options });
      return;
    }
    if (this.#state === 'closed') opener.notSent(`connection to ${this.address} is closed`, false);
    else opener.notSent(`no connection to ${this.address}: ${this.#lastError ?? 'not connected'}`, true);
  }

  /** Takes back a stream asked for and still waiting for the connection (its call ended first). */
  withdraw(opener: StreamOpener): void {
    const i = this.#waiting.findIndex((w) => w.opener === opener);
    if (i >= 0) this.#waiting.splice(i, 1);
  }

  /** Streams waiting for the connection to be ready. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Starts a connection attempt at once when the connection has failed and
   * waits out its backoff. Returns a promise that resolves when that
   * attempt ends (ready, failed or closed), or `undefined` when there is
   * nothing to start: not failed, or such an attempt was already made in
   * this backoff interval (so that calls to a dead server do not become a
   * stream of connections). While the attempt runs, returns its promise.
   */
  connectNow(): Promise<void> | undefined {
    if (this.#early !== undefined) return this.#early.promise;
    if (this.#state !== 'failed' || this.#earlyUsed) return undefined;
    this.#earlyUsed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    let end!: () => void;
    const promise = new Promise<void>((resolve) => {
      end = resolve;
    });
    this.#early = { promise, end };
    this.#connect();
    return promise;
  }

  /**
   * Closes the connection: waiting streams are not sent; open streams
   * finish on their sessions, which then close (`destroy` ends them now,
   * sockets and all). Resolves once every session has closed; without
   * `destroy`, a session the server sent GOAWAY on may wait for the server
   * to close its end (node does not finish closing it before).
   */
  close(destroy = false): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    this.#setState('closed');
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#socket?.destroy();
    this.#socket = undefined;
    this.#current = undefined;
    this.#failWaiting(`connection to ${this.address} is closed`, false);
    // a session still listed has not emitted 'close' yet (see #startSession)
    const closing: Promise<void>[] = [];
    for (const record of [...this.#sessions]) {
      record.stopKeepalive();
      closing.push(new Promise((resolve) => record.session.once('close', () => resolve())));
      if (!destroy) record.session.close();
      // its sockets too: node's session may wait for the peer otherwise (after a GOAWAY)
      else record.end?.('connection closed');
    }
    this.#events.complete();
    return Promise.all(closing).then(() => undefined);
  }

  #open(
    record: SessionRecord,
    headers: http2.OutgoingHttpHeaders,
    opener: StreamOpener,
    options: http2.ClientSessionRequestOptions,
  ): void {
    const limit = record.maxHeaderListSize;
    if (limit !== undefined && opener.tooLarge !== undefined) {
      const size = headerListSize(headers);
      if (size > limit) {
        opener.tooLarge(size, limit);
        return;
      }
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = record.session.request(headers, options);
    } catch (err) {
      // nothing left this process: the session went away in between (then the next
      // stream goes to a new one), or node refused the request itself (its headers)
      const session = record.session;
      if (session.closed || session.destroyed) {
        this.#retire(record, `session refused a new stream: ${(err as Error).message}`);
      }
      opener.notSent(`could not open an HTTP/2 stream to ${this.address}: ${(err as Error).message}`, false);
      return;
    }
    if (this.#options.idleTimeoutMs !== undefined) {
      this.#active++;
      if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
      stream.once('close', () => {
        if (--this.#active === 0) this.#armIdle();
      });
    }
    // open streams are counted only for keepalive, which pings while there are some
    const keepalive = this.#keepalive;
    if (keepalive !== undefined) {
      record.streams++;
      if (record.streams === 1) keepalive.schedule(record);
      stream.once('close', () => {
        record.streams--;
      });
    }
    opener.opened(stream, record);
  }

  #setState(state: ConnectionState, reason?: string): void {
    if (this.#state === state && reason === undefined) return;
    const changed = this.#state !== state;
    this.#state = state;
    if (state === 'ready') this.#earlyUsed = false;
    if (state !== 'connecting' && this.#early !== undefined) {
      this.#early.end();
      this.#early = undefined;
    }
    if (changed) this.onState?.(state);
    if (this.#events.observed) {
      this.#events.next(
        reason === undefined
          ? { kind: 'state', address: this.address, state }
          : { kind: 'state', address: this.address, state, reason },
      );
    }
  }

  #connect(reason?: string): void {
    if (this.#state === 'closed') return;
    this.#setState('connecting', reason);
    const attempt = ++this.#attempt;
    const timeoutMs = this.#options.connectTimeoutMs ?? 20_000;
    this.#socket = dial(this.#options, timeoutMs, {
      up: (tcp, socket, timer) => this.#startSession(attempt, tcp, socket, timer, timeoutMs),
      // Until the session exists, a failure is this attempt's; after, the
      // session's events report it (the socket is destroyed either way).
      failed: (tcp, timer, err) => {
        if (this.#socket !== tcp) return;
        clearTimeout(timer);
        this.#socket = undefined;
        if (attempt !== this.#attempt || this.#state === 'closed') return;
        this.#failed(err.message);
      },
      // a socket destroyed by close() ends its attempt without an error
      closed: (timer) => {
        if (this.#state === 'closed') clearTimeout(timer);
      },
    });
  }

  #startSession(
    attempt: number,
    tcp: net.Socket,
    socket: Duplex,
    connectTimer: NodeJS.Timeout,
    timeoutMs: number,
  ): void {
    clearTimeout(connectTimer);
    if (attempt !== this.#attempt || this.#state === 'closed' || this.#socket === undefined) {
      socket.destroy();
      tcp.destroy();
      return;
    }
    this.#socket = undefined;
    const options = this.#options;
    const window = options.flowControlWindow;
    const scheme = options.secure === undefined ? 'http' : 'https';
    const more = options.session;
    let session: http2.ClientHttp2Session;
    try {
      session = http2.connect(`${scheme}://${this.address}`, {
        maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER,
        ...more,
        createConnection: () => socket,
        ...(options.maxSessionMemory === undefined ? {} : { maxSessionMemory: options.maxSessionMemory }),
        settings: {
          enablePush: false,
          ...(window === undefined ? {} : { initialWindowSize: window }),
          ...more?.settings,
        },
      });
    } catch (err) {
      // options node refuses: this attempt fails, and says why
      socket.destroy();
      tcp.destroy();
      this.#failed(`HTTP/2 session options refused: ${(err as Error).message}`);
      return;
    }
    if (options.unref === true) session.unref();
    const record = new SessionRecord(session);
    // The end of the session, once, whichever way it is learnt: node's
    // session does not always hear of its socket's failure (a TLS alert
    // after the handshake, such as a refused client certificate), nor emit
    // its own events once destroyed before it was set up.
    let over = false;
    const ended = (reason: string): void => {
      if (!session.destroyed) session.destroy();
      socket.destroy();
      tcp.destroy();
      if (over) return;
      over = true;
      clearTimeout(timer);
      record.stopKeepalive();
      this.#sessions.delete(record);
      this.#retire(record, reason);
    };
    record.end = ended;
    const timer = setTimeout(
      () => ended(`no SETTINGS frame from the server within ${timeoutMs} ms`),
      timeoutMs,
    );
    if (options.unref === true) timer.unref();
    socket.on('error', (err: Error) => ended(err.message));
    const closed = (): void =>
      ended(record.ready ? 'connection closed' : 'connection closed before the server sent its SETTINGS');
    socket.on('close', closed);
    this.#sessions.add(record);
    this.#current = record;
    session.on('remoteSettings', (settings: http2.Settings) => {
      const limit = settings.maxHeaderListSize;
      // node reports 2^32 - 1 for a server that sets no limit
      record.maxHeaderListSize = limit === undefined || limit >= 0xffff_ffff ? undefined : limit;
    });
    session.once('remoteSettings', () => {
      clearTimeout(timer);
      if (this.#current !== record || this.#state === 'closed') return;
      if (window !== undefined) session.setLocalWindowSize(window);
      record.ready = true;
      this.#backoff.reset();
      this.#setState('ready');
      this.#flushWaiting(record);
      this.#keepalive?.schedule(record);
      this.#armIdle();
    });
    session.on('goaway', (code: number, lastStreamId: number, data?: Buffer) => {
      record.goawayLastStreamId = lastStreamId;
      const debug = data === undefined ? '' : data.toString('utf8');
      if (code === NGHTTP2_ENHANCE_YOUR_CALM && debug === 'too_many_pings') this.#keepalive?.tooManyPings();
      if (this.#events.observed) {
        this.#events.next({ kind: 'goaway', address: this.address, code, lastStreamId, debug });
      }
      this.#retire(record, `server sent GOAWAY (code ${code}${debug === '' ? '' : `, ${debug}`})`);
    });
    session.on('error', (err: Error) => this.#retire(record, err.message));
    session.on('close', closed);
    // a session that never gets anything: the socket's end closes it (and 'close' above)
    session.on('frameError', () => {});
  }

  /** Stops using `record` for new streams; replaces it when it was the current one. */
  #retire(record: SessionRecord, reason: string): void {
    const wasCurrent = this.#current === record;
    if (wasCurrent) this.#current = undefined;
    if (!record.session.closed && !record.session.destroyed) record.session.close();
    if (!wasCurrent || this.#state === 'closed') return;
    if (record.ready) {
      // a working connection ended: connect again at once
      this.#lastError = readableTlsError(reason);
      this.#connect(this.#lastError);
    } else {
      this.#failed(reason);
    }
  }

  #failed(failure: string): void {
    const reason = readableTlsError(failure);
    this.#lastError = reason;
    this.#setState('failed', reason);
    this.#failWaiting(`no connection to ${this.address}: ${reason}`, true);
    const delay = this.#backoff.next();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // a new interval: connectNow may cut the next wait short again
      this.#earlyUsed = false;
      this.#connect();
    }, delay);
    if (this.#options.unref === true) this.#timer.unref();
  }

  #flushWaiting(record: SessionRecord): void {
    const waiting = this.#waiting.splice(0);
    for (const { headers, opener, options } of waiting) {
      if (record.usable) this.#open(record, headers, opener, options);
      else this.request(headers, opener, options);
    }
  }

  /** Starts the idle timeout when there is one and no stream is open or waiting. */
  #armIdle(): void {
    const idleMs = this.#options.idleTimeoutMs;
    if (idleMs === undefined || !this.#unused()) return;
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      const record = this.#current;
      if (!this.#unused() || record === undefined) return;
      // no longer current, so its end starts no new connection
      this.#current = undefined;
      this.#setState('idle', `no call for ${idleMs} ms`);
      record.session.close();
    }, idleMs);
    if (this.#options.unref === true) this.#idleTimer.unref();
  }

  /** Ready, with no stream open or waiting. */
  #unused(): boolean {
    return this.#active === 0 && this.#waiting.length === 0 && this.#state === 'ready';
  }

  #failWaiting(reason: string, unconnected: boolean): void {
    for (const { opener } of this.#waiting.splice(0)) opener.notSent(reason, unconnected);
  }
}
