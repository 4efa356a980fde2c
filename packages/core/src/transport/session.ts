/**
 * One HTTP/2 session of a connection (`SessionRecord`: whether it is ready,
 * its GOAWAY, the server's header list limit), its keepalive PINGs
 * (`Keepalive`, gRPC A8) and the header list size a stream's headers are
 * checked against.
 *
 * @internal
 * @module
 */
import type * as http2 from 'node:http2';
import type { SessionInfo } from './types.js';

/** One session and what its streams may ask of it later. */
export class SessionRecord implements SessionInfo {
  readonly session: http2.ClientHttp2Session;
  goawayLastStreamId: number | undefined;
  ready = false;
  /** Streams opened on it and not yet closed (counted only with keepalive on). */
  streams = 0;
  pingTimer: NodeJS.Timeout | undefined;
  pingTimeout: NodeJS.Timeout | undefined;
  /** The server's SETTINGS_MAX_HEADER_LIST_SIZE, when it sets one. */
  maxHeaderListSize: number | undefined;
  /** Ends the session and its sockets at once. */
  end: ((reason: string) => void) | undefined;

  constructor(session: http2.ClientHttp2Session) {
    this.session = session;
  }

  get lost(): boolean {
    return this.session.destroyed;
  }

  get usable(): boolean {
    return (
      this.ready && this.goawayLastStreamId === undefined && !this.session.closed && !this.session.destroyed
    );
  }

  /** Clears its keepalive timers (the next PING, the wait for an answer). */
  stopKeepalive(): void {
    if (this.pingTimer !== undefined) clearTimeout(this.pingTimer);
    if (this.pingTimeout !== undefined) clearTimeout(this.pingTimeout);
    this.pingTimer = undefined;
    this.pingTimeout = undefined;
  }
}

/** A timer's longest delay (a larger one fires at once). */
const MAX_DELAY_MS = 2_147_483_647;

/**
 * A connection's keepalive: a PING on a ready session after `intervalMs`
 * without one, while it has streams open (or always, `withoutCalls`); one
 * unanswered within `timeoutMs` destroys the session.
 */
export class Keepalive {
  /** The interval in force, in ms (doubled by each `too_many_pings`). */
  intervalMs: number;
  readonly #timeoutMs: number;
  readonly #withoutCalls: boolean;
  readonly #timedOut: (timeoutMs: number) => void;

  constructor(
    intervalMs: number,
    timeoutMs: number,
    withoutCalls: boolean,
    timedOut: (timeoutMs: number) => void,
  ) {
    this.intervalMs = intervalMs;
    this.#timeoutMs = timeoutMs;
    this.#withoutCalls = withoutCalls;
    this.#timedOut = timedOut;
  }

  /** The server said `too_many_pings`: ping half as often from now on. */
  tooManyPings(): void {
    this.intervalMs = Math.min(this.intervalMs * 2, MAX_DELAY_MS);
  }

  /** Arms the next PING on `record`, unless one is armed or awaited, or it needs none. */
  schedule(record: SessionRecord): void {
    if (record.pingTimer !== undefined || record.pingTimeout !== undefined) return;
    if (!record.ready || (record.streams === 0 && !this.#withoutCalls)) return;
    record.pingTimer = setTimeout(() => {
      record.pingTimer = undefined;
      this.#ping(record);
    }, this.intervalMs);
    record.pingTimer.unref?.();
  }

  #ping(record: SessionRecord): void {
    const session = record.session;
    if (session.closed || session.destroyed) return;
    if (record.streams === 0 && !this.#withoutCalls) return;
    const timeoutMs = this.#timeoutMs;
    record.pingTimeout = setTimeout(() => {
      record.pingTimeout = undefined;
      this.#timedOut(timeoutMs);
      session.destroy();
    }, timeoutMs);
    let sent = false;
    try {
      sent = session.ping((err) => {
        if (record.pingTimeout !== undefined) clearTimeout(record.pingTimeout);
        record.pingTimeout = undefined;
        if (err === null) this.schedule(record);
      });
    } catch {
      sent = false;
    }
    if (!sent) {
      clearTimeout(record.pingTimeout);
      record.pingTimeout = undefined;
    }
  }
}

/** The size of a header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2). */
export function headerListSize(headers: http2.OutgoingHttpHeaders): number {
  let size = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      for (const v of value) size += name.length + Buffer.byteLength(String(v)) + 32;
    } else {
      size += name.length + Buffer.byteLength(String(value)) + 32;
    }
  }
  return size;
}
