/**
 * Addresses as discovery keys. A key is `host:port` with IPv6 in brackets
 * (`[2001:db8::1]:50051`), the form grpc-js accepts as a target. Host names
 * follow RFC 1123 (letters, digits and hyphens; labels of 1 to 63
 * characters, 253 in all); IP literals are checked with `node:net` and IPv6
 * is written in its canonical compressed lower-case form (RFC 5952), so
 * two spellings of one address are one key.
 *
 * @module
 */
import { isIP } from 'node:net';
import { InvalidAddressError } from './errors.js';

/**
 * One discovered server: the address calls go to, an optional weight (from a
 * DNS SRV record or a registry entry) and optional metadata.
 *
 * @example
 * ```ts
 * const a: DiscoveredAddress = { address: '10.0.0.7:50051', weight: 10, metadata: { zone: 'b' } };
 * ```
 */
export interface DiscoveredAddress {
  /** `host:port`, IPv6 as `[::1]:50051`. */
  readonly address: string;
  /** A relative weight, when the registry gives one. */
  readonly weight?: number;
  /** Free-form data from the registry (JSON values). */
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/**
 * A parsed address.
 *
 * @example
 * ```ts
 * const hp: HostPort = { host: '::1', port: 50051, family: 6 };
 * ```
 */
export interface HostPort {
  readonly host: string;
  readonly port: number;
  /** 4 or 6 for an IP literal, 0 for a host name. */
  readonly family: 0 | 4 | 6;
}

const label = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;
const serviceLabel = /^_?(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

function checkName(name: string, pattern: RegExp): boolean {
  if (name.length === 0 || name.length > 254) return false;
  const body = name.endsWith('.') ? name.slice(0, -1) : name;
  if (body.length === 0 || body.length > 253) return false;
  const labels = body.split('.');
  if (!labels.every((l) => pattern.test(l))) return false;
  // All-numeric dotted names look like IPv4 and are not host names.
  return !labels.every((l) => /^\d+$/.test(l));
}

/**
 * Whether `host` is a host name by RFC 1123 (a trailing dot is allowed).
 * IP literals are not host names; see {@link isHost}.
 *
 * @example
 * ```ts
 * isHostName('orders.internal'); // true
 * isHostName('-bad-.example');   // false
 * ```
 */
export function isHostName(host: string): boolean {
  return checkName(host, label);
}

/**
 * Whether `name` is a DNS name whose labels may start with an underscore, as
 * SRV owner names do (`_grpc._tcp.orders.internal`).
 *
 * @example
 * ```ts
 * isServiceName('_grpc._tcp.orders.internal'); // true
 * ```
 */
export function isServiceName(name: string): boolean {
  return checkName(name, serviceLabel);
}

/**
 * Whether `host` is a host name or an IP literal (without brackets).
 *
 * @example
 * ```ts
 * isHost('::1'); // true
 * ```
 */
export function isHost(host: string): boolean {
  return isIP(host) !== 0 || isHostName(host);
}

/**
 * Whether `port` is an integer from 1 to 65535.
 *
 * @example
 * ```ts
 * isPort(50051); // true
 * isPort(0);     // false
 * ```
 */
export function isPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;
}

/** Canonical form of a host: lower case, IPv6 compressed (RFC 5952). */
function canonicalHost(host: string, family: 0 | 4 | 6): string {
  if (family === 6 && !host.includes('%')) {
    try {
      return new URL(`http://[${host}]/`).hostname.slice(1, -1);
    } catch {
      return host.toLowerCase();
    }
  }
  return host.toLowerCase();
}

/**
 * Formats a host and port as a discovery key and grpc-js target:
 * `host:port`, IPv6 as `[addr]:port` in canonical form.
 *
 * @example
 * ```ts
 * formatAddress('2001:DB8:0:0::1', 443); // '[2001:db8::1]:443'
 * ```
 */
export function formatAddress(host: string, port: number): string {
  const family = isIP(host) as 0 | 4 | 6;
  const h = canonicalHost(host, family);
  return family === 6 ? `[${h}]:${port}` : `${h}:${port}`;
}

/**
 * Parses `host:port` or `[v6]:port`. Throws {@link InvalidAddressError}
 * naming the input and what is wrong with it.
 *
 * @example
 * ```ts
 * parseAddress('[::1]:50051'); // { host: '::1', port: 50051, family: 6 }
 * ```
 */
export function parseAddress(input: unknown, source?: string): HostPort {
  const fail = (reason: string): never => {
    throw new InvalidAddressError(input, reason, { source });
  };
  if (typeof input !== 'string') return fail('expected a "host:port" string');
  const text = input.trim();
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return fail('expected "[ipv6]:port"');
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (isIP(host) !== 6) return fail(`"${host}" is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return fail('the port is missing');
    if (text.indexOf(':') !== colon)
      return fail('an IPv6 address must be written in brackets, as "[::1]:50051"');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) return fail(`port "${portText}" is not a number from 1 to 65535`);
  const port = Number(portText);
  if (!isPort(port)) return fail(`port ${port} is out of range 1..65535`);
  const family = isIP(host) as 0 | 4 | 6;
  if (family === 0 && !isHostName(host))
    return fail(`"${host}" is neither an IP address nor an RFC 1123 host name`);
  return { host: canonicalHost(host, family), port, family };
}

/**
 * Normalizes a registry entry (an address string, or an object with
 * `address` and optional `weight` and `metadata`) into a
 * {@link DiscoveredAddress} with a canonical address. Throws
 * {@link InvalidAddressError} for anything else.
 *
 * @example
 * ```ts
 * toDiscoveredAddress('[0:0::1]:80'); // { address: '[::1]:80' }
 * toDiscoveredAddress({ address: 'a.internal:80', weight: 5 });
 * ```
 */
export function toDiscoveredAddress(input: unknown, source?: string): DiscoveredAddress {
  if (typeof input === 'string') {
    const hp = parseAddress(input, source);
    return { address: formatAddress(hp.host, hp.port) };
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidAddressError(input, 'expected a "host:port" string or an object with an "address"', {
      source,
    });
  }
  const entry = input as { address?: unknown; weight?: unknown; metadata?: unknown };
  const hp = parseAddress(entry.address, source);
  const address = formatAddress(hp.host, hp.port);
  const { weight, metadata } = entry;
  if (weight !== undefined && (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0)) {
    throw new InvalidAddressError(input, `weight ${String(weight)} is not a finite number >= 0`, { source });
  }
  if (
    metadata !== undefined &&
    (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
  ) {
    throw new InvalidAddressError(input, 'metadata must be an object', { source });
  }
  return {
    address,
    ...(weight === undefined ? {} : { weight }),
    ...(metadata === undefined ? {} : { metadata: metadata as Record<string, unknown> }),
  };
}
