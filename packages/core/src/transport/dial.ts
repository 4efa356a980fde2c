/**
 * One connection attempt's way to the socket an HTTP/2 session runs over: a
 * TCP socket with Nagle off (to a CONNECT proxy, then tunnelled through it,
 * when there is one), upgraded by the connection's `SecureUpgrade` (TLS)
 * when it has one, all within the attempt's timeout.
 *
 * @internal
 * @module
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { openTunnel } from './proxy.js';
import type { Http2ConnectionOptions } from './types.js';

/** What {@link dial} tells the connection of its attempt. */
export interface DialHooks {
  /** `socket` (TLS over `tcp`, or `tcp` itself) is ready for a session; `timer` is the attempt's timeout. */
  up(tcp: net.Socket, socket: Duplex, timer: NodeJS.Timeout): void;
  /** The attempt failed or timed out before a session (`tcp` is destroyed). */
  failed(tcp: net.Socket, timer: NodeJS.Timeout, err: Error): void;
  /** `tcp` closed, for whatever reason. */
  closed(timer: NodeJS.Timeout): void;
}

/**
 * Starts a connection attempt to `options.host` (or its proxy) that fails
 * after `timeoutMs`; returns its TCP socket.
 */
export function dial(options: Http2ConnectionOptions, timeoutMs: number, hooks: DialHooks): net.Socket {
  const proxy = options.proxy;
  const socket = net.connect({
    host: proxy?.host ?? options.host,
    port: proxy?.port ?? options.port,
    noDelay: true,
  });
  const timer = setTimeout(
    () => fail(new Error(`connection attempt timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  if (options.unref === true) {
    socket.unref();
    timer.unref();
  }
  socket.once('close', () => hooks.closed(timer));
  const fail = (err: Error): void => {
    socket.destroy();
    hooks.failed(socket, timer, err);
  };
  socket.on('error', fail);
  const failed = (err: unknown): void => fail(err instanceof Error ? err : new Error(String(err)));
  const upgrade = (): void => {
    const secure = options.secure;
    if (secure === undefined) {
      hooks.up(socket, socket, timer);
      return;
    }
    secure(socket).then((secured) => hooks.up(socket, secured, timer), failed);
  };
  socket.once('connect', () => {
    if (proxy === undefined) upgrade();
    else openTunnel(socket, options.address, proxy).then(upgrade, failed);
  });
  return socket;
}
