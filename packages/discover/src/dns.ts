/**
 * DNS sources, polled with {@link poll}'s loop (5 s ±10 % by default, last
 * set kept on failure, backoff while failing).
 *
 * - {@link dns}: the A and AAAA records of a name, queried together (dual
 *   stack). A name that exists in only one family is fine (NODATA or
 *   NXDOMAIN on one family while the other answers). When neither family
 *   has records the round fails with a {@link DnsResolveError} and the last
 *   set is kept, unless `keepLastOnEmpty: false` asks to trust empty
 *   answers. A family that fails for any other reason (timeout, refused,
 *   SERVFAIL) fails the whole round: dropping that family's addresses on a
 *   partial answer would shrink the pool by mistake.
 * - {@link dnsSrv}: SRV records (RFC 2782). Port and weight come from each
 *   record; each target's A/AAAA records are then resolved. Only the lowest
 *   priority group that resolves to at least one address is used, as RFC
 *   2782 says clients must try lower priorities first. A missing SRV name
 *   fails the round like a missing A/AAAA name; SRV records that exist but
 *   are all unusable make an empty answer (kept by default, with
 *   `empty-kept` and one `invalid` event per record).
 *
 * Queries go through `node:dns`'s `Resolver` (c-ares, not `getaddrinfo`),
 * so they honour custom `servers` and TTLs and do not block libuv's thread
 * pool. With `respectTtl`, the next round waits at least the smallest TTL
 * of the answer. IPv6 addresses are written as `[addr]:port`.
 *
 * @module
 */
import { optionChecks } from '@grpc-tower/core/internal';
import { promises as dnsPromises } from 'node:dns';
import { isIP } from 'node:net';
import { type DiscoveredAddress, formatAddress, isHost, isPort, isServiceName } from './address.js';
import { DnsResolveError, InvalidRecordError } from './errors.js';
import { type InvalidInput, type PollAnswer, type PollOptions, pollConfig, pollSource } from './poll.js';
import type { DiscoverySource } from './source.js';
import { staticList } from './static.js';
import { DELAY_RULE } from './timing.js';

type Resolver = InstanceType<typeof dnsPromises.Resolver>;

/**
 * Options of {@link dns} and {@link dnsSrv}: the {@link PollOptions} and
 * DNS settings.
 *
 * @example
 * ```ts
 * const opts: DnsOptions = { servers: ['127.0.0.1:5353'], intervalMs: 2000, respectTtl: true };
 * ```
 */
export interface DnsOptions extends PollOptions {
  /** DNS servers (`'ip'`, `'ip:port'`, `'[v6]:port'`); default: the system's. */
  readonly servers?: readonly string[];
  /** Which address families to query; default `'any'` (A and AAAA). */
  readonly family?: 'any' | 4 | 6;
  /** Never poll faster than the smallest TTL of the last answer; default `false`. */
  readonly respectTtl?: boolean;
  /** c-ares timeout of one query attempt; default a quarter of `resolveTimeoutMs`. */
  readonly queryTimeoutMs?: number;
  /** c-ares attempts per query; default 2. */
  readonly tries?: number;
}

/** Node's DNS answers "no such name" (NXDOMAIN) and "no such record" (NODATA) with these codes. */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA']);

function codeOf(err: unknown): string {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

/**
 * The port written in a DNS server entry (`ip:port`, `[v6]:port`), or
 * `undefined` when there is none or it is not a number (then `setServers`
 * judges the entry).
 */
function serverPort(server: string): number | undefined {
  // Mirrors how Node's setServers reads an entry, so that every port it
  // would pass on to c-ares is checked here first.
  if (isIP(server) !== 0) return undefined;
  const split = /(^.+?)(?::(\d+))?$/.exec(server);
  const bracketed = /^\[([^[\]]*)\]/.exec(server);
  if (bracketed !== null && isIP(bracketed[1] ?? '') !== 0) {
    const digits = server.replace(/(^.+?)(?::(\d+))?$/, '$2');
    return digits === '' ? undefined : Number(digits);
  }
  if (split?.[2] !== undefined && isIP(split[1] ?? '') !== 0) return Number(split[2]);
  return undefined;
}

interface DnsSettings {
  readonly families: readonly (4 | 6)[];
  readonly respectTtl: boolean;
  readonly makeResolver: () => Resolver;
}

function dnsSettings(where: string, options: DnsOptions, resolveTimeoutMs: number): DnsSettings {
  const check = optionChecks(where);
  const family = check.oneOf('family', options.family, ['any', 4, 6] as const, 'any');
  const respectTtl = check.boolean('respectTtl', options.respectTtl, false);
  const timeout = Math.floor(
    check.number('queryTimeoutMs', options.queryTimeoutMs, DELAY_RULE, Math.max(50, resolveTimeoutMs / 4)),
  );
  const tries = check.number('tries', options.tries, { min: 1, max: 10, integer: true }, 2);
  const servers = options.servers;
  if (servers !== undefined) {
    if (!Array.isArray(servers) || servers.length === 0 || !servers.every((s) => typeof s === 'string')) {
      throw check.error('servers', servers, 'a non-empty array of "ip" or "ip:port" strings');
    }
    // Node (20.x) aborts the whole process on a server whose port is 0 (or
    // wraps to 0 past 65535) instead of throwing: check ports first.
    for (const server of servers) {
      const port = serverPort(server);
      if (port !== undefined && !(port >= 1 && port <= 65535)) {
        throw check.error('servers', servers, `servers with ports from 1 to 65535 (not ${server})`);
      }
    }
    // setServers validates each entry; do it once now so a bad list fails at construction.
    try {
      new dnsPromises.Resolver().setServers(servers);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw check.error('servers', servers, `a list of "ip", "ip:port" or "[v6]:port" (${reason})`);
    }
  }
  return {
    families: family === 'any' ? [4, 6] : [family],
    respectTtl,
    makeResolver: () => {
      const resolver = new dnsPromises.Resolver({ timeout, tries });
      if (servers !== undefined) resolver.setServers(servers);
      return resolver;
    },
  };
}

interface HostAnswer {
  readonly ips: readonly { readonly ip: string; readonly ttl: number }[];
  /** Set when every family answered NXDOMAIN/NODATA: `ENOTFOUND` when all said NXDOMAIN, else `ENODATA`. */
  readonly noRecords: string | undefined;
}

/** Queries A and/or AAAA together; throws {@link DnsResolveError} unless each family answered or had no records. */
async function lookupHost(
  source: string,
  resolver: Resolver,
  host: string,
  families: readonly (4 | 6)[],
): Promise<HostAnswer> {
  const results = await Promise.all(
    families.map((family) =>
      (family === 4 ? resolver.resolve4(host, { ttl: true }) : resolver.resolve6(host, { ttl: true })).then(
        (records) => ({ family, records, error: undefined }),
        (error: unknown) => ({ family, records: undefined, error }),
      ),
    ),
  );
  const ips: { ip: string; ttl: number }[] = [];
  const hard = results.filter((r) => r.error !== undefined && !NO_RECORDS.has(codeOf(r.error)));
  const rrtype = families.map((f) => (f === 4 ? 'A' : 'AAAA')).join('/');
  if (hard.length > 0) {
    // A family that timed out or was refused may still have addresses: do not
    // drop them on a partial answer, fail the round and keep the last set.
    const first = hard[0]!;
    throw new DnsResolveError(source, host, rrtype, codeOf(first.error), first.error);
  }
  for (const r of results) {
    for (const rec of r.records ?? []) ips.push({ ip: rec.address, ttl: rec.ttl });
  }
  if (ips.length > 0) return { ips, noRecords: undefined };
  const nxdomain = results.every((r) => codeOf(r.error) === 'ENOTFOUND');
  return { ips, noRecords: nxdomain ? 'ENOTFOUND' : 'ENODATA' };
}

/**
 * A source of the A and AAAA records of `host`, each as `ip:port`
 * (`[v6]:port`). `host` must be an RFC 1123 name (or an IP literal, which
 * is returned as is without querying) and `port` an integer from 1 to
 * 65535; otherwise a `ConfigError` is thrown here.
 *
 * @example
 * ```ts
 * const orders = dns('orders.internal', 50051, { servers: ['10.0.0.2'], respectTtl: true });
 * ```
 */
export function dns(host: string, port: number, options: DnsOptions = {}): DiscoverySource {
  const check = optionChecks('dns');
  if (typeof host !== 'string' || !isHost(host)) {
    throw check.error('host', host, 'an RFC 1123 host name or an IP address (no zone id)');
  }
  check.number('port', port, { min: 1, max: 65535, integer: true });
  const config = pollConfig('dns', `dns:${formatAddress(host, port)}`, options);
  const settings = dnsSettings('dns', options, config.resolveTimeoutMs);
  if (isIP(host) !== 0) return staticList([formatAddress(host, port)], { name: config.name });
  const resolver = settings.makeResolver();
  const rrtype = settings.families.map((f) => (f === 4 ? 'A' : 'AAAA')).join('/');
  return pollSource(async (signal) => {
    const onAbort = (): void => resolver.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const answer = await lookupHost(config.name, resolver, host, settings.families);
      if (answer.noRecords !== undefined) {
        if (config.keepLastOnEmpty) throw new DnsResolveError(config.name, host, rrtype, answer.noRecords);
        return [];
      }
      const addresses: DiscoveredAddress[] = answer.ips.map(({ ip }) => ({
        address: formatAddress(ip, port),
      }));
      return withTtl(addresses, answer.ips, settings.respectTtl);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }, config);
}

function withTtl(
  addresses: readonly DiscoveredAddress[],
  ips: readonly { readonly ttl: number }[],
  respectTtl: boolean,
  invalid: readonly InvalidInput[] = [],
): PollAnswer {
  if (!respectTtl || ips.length === 0) return { addresses, invalid };
  const ttl = Math.min(...ips.map((i) => i.ttl));
  return { addresses, invalid, validForMs: ttl * 1000 };
}

/**
 * A source of the servers named by the SRV records of `name` (such as
 * `_grpc._tcp.orders.internal`): each target's A/AAAA addresses with the
 * record's port, `weight` from the record, and `metadata` `{ target,
 * priority }`. A malformed record (port 0, an invalid target, the "."
 * target that means "no service") is skipped with an `invalid` event naming
 * it, as is a target with no address.
 *
 * @example
 * ```ts
 * const orders = dnsSrv('_grpc._tcp.orders.internal', { intervalMs: 10_000 });
 * ```
 */
export function dnsSrv(name: string, options: DnsOptions = {}): DiscoverySource {
  if (typeof name !== 'string' || !isServiceName(name)) {
    throw optionChecks('dnsSrv').error('name', name, 'a DNS name such as "_grpc._tcp.orders.internal"');
  }
  const config = pollConfig('dnsSrv', `dns-srv:${name}`, options);
  const settings = dnsSettings('dnsSrv', options, config.resolveTimeoutMs);
  const resolver = settings.makeResolver();
  const source = config.name;
  return pollSource(async (signal) => {
    const onAbort = (): void => resolver.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      let records: Awaited<ReturnType<Resolver['resolveSrv']>>;
      try {
        records = await resolver.resolveSrv(name);
      } catch (err) {
        const code = codeOf(err);
        if (NO_RECORDS.has(code) && !config.keepLastOnEmpty) return [];
        throw new DnsResolveError(source, name, 'SRV', code, err);
      }
      const invalid: InvalidInput[] = [];
      const valid = records.filter((r) => {
        const text = `${name} SRV ${r.priority} ${r.weight} ${r.port} ${r.name || '.'}`;
        const reason = srvProblem(r);
        if (reason !== undefined)
          invalid.push({ input: text, error: new InvalidRecordError(source, text, reason) });
        return reason === undefined;
      });
      const priorities = [...new Set(valid.map((r) => r.priority))].sort((a, b) => a - b);
      for (const priority of priorities) {
        const group = valid.filter((r) => r.priority === priority);
        const answers = await Promise.all(
          group.map(async (r) => {
            if (isIP(r.name) !== 0) {
              const literal: HostAnswer = { ips: [{ ip: r.name, ttl: 0 }], noRecords: undefined };
              return { r, answer: literal };
            }
            return { r, answer: await lookupHost(source, resolver, r.name, settings.families) };
          }),
        );
        const addresses: DiscoveredAddress[] = [];
        const ips: { ttl: number }[] = [];
        for (const { r, answer } of answers) {
          if (answer.noRecords !== undefined) {
            const text = `${name} SRV ${r.priority} ${r.weight} ${r.port} ${r.name}`;
            invalid.push({
              input: text,
              error: new InvalidRecordError(source, text, `target ${r.name} has no A/AAAA records`),
            });
            continue;
          }
          for (const { ip, ttl } of answer.ips) {
            addresses.push({
              address: formatAddress(ip, r.port),
              weight: r.weight,
              metadata: { target: r.name, priority: r.priority },
            });
            if (isIP(r.name) === 0) ips.push({ ttl });
          }
        }
        if (addresses.length > 0) return withTtl(addresses, ips, settings.respectTtl, invalid);
      }
      // Records exist but none is usable: an empty answer, reported with what was wrong.
      return { addresses: [], invalid };
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }, config);
}

function srvProblem(r: { name: string; port: number; priority: number; weight: number }): string | undefined {
  if (!isPort(r.port)) return `port ${r.port} is out of range 1..65535`;
  if (r.name === '' || r.name === '.') return 'the target "." means the service is not available here';
  if (!isHost(r.name)) return `target "${r.name}" is not an RFC 1123 host name`;
  if (!Number.isInteger(r.weight) || r.weight < 0 || r.weight > 65535) return `weight ${r.weight} is invalid`;
  return undefined;
}
