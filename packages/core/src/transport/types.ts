/**
 * What an HTTP/2 connection (`connection.ts`) says and takes: its states
 * and events, what a stream learns of its session, the opener a stream
 * request is handed as, the TLS upgrade and the connection's options.
 *
 * @internal
 * @module
 */
import type * as http2 from 'node:http2';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ReconnectBackoffOptions } from './backoff.js';
import type { HttpProxy } from './proxy.js';

/**
 * Where a connection is:
 * - `connecting`: a socket or session is being set up (or none was asked for yet);
 * - `ready`: a session has the server's SETTINGS and takes streams;
 * - `failed`: the last attempt failed; the next waits for the backoff;
 * - `idle`: its session was closed after the idle timeout; the next stream connects again;
 * - `closed`: closed for good.
 *
 * @example
 * ```ts
 * endpoint.events$.subscribe((e) => {
 *   if (e.kind === 'state' && e.state === 'failed') console.log(e.reason);
 * });
 * ```
 */
export type ConnectionState = 'connecting' | 'ready' | 'failed' | 'idle' | 'closed';

/**
 * What a connection reports as it happens (what `GRPC_TRACE` would show a
 * grpc-js user).
 *
 * @example
 * ```ts
 * connection.events$.subscribe((e) => { if (e.kind === 'goaway') console.log(e.code, e.debug); });
 * ```
 */
export type ConnectionEvent =
  | {
      readonly kind: 'state';
      readonly address: string;
      readonly state: ConnectionState;
      /** Why, for `failed` and `idle` (and for a `connecting` after a lost session). */
      readonly reason?: string;
    }
  | {
      readonly kind: 'goaway';
      readonly address: string;
      /** The HTTP/2 error code (0 is a graceful GOAWAY). */
      readonly code: number;
      readonly lastStreamId: number;
      /** The opaque data, as text (`too_many_pings`, `max_age`…). */
      readonly debug: string;
    }
  | { readonly kind: 'keepalive-timeout'; readonly address: string; readonly timeoutMs: number };

/**
 * What a stream can learn of the session it was opened on, once it ends.
 *
 * @internal
 */
export interface SessionInfo {
  /** The last stream id of the GOAWAY the session got, if it got one. */
  readonly goawayLastStreamId: number | undefined;
  /**
   * Whether the session was torn down under its streams (socket error or
   * close, keepalive timeout, a GOAWAY with an error code) rather than
   * closed gracefully once they finished.
   */
  readonly lost: boolean;
}

/**
 * A stream request handed to {@link Http2Connection.request}: exactly one of
 * its two methods is called.
 *
 * @internal
 */
export interface StreamOpener {
  /** The stream was opened on a ready session. */
  opened(stream: http2.ClientHttp2Stream, session: SessionInfo): void;
  /**
   * No stream could be opened: nothing was sent. `unconnected` is true when
   * that is because the connection failed (it could not connect), false
   * when for a reason of this process (the connection was closed here, or
   * the session refused a new stream).
   */
  notSent(reason: string, unconnected: boolean): void;
  /**
   * Called instead of `opened` when the request's header list is larger
   * than the server's SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2 sizes:
   * each field's name and value plus 32): nothing was sent, since a server
   * that gets such a block may end the whole connection (a C-core server
   * closes it, a Node.js one sends GOAWAY COMPRESSION_ERROR), and every
   * stream on it with it. Without this method the size is not checked.
   */
  tooLarge?(size: number, limit: number): void;
}

/**
 * Turns a connected TCP socket into the socket the session runs over (TLS).
 *
 * @internal
 */
export type SecureUpgrade = (socket: net.Socket) => Promise<Duplex>;

/**
 * Options of {@link Http2Connection}.
 *
 * @internal
 */
export interface Http2ConnectionOptions {
  /** `host` and `port` to connect to. */
  readonly host: string;
  readonly port: number;
  /** The address, as reported in events (`host:port`). */
  readonly address: string;
  /** The TLS upgrade; plaintext without it. */
  readonly secure?: SecureUpgrade | undefined;
  /** An HTTP CONNECT proxy to tunnel through (see `proxy.ts`). */
  readonly proxy?: HttpProxy | undefined;
  /** Reconnect backoff. */
  readonly backoff?: ReconnectBackoffOptions | undefined;
  /** How long one connection attempt may take, in ms; default 20,000 (gRPC's minimum connect timeout). */
  readonly connectTimeoutMs?: number | undefined;
  /** Keepalive PING interval, in ms; off when absent. */
  readonly keepaliveTimeMs?: number | undefined;
  /** How long a keepalive PING may go unanswered, in ms; default 20,000. */
  readonly keepaliveTimeoutMs?: number | undefined;
  /** Ping also while no stream is open. */
  readonly keepalivePermitWithoutCalls?: boolean | undefined;
  /** nghttp2's memory cap per session, in MB (`maxSessionMemory`). */
  readonly maxSessionMemory?: number | undefined;
  /** The stream and connection flow-control window this side offers, in bytes. */
  readonly flowControlWindow?: number | undefined;
  /** Close the session after this long without a stream (see the module documentation); never when absent. */
  readonly idleTimeoutMs?: number | undefined;
  /**
   * More options for `http2.connect` (`settings` are merged over this
   * connection's own; `createConnection` is this connection's).
   */
  readonly session?: http2.ClientSessionOptions | undefined;
  /** Its sockets, sessions and timers never keep the process alive on their own. */
  readonly unref?: boolean | undefined;
}
