/**
 * Target names in gRPC's own syntax (gRPC's naming document, as grpc-js
 * reads it), parsed into what the one-call channel discovers:
 *
 * - `dns:///orders.internal:50051`, `dns:orders.internal:50051`, and a bare
 *   `orders.internal:50051`: every address the name resolves to, asking the
 *   operating system's resolver;
 * - `dns://10.0.0.2:53/orders.internal:50051`: the same, asking the DNS
 *   server named in the authority (an IP address, port 53 when none is
 *   written; IPv6 in brackets);
 * - `ipv4:10.0.0.7:50051,10.0.0.8:50051` and `ipv6:[::1]:50051,[::2]:50051`:
 *   a fixed list of addresses, no lookup (only these schemes list: a list
 *   written without one is refused with an error saying so);
 * - `etcd://10.0.0.5:2379,10.0.0.6:2379/services/orders/`: the addresses
 *   registered under a key prefix in etcd (list, then watch), from the etcd
 *   members named in the authority (plain HTTP; for TLS or auth, pass your
 *   own `etcd` source as the `discovery` option);
 * - `xds:///orders`: the endpoints an xDS management server (a service
 *   mesh's control plane) gives for the listener `orders`, with the
 *   bootstrap from `GRPC_XDS_BOOTSTRAP` or `GRPC_XDS_BOOTSTRAP_CONFIG` (for
 *   a bootstrap in code, pass your own `xds` source as the `discovery`
 *   option).
 *
 * Unlike gRPC, which falls back to port 443, a target must name its port:
 * a service listening on 443 is rare inside a cluster, and a silent 443 is
 * a connection that never succeeds. Every failure is an
 * {@link InvalidTargetError} that quotes the target and says which part is
 * wrong.
 *
 * @module
 */
import { GrpcTowerError, Status, formatAddress, tryParseAddress } from '@grpc-tower/core';
import { splitHostPort } from '@grpc-tower/core/internal';
import { isIP } from 'node:net';

/**
 * A target that asks DNS: the name, its port, and the DNS server from the
 * target's authority, if it named one.
 *
 * @example
 * ```ts
 * const t = parseTarget('dns://10.0.0.2/orders.internal:50051') as DnsTarget;
 * t.host; // 'orders.internal'
 * t.dnsServer; // '10.0.0.2:53'
 * ```
 */
export interface DnsTarget {
  readonly scheme: 'dns';
  /** The name to resolve (or an IP literal, which resolves to itself), canonical. */
  readonly host: string;
  /** The port every resolved address is dialled on. */
  readonly port: number;
  /** `ip:port` (IPv6 as `[ip]:port`) of the DNS server to ask; `undefined` for the system's resolver. */
  readonly dnsServer: string | undefined;
  /** The target in canonical form, such as `dns:///orders.internal:50051`. */
  readonly canonical: string;
}

/**
 * A fixed list of addresses (`ipv4:` or `ipv6:`), each `host:port`
 * (IPv6 as `[addr]:port`).
 *
 * @example
 * ```ts
 * const t = parseTarget('ipv4:10.0.0.7:50051,10.0.0.8:50051') as AddressListTarget;
 * t.addresses; // ['10.0.0.7:50051', '10.0.0.8:50051']
 * ```
 */
export interface AddressListTarget {
  readonly scheme: 'ipv4' | 'ipv6';
  /** The addresses, canonical and without duplicates, in the order written. */
  readonly addresses: readonly string[];
  /** The target in canonical form, such as `ipv4:10.0.0.7:50051,10.0.0.8:50051`. */
  readonly canonical: string;
}

/**
 * A key prefix in etcd, and the etcd members to ask.
 *
 * @example
 * ```ts
 * const t = parseTarget('etcd://10.0.0.5:2379/services/orders/') as EtcdTarget;
 * t.endpoints; // ['http://10.0.0.5:2379']
 * t.prefix; // '/services/orders/'
 * ```
 */
export interface EtcdTarget {
  readonly scheme: 'etcd';
  /** The etcd members, as `http://host:port` URLs. */
  readonly endpoints: readonly string[];
  /** The key prefix, from the `/` after the authority to the end. */
  readonly prefix: string;
  /** The target in canonical form. */
  readonly canonical: string;
}

/**
 * A listener name to ask an xDS management server about.
 *
 * @example
 * ```ts
 * const t = parseTarget('xds:///orders.shop:50051') as XdsTarget;
 * t.name; // 'orders.shop:50051'
 * ```
 */
export interface XdsTarget {
  readonly scheme: 'xds';
  /** The Listener name: the path after `xds:///`. */
  readonly name: string;
  /** The target in canonical form, `xds:///name`. */
  readonly canonical: string;
}

/** What {@link parseTarget} returns. */
export type Target = DnsTarget | AddressListTarget | EtcdTarget | XdsTarget;

/** The schemes a target may name. */
export const TARGET_SCHEMES = ['dns', 'ipv4', 'ipv6', 'etcd', 'xds'] as const;

/**
 * The part of a target that {@link InvalidTargetError} found wrong.
 *
 * @example
 * ```ts
 * const part: TargetPart = 'port';
 * ```
 */
export type TargetPart = 'target' | 'scheme' | 'authority' | 'host' | 'port' | 'address list' | 'prefix';

/**
 * A target name that cannot be used: quotes the target and says which part
 * is wrong and how to write it. Code INVALID_ARGUMENT; thrown when the
 * channel is built, never from a call.
 *
 * @example
 * ```ts
 * try { parseTarget('dns:///orders.internal'); } catch (err) {
 *   if (err instanceof InvalidTargetError) console.error(err.part, err.message);
 *   // port, target "dns:///orders.internal": the port is missing; write host:port, such as "dns:///orders.internal:50051"
 * }
 * ```
 */
export class InvalidTargetError extends GrpcTowerError {
  /** The target as given. */
  readonly target: unknown;
  /** Which part is wrong. */
  readonly part: TargetPart;

  constructor(target: unknown, part: TargetPart, reason: string) {
    const quoted = typeof target === 'string' ? JSON.stringify(target) : String(target);
    super(Status.INVALID_ARGUMENT, `target ${quoted}: ${reason}`);
    this.target = target;
    this.part = part;
  }
}

const SCHEME = /^([a-z][a-z0-9+.-]*):(.*)$/is;

/**
 * Parses a gRPC target name (see the module documentation for the forms).
 * Throws {@link InvalidTargetError} for an unknown scheme, a missing or
 * out-of-range port, an empty address list, a DNS authority that is not an
 * IP address, or a host that is neither a host name nor an IP literal.
 *
 * @example
 * ```ts
 * parseTarget('orders.internal:50051');
 * // { scheme: 'dns', host: 'orders.internal', port: 50051, dnsServer: undefined,
 * //   canonical: 'dns:///orders.internal:50051' }
 * parseTarget('ipv6:[::1]:50051').addresses; // TypeScript: narrow on scheme first
 * ```
 */
export function parseTarget(target: string): Target {
  if (typeof target !== 'string' || target.length === 0) {
    throw new InvalidTargetError(
      target,
      'target',
      'expected a non-empty string such as "dns:///orders:50051"',
    );
  }
  if (/\s/.test(target)) {
    throw new InvalidTargetError(target, 'target', 'contains white space');
  }
  const scheme = SCHEME.exec(target);
  const name = (scheme?.[1] ?? '').toLowerCase();
  const rest = scheme?.[2] ?? '';
  // `10.0.0.7:50051,10.0.0.8:50051`, or `orders:1,orders:2` (read as scheme `orders`;
  // `consul://a,b/orders` is a URI of an unknown scheme)
  const known = (TARGET_SCHEMES as readonly string[]).includes(name);
  if (target.includes(',') && (scheme === null || (!known && !rest.startsWith('/')))) {
    throw listWithoutScheme(target, target);
  }
  if (scheme === null) return dnsTarget(target, target, undefined);
  // `orders.internal:50051` reads as scheme `orders.internal`: a name that
  // is no scheme, followed by a port, is a bare host:port, as grpc-js takes it
  if (!known && /^\d*$/.test(rest)) {
    return dnsTarget(target, target, undefined);
  }
  switch (name) {
    case 'dns':
      return dnsWithAuthority(target, rest);
    case 'ipv4':
    case 'ipv6':
      return addressList(target, name, rest);
    case 'etcd':
      return etcdTarget(target, rest);
    case 'xds':
      return xdsTarget(target, rest);
    default:
      throw new InvalidTargetError(
        target,
        'scheme',
        `unknown scheme "${scheme[1]}"; use ${TARGET_SCHEMES.map((s) => `"${s}:"`).join(', ')} or a bare ` +
          'host:port, or pass your own source as the "discovery" option',
      );
  }
}

/** `dns:` followed by `//authority/host:port` or `host:port`. */
function dnsWithAuthority(target: string, rest: string): DnsTarget {
  if (!rest.startsWith('//')) return dnsTarget(target, rest, undefined);
  const slash = rest.indexOf('/', 2);
  if (slash < 0) {
    throw new InvalidTargetError(
      target,
      'authority',
      `"${rest.slice(2)}" stands where the DNS server goes and no name follows it; ` +
        `write "dns:///${rest.slice(2)}" (three slashes) to resolve it with the system's resolver`,
    );
  }
  const authority = rest.slice(2, slash);
  return dnsTarget(
    target,
    rest.slice(slash + 1),
    authority.length === 0 ? undefined : dnsServer(target, authority),
  );
}

/** The DNS server of an authority: `ip`, `ip:port`, `[v6]` or `[v6]:port`, as `ip:port`. */
function dnsServer(target: string, authority: string): string {
  const split = splitHostPort(authority);
  const host = split?.host ?? authority;
  const bracketed = split?.bracketed === true;
  const portText = split?.port;
  if (isIP(host) === 0 || (bracketed && isIP(host) !== 6)) {
    throw new InvalidTargetError(
      target,
      'authority',
      `the DNS server "${authority}" is not an IP address; write "dns://10.0.0.2:53/host:port", ` +
        '"dns://[fd00::2]:53/host:port", or "dns:///host:port" for the system\'s resolver',
    );
  }
  if (!bracketed && isIP(host) === 6) {
    throw new InvalidTargetError(
      target,
      'authority',
      `write the IPv6 DNS server in brackets, as "dns://[${host}]:53/host:port"`,
    );
  }
  const port = portText === undefined ? 53 : portOf(target, portText, `the DNS server's port "${portText}"`);
  return formatAddress(host, port);
}

function portOf(target: string, text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new InvalidTargetError(target, 'port', `${what} is not a port from 1 to 65535`);
  }
  return Number(text);
}

/** `host:port` after the scheme and authority. */
function dnsTarget(target: string, hostPort: string, server: string | undefined): DnsTarget {
  if (hostPort.includes(',')) throw listWithoutScheme(target, hostPort);
  const hp = hostPortOf(target, hostPort, target === hostPort ? target : `dns:///${hostPort}`);
  const address = formatAddress(hp.host, hp.port);
  const canonical = server === undefined ? `dns:///${address}` : `dns://${server}/${address}`;
  return { scheme: 'dns', host: hp.host, port: hp.port, dnsServer: server, canonical };
}

/** One `host:port`; `example` is the target as it would read with a port added. */
function hostPortOf(target: string, text: string, example: string): { host: string; port: number } {
  if (text.length === 0) {
    throw new InvalidTargetError(
      target,
      'host',
      'the host is missing; write host:port, such as "dns:///orders:50051"',
    );
  }
  const parsed = tryParseAddress(text);
  if (parsed.ok) return parsed.address;
  // a bare IPv6 address: the port is what is missing (it would go after brackets)
  if (parsed.reason === 'the port is missing' || isIP(text) === 6) {
    throw new InvalidTargetError(
      target,
      'port',
      `the port is missing after "${text}"; write host:port, such as "${example}:50051" ` +
        '(grpc-tower does not assume 443)',
    );
  }
  if (/^port /.test(parsed.reason)) {
    throw new InvalidTargetError(target, 'port', `in "${text}", ${parsed.reason}`);
  }
  throw new InvalidTargetError(target, 'host', `"${text}": ${parsed.reason}`);
}

/**
 * The error for a comma-separated `list` in a target that names one host
 * (a bare `host:port` or `dns:`): only the `ipv4:` and `ipv6:` schemes list
 * addresses. Names the scheme to write when every entry is an address of
 * one family.
 */
function listWithoutScheme(target: string, list: string): InvalidTargetError {
  const families = new Set(
    list.split(',').map((entry) => {
      const parsed = tryParseAddress(entry);
      return parsed.ok ? isIP(parsed.address.host) : 0;
    }),
  );
  const family = families.size === 1 ? [...families][0] : 0;
  const advice =
    family === 4 || family === 6
      ? `write "ipv${family}:${list}"`
      : 'the entries must then be IP addresses with ports, such as "ipv4:10.0.0.7:50051,10.0.0.8:50051"; ' +
        'for host names, use one DNS name that resolves to all of them, or pass your own source as the ' +
        '"discovery" option';
  return new InvalidTargetError(
    target,
    'scheme',
    `"${list}" is a list of addresses, which needs the ipv4: (or ipv6:) scheme: ${advice}`,
  );
}

/** `ipv4:a:p,b:p` or `ipv6:[a]:p,[b]:p`. */
function addressList(target: string, scheme: 'ipv4' | 'ipv6', rest: string): AddressListTarget {
  const family = scheme === 'ipv4' ? 4 : 6;
  const example =
    family === 4 ? 'ipv4:10.0.0.7:50051,10.0.0.8:50051' : 'ipv6:[fd00::7]:50051,[fd00::8]:50051';
  const entries = rest.split(',');
  if (rest.length === 0 || entries.some((e) => e.length === 0)) {
    throw new InvalidTargetError(
      target,
      'address list',
      `${rest.length === 0 ? 'the address list is empty' : 'the address list has an empty entry'}; ` +
        `write ${scheme}: and addresses separated by commas, such as "${example}"`,
    );
  }
  const addresses: string[] = [];
  for (const entry of entries) {
    const hp = hostPortOf(target, entry, family === 4 ? `${scheme}:${entry}` : `${scheme}:[${entry}]`);
    if (isIP(hp.host) !== family) {
      throw new InvalidTargetError(
        target,
        'host',
        `"${entry}" is not an IPv${family} address (a ${scheme}: target lists addresses, not names; ` +
          'use "dns:///name:port" for a name)',
      );
    }
    const address = formatAddress(hp.host, hp.port);
    if (!addresses.includes(address)) addresses.push(address);
  }
  return { scheme, addresses, canonical: `${scheme}:${addresses.join(',')}` };
}

/** `etcd://host:port[,host:port…]/prefix`. */
function etcdTarget(target: string, rest: string): EtcdTarget {
  const example = 'etcd://10.0.0.5:2379/services/orders/';
  if (!rest.startsWith('//')) {
    throw new InvalidTargetError(
      target,
      'authority',
      `name the etcd members in the authority, such as "${example}"`,
    );
  }
  const slash = rest.indexOf('/', 2);
  const authority = rest.slice(2, slash < 0 ? undefined : slash);
  if (authority.length === 0) {
    throw new InvalidTargetError(target, 'authority', `no etcd member is named; write "${example}"`);
  }
  const members: string[] = [];
  for (const member of authority.split(',')) {
    const hp = hostPortOf(target, member, `etcd://${member}`);
    const address = formatAddress(hp.host, hp.port);
    if (!members.includes(address)) members.push(address);
  }
  const prefix = slash < 0 ? '' : rest.slice(slash);
  if (prefix.length <= 1) {
    throw new InvalidTargetError(
      target,
      'prefix',
      `the key prefix is missing after the etcd members; write "etcd://${members.join(',')}/services/orders/"`,
    );
  }
  return {
    scheme: 'etcd',
    endpoints: members.map((m) => `http://${m}`),
    prefix,
    canonical: `etcd://${members.join(',')}${prefix}`,
  };
}

/** `xds:///name` (or `xds:name`); an authority (xDS federation) is refused. */
function xdsTarget(target: string, rest: string): XdsTarget {
  let name = rest;
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    const authority = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
    if (authority !== '') {
      throw new InvalidTargetError(
        target,
        'authority',
        `xDS authorities (federation) are not supported; write "xds:///${slash < 0 ? 'orders' : rest.slice(slash + 1)}"`,
      );
    }
    name = slash < 0 ? '' : rest.slice(slash + 1);
  }
  if (name === '' || /\s/.test(name)) {
    throw new InvalidTargetError(
      target,
      'host',
      'name the xDS listener after "xds:///", such as "xds:///orders"',
    );
  }
  return { scheme: 'xds', name, canonical: `xds:///${name}` };
}
