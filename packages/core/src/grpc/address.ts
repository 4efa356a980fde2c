/**
 * Parsing and formatting of `host:port` addresses, IPv6 in brackets as
 * grpc-js expects (`[::1]:50051`).
 *
 * @module
 */
import { isIP } from 'node:net';
import { ConfigError } from '../errors.js';

/** A parsed address. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
  /** 4 or 6 for an IP literal, 0 for a host name. */
  readonly family: 0 | 4 | 6;
}

const hostLabel = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/i;

/** Whether `host` is a valid DNS name (RFC 1123 labels, at most 253 characters). */
export function isHostName(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  return name.split('.').every((label) => hostLabel.test(label));
}

/**
 * Parses `host:port`, `[v6]:port` or a bare IPv6 literal with a port in
 * brackets. Throws {@link ConfigError} naming `where` and the input.
 *
 * @example
 * ```ts
 * parseAddress('[::1]:50051', 'grpcEndpoint'); // { host: '::1', port: 50051, family: 6 }
 * ```
 */
export function parseAddress(address: unknown, where: string, option = 'address'): HostPort {
  const expected = 'a "host:port" string with a port from 1 to 65535 (IPv6 as "[::1]:50051")';
  if (typeof address !== 'string') throw new ConfigError(where, option, address, expected);
  let host: string;
  let portText: string;
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close < 0 || address[close + 1] !== ':') throw new ConfigError(where, option, address, expected);
    host = address.slice(1, close);
    portText = address.slice(close + 2);
    if (isIP(host) !== 6) throw new ConfigError(where, option, address, expected);
  } else {
    const colon = address.lastIndexOf(':');
    if (colon <= 0 || address.indexOf(':') !== colon) throw new ConfigError(where, option, address, expected);
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) throw new ConfigError(where, option, address, expected);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new ConfigError(where, option, address, expected);
  const ip = isIP(host);
  if (ip === 0 && !isHostName(host)) throw new ConfigError(where, option, address, expected);
  return { host, port, family: ip as 0 | 4 | 6 };
}

/**
 * Formats a host and port as grpc-js expects.
 *
 * @example
 * ```ts
 * formatAddress('::1', 50051); // '[::1]:50051'
 * ```
 */
export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The grpc-js target for an address: `ipv4:`/`ipv6:` for IP literals (no DNS), `dns:` otherwise. */
export function grpcTarget(hp: HostPort): string {
  if (hp.family === 4) return `ipv4:${hp.host}:${hp.port}`;
  if (hp.family === 6) return `ipv6:[${hp.host}]:${hp.port}`;
  return `dns:${hp.host}:${hp.port}`;
}
