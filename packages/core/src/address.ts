/**
 * Addresses: parsing, checking and the one canonical text form of
 * `host:port`, with IPv6 in brackets as grpc-js expects (`[::1]:50051`).
 *
 * An address is a key in several places (the balancer's ready set, the
 * retry layer's list of endpoints to avoid, the outlier detector's
 * entries, discovery's changes), so every spelling of one address must
 * give one text. {@link formatAddress} writes:
 * - IPv6 in the canonical form of RFC 5952 (section 4): lower-case hex,
 *   no leading zeros in a group, the longest run of two or more zero
 *   groups shortened to `::` (the leftmost run when two are as long), a
 *   single zero group written as `0`; an IPv4-mapped address
 *   (`::ffff:0:0/96`, RFC 4291 section 2.5.5.2) in the mixed notation that
 *   RFC 5952 section 5 recommends, `::ffff:192.0.2.1`. Other addresses
 *   with an IPv4 tail (the deprecated IPv4-compatible `::/96`) are written
 *   in hex, as RFC 5952 recommends mixed notation only where a well-known
 *   prefix says the tail is an IPv4 address.
 * - IPv4 in dotted decimal, as `node:net` accepts it (no leading zeros).
 * - host names in lower case (DNS names are case-insensitive, RFC 4343).
 *
 * IPv6 zone ids (`fe80::1%eth0`, RFC 4007) are refused: grpc-js 1.14
 * cannot connect to a scoped address (measured: `ipv6:[fe80::…%eth0]:port`
 * never connects where `node:net` does), and an interface name is
 * meaningful on one host only, so it cannot be part of a portable key.
 *
 * Host names follow RFC 1123: labels of letters, digits and hyphens,
 * 1 to 63 characters, not starting or ending with a hyphen, 253 characters
 * in all (a trailing dot is allowed); an all-numeric dotted name looks like
 * IPv4 and is refused.
 *
 * @module
 */
import { isIP } from 'node:net';
import { ConfigError } from './errors.js';

/**
 * A parsed address: the host in canonical form (see the module
 * documentation), the port and the family.
 *
 * @example
 * ```ts
 * const hp: HostPort = { host: '::1', port: 50051, family: 6 };
 * ```
 */
export interface HostPort {
  /** An IP literal (IPv6 without brackets) or a host name, in canonical form. */
  readonly host: string;
  /** From 1 to 65535. */
  readonly port: number;
  /** 4 or 6 for an IP literal, 0 for a host name. */
  readonly family: 0 | 4 | 6;
}

/**
 * What {@link tryParseAddress} found: the address, or why it is not one.
 *
 * @example
 * ```ts
 * const r: AddressParse = tryParseAddress('[::1]:0');
 * if (!r.ok) console.warn(r.reason); // 'port 0 is out of range 1..65535'
 * ```
 */
export type AddressParse =
  | { readonly ok: true; readonly address: HostPort }
  | { readonly ok: false; readonly reason: string };

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
 * isHostName('under_score.example'); // false
 * ```
 */
export function isHostName(host: string): boolean {
  return checkName(host, label);
}

/**
 * Whether `name` is a DNS name whose labels may start with an underscore, as
 * SRV owner names do (`_grpc._tcp.orders.internal`, RFC 2782).
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
 * Whether `host` is a host name or an IP literal (IPv6 without brackets
 * and without a zone id).
 *
 * @example
 * ```ts
 * isHost('::1');          // true
 * isHost('fe80::1%eth0'); // false: zone ids are refused
 * ```
 */
export function isHost(host: string): boolean {
  return ipFamily(host) !== 0 || isHostName(host);
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

/** 4 or 6 for an IP literal without a zone id, else 0. */
function ipFamily(host: string): 0 | 4 | 6 {
  return host.includes('%') ? 0 : (isIP(host) as 0 | 4 | 6);
}

/** The eight 16-bit groups of an IPv6 literal that `node:net` accepts (no zone id). */
function ipv6Groups(text: string): number[] {
  let body = text;
  const tail: number[] = [];
  const lastColon = body.lastIndexOf(':');
  if (body.includes('.', lastColon)) {
    const [a = 0, b = 0, c = 0, d = 0] = body
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    tail.push((a << 8) | b, (c << 8) | d);
    body = body.slice(0, body.endsWith('::', lastColon + 1) ? lastColon + 1 : lastColon);
  }
  const hex = (part: string | undefined): number[] =>
    part === undefined || part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16));
  const [left, right] = body.split('::');
  const head = hex(left);
  if (right === undefined) return [...head, ...tail];
  const rest = hex(right);
  const zeros = new Array<number>(8 - head.length - rest.length - tail.length).fill(0);
  return [...head, ...zeros, ...rest, ...tail];
}

/** RFC 5952 text of eight 16-bit groups. */
function formatIPv6(groups: readonly number[]): string {
  const at = (i: number): number => groups[i] ?? 0;
  if (groups.slice(0, 5).every((g) => g === 0) && at(5) === 0xffff) {
    return `::ffff:${at(6) >> 8}.${at(6) & 0xff}.${at(7) >> 8}.${at(7) & 0xff}`;
  }
  let best = -1;
  let bestLength = 1; // a single zero group is not shortened
  for (let i = 0; i < 8; ) {
    if (at(i) !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && at(end) === 0) end++;
    if (end - i > bestLength) {
      best = i;
      bestLength = end - i;
    }
    i = end;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
}

/**
 * The canonical form of a host: IPv6 by RFC 5952 (lower case, shortest,
 * IPv4-mapped as `::ffff:1.2.3.4`), host names in lower case, IPv4 as
 * given. Anything else (a zone id, an invalid name) is returned lower-cased
 * and unchecked; {@link tryParseAddress} is the check.
 *
 * @example
 * ```ts
 * canonicalHost('2001:DB8:0:0:0:0:0:1'); // '2001:db8::1'
 * canonicalHost('0:0:0:0:0:ffff:7f00:1'); // '::ffff:127.0.0.1'
 * canonicalHost('Orders.Internal');     // 'orders.internal'
 * ```
 */
export function canonicalHost(host: string): string {
  return ipFamily(host) === 6 ? formatIPv6(ipv6Groups(host)) : host.toLowerCase();
}

/**
 * Formats a host and port as a key and as grpc-js expects it:
 * `host:port`, IPv6 as `[addr]:port`, the host in canonical form (see
 * {@link canonicalHost}).
 *
 * @example
 * ```ts
 * formatAddress('2001:DB8:0:0::1', 443);  // '[2001:db8::1]:443'
 * formatAddress('0:0:0:0:0:0:0:1', 50051); // '[::1]:50051'
 * formatAddress('10.0.0.7', 50051);       // '10.0.0.7:50051'
 * ```
 */
export function formatAddress(host: string, port: number): string {
  const h = canonicalHost(host);
  return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`;
}

/**
 * The parts of `host:port`, `[v6]:port` or `[v6]`, split by their syntax
 * alone: nothing is checked, so each caller judges the host and the port
 * text with its own rules and words. The host of `[v6]` is what stands in
 * the brackets; an unbracketed text with two colons or more is all host
 * (an IPv6 address written without brackets); `undefined` when a bracket
 * is not closed or something other than `:port` follows it.
 *
 * @internal
 * @example
 * ```ts
 * splitHostPort('[::1]:53');  // { host: '::1', port: '53', bracketed: true }
 * splitHostPort('10.0.0.2');  // { host: '10.0.0.2', port: undefined, bracketed: false }
 * splitHostPort('fd00::2');   // { host: 'fd00::2', port: undefined, bracketed: false }
 * splitHostPort('[::1]x:53'); // undefined
 * ```
 */
export function splitHostPort(
  input: string,
): { readonly host: string; readonly port: string | undefined; readonly bracketed: boolean } | undefined {
  if (input.startsWith('[')) {
    const close = input.indexOf(']');
    if (close < 0) return undefined;
    const host = input.slice(1, close);
    if (close === input.length - 1) return { host, port: undefined, bracketed: true };
    if (input[close + 1] !== ':') return undefined;
    return { host, port: input.slice(close + 2), bracketed: true };
  }
  const colon = input.lastIndexOf(':');
  if (colon < 0 || input.indexOf(':') !== colon) return { host: input, port: undefined, bracketed: false };
  return { host: input.slice(0, colon), port: input.slice(colon + 1), bracketed: false };
}

/**
 * Parses `host:port` or `[ipv6]:port` without throwing: the address with
 * its host in canonical form, or the reason it is not an address. Nothing
 * is trimmed: surrounding white space is an error.
 *
 * @example
 * ```ts
 * tryParseAddress('[0:0::1]:80');   // { ok: true, address: { host: '::1', port: 80, family: 6 } }
 * tryParseAddress('orders.internal'); // { ok: false, reason: 'the port is missing' }
 * ```
 */
export function tryParseAddress(input: unknown): AddressParse {
  const fail = (reason: string): AddressParse => ({ ok: false, reason });
  if (typeof input !== 'string') return fail('expected a "host:port" string');
  const split = splitHostPort(input);
  if (split === undefined) return fail('expected "[ipv6]:port"');
  const { host, port: portText, bracketed } = split;
  if (portText === undefined) {
    if (bracketed) return fail('expected "[ipv6]:port"');
    return fail(
      host.includes(':')
        ? 'an IPv6 address must be written in brackets, as "[::1]:50051"'
        : 'the port is missing',
    );
  }
  if (bracketed) {
    if (host.includes('%') && isIP(host) === 6) {
      return fail(
        `IPv6 zone id "${host.slice(host.indexOf('%'))}" is not supported (grpc-js cannot connect to a scoped address)`,
      );
    }
    if (ipFamily(host) !== 6) return fail(`"${host}" is not an IPv6 address`);
  }
  if (!/^\d{1,5}$/.test(portText)) return fail(`port "${portText}" is not a number from 1 to 65535`);
  const port = Number(portText);
  if (!isPort(port)) return fail(`port ${port} is out of range 1..65535`);
  const family = ipFamily(host);
  if (family === 0 && !isHostName(host)) {
    return fail(`"${host}" is neither an IP address nor an RFC 1123 host name`);
  }
  return { ok: true, address: { host: canonicalHost(host), port, family } };
}

/**
 * Parses `host:port` or `[ipv6]:port`, the host in canonical form. Throws
 * {@link ConfigError} naming `where`, the option, the input and what is
 * wrong with it.
 *
 * @example
 * ```ts
 * parseAddress('[0:0::1]:50051', 'grpcEndpoint'); // { host: '::1', port: 50051, family: 6 }
 * parseAddress('orders:0', 'grpcEndpoint');
 * // ConfigError: grpcEndpoint: option "address" must be a "host:port" string with a port from 1 to
 * // 65535 (IPv6 as "[::1]:50051"), but port 0 is out of range 1..65535, got "orders:0"
 * ```
 */
export function parseAddress(input: unknown, where: string, option = 'address'): HostPort {
  const parsed = tryParseAddress(input);
  if (parsed.ok) return parsed.address;
  const expected = 'a "host:port" string with a port from 1 to 65535 (IPv6 as "[::1]:50051")';
  throw new ConfigError(
    where,
    option,
    input,
    typeof input === 'string' ? `${expected}, but ${parsed.reason}` : expected,
  );
}

/**
 * The grpc-js target for an address: `ipv4:`/`ipv6:` for IP literals (no
 * DNS lookup), `dns:` for a host name.
 *
 * @example
 * ```ts
 * grpcTarget(parseAddress('[::1]:50051', 'example'));      // 'ipv6:[::1]:50051'
 * grpcTarget(parseAddress('orders.internal:443', 'example')); // 'dns:orders.internal:443'
 * ```
 */
export function grpcTarget(hp: HostPort): string {
  if (hp.family === 4) return `ipv4:${hp.host}:${hp.port}`;
  if (hp.family === 6) return `ipv6:[${hp.host}]:${hp.port}`;
  return `dns:${hp.host}:${hp.port}`;
}
