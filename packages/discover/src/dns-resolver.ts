/**
 * How a DNS source resolves a name (the route rule of `dns.ts`'s module
 * documentation): its settings from {@link DnsOptions}, the operating
 * system's resolver (`dns.lookup`) for names without `servers` and for the
 * hosts file's names and `localhost`, and c-ares on `servers` otherwise,
 * each address family on its own, a failed one kept from its last answer.
 *
 * @module
 */
import { optionChecks, splitHostPort } from '@grpc-tower/core/internal';
import { promises as dnsPromises } from 'node:dns';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { isPort } from './address.js';
import { DnsResolveError } from './errors.js';
import type { PollOptions } from './poll.js';
import { DELAY_RULE } from './timing.js';

/** node:dns's c-ares resolver. */
export type Resolver = InstanceType<typeof dnsPromises.Resolver>;

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
  /**
   * DNS servers (`'ip'`, `'ip:port'`, `'[v6]:port'`) to ask instead of the
   * operating system's resolver; names in the system's hosts file and
   * `localhost` still resolve through the operating system. Default: the
   * operating system's resolver (see the module documentation).
   */
  readonly servers?: readonly string[];
  /** Which address families to query; default `'any'` (A and AAAA). */
  readonly family?: 'any' | 4 | 6;
  /** Never poll faster than the smallest TTL of the last answer from a DNS server; default `false`. */
  readonly respectTtl?: boolean;
  /** c-ares timeout of one query attempt; default a quarter of `resolveTimeoutMs`. */
  readonly queryTimeoutMs?: number;
  /** c-ares attempts per query; default 2. */
  readonly tries?: number;
}

/** Node's DNS answers "no such name" (NXDOMAIN) and "no such record" (NODATA) with these codes. */
export const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA']);

export function codeOf(err: unknown): string {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

/**
 * What is wrong with a DNS server entry, or `undefined` when it is `ip`,
 * `ip:port`, `[v6]` or `[v6]:port` with a port from 1 to 65535. Node's
 * `setServers` reads entries more loosely (`[::1]x:53` passes) and (20.x)
 * aborts the whole process instead of throwing on a port that is 0 or
 * wraps to 0 past 65535, so only these forms are passed on to it.
 */
function serverProblem(server: string): string | undefined {
  if (isIP(server) !== 0) return undefined;
  const split = splitHostPort(server);
  if (split === undefined || isIP(split.host) !== (split.bracketed ? 6 : 4)) {
    return `a list of "ip", "ip:port" or "[v6]:port" (not ${server})`;
  }
  if (split.port === undefined) return undefined; // [v6]
  if (!/^\d{1,5}$/.test(split.port) || !isPort(Number(split.port))) {
    return `servers with ports from 1 to 65535 (not ${server})`;
  }
  return undefined;
}

/** A DNS source's settings, checked. */
export interface DnsSettings {
  readonly families: readonly (4 | 6)[];
  /** The DNS servers given, or `undefined` for the operating system's resolver. */
  readonly servers: readonly string[] | undefined;
  readonly respectTtl: boolean;
  readonly makeResolver: () => Resolver;
}

/** The settings of `options`; a ConfigError from `where` names a bad one. */
export function dnsSettings(where: string, options: DnsOptions, resolveTimeoutMs: number): DnsSettings {
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
    // wraps to 0 past 65535) instead of throwing: check every entry first.
    for (const server of servers) {
      const problem = serverProblem(server);
      if (problem !== undefined) throw check.error('servers', servers, problem);
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
    servers,
    respectTtl,
    makeResolver: () => {
      const resolver = new dnsPromises.Resolver({ timeout, tries });
      if (servers !== undefined) resolver.setServers(servers);
      return resolver;
    },
  };
}

/** One address of an answer; `ttl` (seconds) when a DNS server gave it fresh this round. */
interface AnsweredIp {
  readonly ip: string;
  readonly ttl: number | undefined;
}

/** A family that failed hard while the other answered (reported as a `partial` event). */
interface PartialFamily {
  readonly family: 4 | 6;
  readonly error: DnsResolveError;
  readonly kept: number;
}

/** The addresses of a name, from every family asked for. */
export interface HostAnswer {
  readonly ips: readonly AnsweredIp[];
  /** Set when every family answered NXDOMAIN/NODATA: `ENOTFOUND` when all said NXDOMAIN, else `ENODATA`. */
  readonly noRecords: string | undefined;
  /** The families that failed hard while another answered. */
  readonly partial: readonly PartialFamily[];
}

const rrtypeOf = (family: 4 | 6): 'A' | 'AAAA' => (family === 4 ? 'A' : 'AAAA');
/** The record types of `families`, as `A/AAAA`. */
export const rrtypesOf = (families: readonly (4 | 6)[]): string => families.map(rrtypeOf).join('/');

/**
 * The system's hosts file: `/etc/hosts`, or on Windows
 * `%SystemRoot%\System32\drivers\etc\hosts`.
 */
function hostsFilePath(): string {
  if (process.platform !== 'win32') return '/etc/hosts';
  return join(process.env.SystemRoot ?? 'C:\\Windows', 'System32', 'drivers', 'etc', 'hosts');
}

/** The names in the system's hosts file, lower case (none when it cannot be read). */
async function hostsFileNames(): Promise<ReadonlySet<string>> {
  let text: string;
  try {
    text = await readFile(hostsFilePath(), 'utf8');
  } catch {
    return new Set();
  }
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const fields = (line.split('#', 1)[0] ?? '').trim().split(/\s+/);
    // the first field is the address, the others its names and aliases
    for (let i = 1; i < fields.length; i++) names.add((fields[i] as string).toLowerCase());
  }
  return names;
}

/** `localhost` and the names under it (RFC 6761, 6.3): never sent to a DNS server. */
const isLocalhostName = (host: string): boolean => {
  const name = host.toLowerCase();
  return name === 'localhost' || name.endsWith('.localhost');
};

/**
 * Resolves `host` as the operating system does (`dns.lookup`, that is
 * `getaddrinfo`: the hosts file, then DNS as the system is configured), as
 * grpc-js does by default. No TTLs; a failure fails the lookup as a whole.
 */
async function osLookup(source: string, host: string, families: readonly (4 | 6)[]): Promise<HostAnswer> {
  let found: { address: string; family: number }[];
  try {
    found = await dnsPromises.lookup(host, { all: true, family: families.length === 1 ? families[0] : 0 });
  } catch (err) {
    const code = codeOf(err);
    if (NO_RECORDS.has(code)) return { ips: [], noRecords: code, partial: [] };
    throw new DnsResolveError(source, host, rrtypesOf(families), code, err);
  }
  const seen = new Set<string>();
  const ips: AnsweredIp[] = [];
  for (const { address, family } of found) {
    if (seen.has(address) || !families.includes(family as 4 | 6)) continue;
    seen.add(address);
    ips.push({ ip: address, ttl: undefined });
  }
  return { ips, noRecords: ips.length === 0 ? 'ENOTFOUND' : undefined, partial: [] };
}

/**
 * The addresses each family of each name had in its last good answer from
 * a DNS server (an answer with records, or a "no such records" answer,
 * which leaves it empty). Lives as long as one run of the source.
 */
class FamilyMemory {
  readonly #last = new Map<string, readonly string[]>();

  get(host: string, family: 4 | 6): readonly string[] {
    return this.#last.get(`${family} ${host}`) ?? [];
  }

  set(host: string, family: 4 | 6, ips: readonly string[]): void {
    this.#last.set(`${family} ${host}`, ips);
  }

  /** Forgets the names not in `hosts` (SRV targets that went away). */
  retain(hosts: ReadonlySet<string>): void {
    for (const key of this.#last.keys()) {
      if (!hosts.has(key.slice(key.indexOf(' ') + 1))) this.#last.delete(key);
    }
  }
}

/**
 * Queries A and/or AAAA together through c-ares. A family with records
 * gives them, one with none ("no such name", "no such records") is empty,
 * and one that failed hard (refused, SERVFAIL, timeout, unreachable server)
 * gives the addresses it had in its last good answer, reported in
 * `partial`. Throws {@link DnsResolveError} when every family failed hard,
 * or when the families that answered had no records and the failed ones
 * nothing kept (nothing is known).
 */
async function caresLookup(
  source: string,
  resolver: Resolver,
  host: string,
  families: readonly (4 | 6)[],
  memory: FamilyMemory,
): Promise<HostAnswer> {
  const results = await Promise.all(
    families.map((family) =>
      (family === 4 ? resolver.resolve4(host, { ttl: true }) : resolver.resolve6(host, { ttl: true })).then(
        (records) => ({ family, records, error: undefined as unknown }),
        (error: unknown) => ({ family, records: undefined, error }),
      ),
    ),
  );
  const hard = results.filter((r) => r.error !== undefined && !NO_RECORDS.has(codeOf(r.error)));
  const firstHard = hard[0];
  if (firstHard !== undefined && hard.length === results.length) {
    // nothing answered: fail the round and keep the last set
    throw new DnsResolveError(source, host, rrtypesOf(families), codeOf(firstHard.error), firstHard.error);
  }
  const ips: AnsweredIp[] = [];
  const partial: PartialFamily[] = [];
  for (const r of results) {
    if (r.error === undefined) {
      const records = r.records ?? [];
      memory.set(
        host,
        r.family,
        records.map((rec) => rec.address),
      );
      for (const rec of records) ips.push({ ip: rec.address, ttl: rec.ttl });
    } else if (NO_RECORDS.has(codeOf(r.error))) {
      memory.set(host, r.family, []);
    } else {
      const kept = memory.get(host, r.family);
      for (const ip of kept) ips.push({ ip, ttl: undefined });
      const error = new DnsResolveError(source, host, rrtypeOf(r.family), codeOf(r.error), r.error);
      partial.push({ family: r.family, error, kept: kept.length });
    }
  }
  if (ips.length > 0) return { ips, noRecords: undefined, partial };
  if (firstHard !== undefined) {
    // the families that answered have no records and the failed one had none kept
    throw new DnsResolveError(
      source,
      host,
      rrtypeOf(firstHard.family),
      codeOf(firstHard.error),
      firstHard.error,
    );
  }
  const nxdomain = results.every((r) => codeOf(r.error) === 'ENOTFOUND');
  return { ips, noRecords: nxdomain ? 'ENOTFOUND' : 'ENODATA', partial };
}

/** What one run of a DNS source uses to resolve names: the route rule of the module docs. */
export class NameResolver {
  readonly #source: string;
  readonly #settings: DnsSettings;
  readonly #memory = new FamilyMemory();
  #resolver: Resolver | undefined;

  constructor(source: string, settings: DnsSettings) {
    this.#source = source;
    this.#settings = settings;
  }

  /** The c-ares resolver (on `servers`, or the system's DNS servers), made on first use. */
  get resolver(): Resolver {
    this.#resolver ??= this.#settings.makeResolver();
    return this.#resolver;
  }

  /** Cancels the c-ares queries in flight. */
  cancel(): void {
    this.#resolver?.cancel();
  }

  /** Forgets the family memory of names not in `hosts`. */
  retain(hosts: ReadonlySet<string>): void {
    this.#memory.retain(hosts);
  }

  /**
   * The names this round resolves through the OS even though `servers` are
   * given (the hosts file's names and localhost); `undefined` without
   * `servers` (then every name goes through the OS).
   */
  async systemNames(): Promise<ReadonlySet<string> | undefined> {
    return this.#settings.servers === undefined ? undefined : hostsFileNames();
  }

  /** Resolves `host`; `systemNames` from {@link NameResolver.systemNames} of this round. */
  resolve(host: string, systemNames: ReadonlySet<string> | undefined): Promise<HostAnswer> {
    const { families } = this.#settings;
    if (systemNames === undefined || isLocalhostName(host) || systemNames.has(host.toLowerCase())) {
      return osLookup(this.#source, host, families);
    }
    return caresLookup(this.#source, this.resolver, host, families, this.#memory);
  }
}
