/**
 * DNS sources, polled with {@link poll}'s loop (5 s ±10 % by default, last
 * set kept on failure, backoff while failing).
 *
 * - {@link dns}: the A and AAAA addresses of a name (dual stack).
 * - {@link dnsSrv}: SRV records (RFC 2782). Port and weight come from each
 *   record; each target's addresses are then resolved as {@link dns}
 *   resolves a name. Only the lowest priority group that resolves to at
 *   least one address is used, as RFC 2782 says clients must try lower
 *   priorities first. A missing SRV name fails the round like a missing
 *   A/AAAA name; SRV records that exist but are all unusable make an empty
 *   answer (kept by default, with `empty-kept` and one `invalid` event per
 *   record).
 *
 * Which resolver answers a name:
 * - without `servers`, the operating system's (`dns.lookup`, that is
 *   `getaddrinfo`: the hosts file, then DNS as the system is configured),
 *   which is what grpc-js 1.14 does by default (its c-ares resolver is used
 *   only with `GRPC_NODE_USE_ALTERNATIVE_RESOLVER=true`). It gives no TTLs,
 *   so `respectTtl` has nothing to respect there, and it runs on libuv's
 *   thread pool. SRV queries themselves always go through c-ares, to the
 *   system's DNS servers;
 * - with `servers`, those servers, through `node:dns`'s `Resolver` (c-ares:
 *   TTLs, no thread pool) — except a name that the system's hosts file lists
 *   and `localhost` (with the names under it, RFC 6761), which still
 *   resolve through the operating system, as every other program on the
 *   machine resolves them.
 *
 * Address families, when a DNS server is asked: A and AAAA are queried
 * together and each family stands on its own. A family with no records
 * (NXDOMAIN or NODATA) is empty. A family that failed hard (REFUSED,
 * SERVFAIL, a timeout, an unreachable server) keeps the addresses it had in
 * its last good answer (none before it ever answered) and is reported as a
 * `partial` event naming the family and the error, while the family that
 * answered is used as it answered: many servers answer A and refuse AAAA,
 * and neither dropping the failed family's addresses nor ignoring the good
 * answer would be right. The round fails (last set kept, backoff) only when
 * every family failed hard, or when the families that answered have no
 * records and the failed one had nothing to keep. When no family has
 * records the round fails with a {@link DnsResolveError} and the last set is
 * kept, unless `keepLastOnEmpty: false` asks to trust empty answers.
 *
 * With `respectTtl`, the next round waits at least the smallest TTL of the
 * fresh records of the answer. IPv6 addresses are written as `[addr]:port`.
 *
 * @module
 */
import { optionChecks } from '@grpc-tower/core/internal';
import { isIP } from 'node:net';
import { type DiscoveredAddress, formatAddress, isHost, isPort, isServiceName } from './address.js';
import { DnsResolveError, InvalidRecordError } from './errors.js';
import {
  type InvalidInput,
  type PollAnswer,
  type PollConfig,
  type PollResult,
  pollConfig,
  pollSourceWith,
} from './poll.js';
import type { DiscoverySource, SourceContext } from './source.js';
import { staticList } from './static.js';
import {
  type DnsOptions,
  type DnsSettings,
  type HostAnswer,
  NO_RECORDS,
  NameResolver,
  type Resolver,
  codeOf,
  dnsSettings,
  rrtypesOf,
} from './dns-resolver.js';

export type { DnsOptions } from './dns-resolver.js';

/**
 * A source of the A and AAAA records of `host`, each as `ip:port`
 * (`[v6]:port`). `host` must be an RFC 1123 name (or an IP literal, which
 * is returned as is without querying) and `port` an integer from 1 to
 * 65535; otherwise a `ConfigError` is thrown here.
 *
 * Without `servers`, `host` resolves as the operating system resolves it
 * (`dns.lookup`: the hosts file, then the system's DNS), as grpc-js does by
 * default. With `servers`, it is queried there (A and AAAA through c-ares,
 * a failed family kept from its last good answer with a `partial` event),
 * except a name in the system's hosts file or `localhost`, which still
 * resolves through the operating system.
 *
 * @example
 * ```ts
 * const orders = dns('orders.internal', 50051, { servers: ['10.0.0.2'], respectTtl: true });
 * const local = dns('localhost', 50051); // 127.0.0.1:50051, from the hosts file
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
  const rrtype = rrtypesOf(settings.families);
  return pollSourceWith((ctx) => {
    const names = new NameResolver(config.name, settings);
    return async (signal) => {
      const onAbort = (): void => names.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const answer = await names.resolve(host, await names.systemNames());
        reportPartial(ctx, config.name, host, answer);
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
    };
  }, config);
}

function reportPartial(
  ctx: Pick<SourceContext, 'emit'>,
  source: string,
  hostname: string,
  answer: HostAnswer,
): void {
  for (const { family, error, kept } of answer.partial) {
    ctx.emit(() => ({ type: 'partial', source, hostname, family, error, kept }));
  }
}

/** The answer, valid for the smallest fresh TTL with `respectTtl` (kept and OS answers carry none). */
function withTtl(
  addresses: readonly DiscoveredAddress[],
  ips: readonly { readonly ttl: number | undefined }[],
  respectTtl: boolean,
  invalid: readonly InvalidInput[] = [],
): PollAnswer {
  if (!respectTtl) return { addresses, invalid };
  let ttl = Number.POSITIVE_INFINITY;
  for (const i of ips) if (i.ttl !== undefined && i.ttl < ttl) ttl = i.ttl;
  if (ttl === Number.POSITIVE_INFINITY) return { addresses, invalid };
  return { addresses, invalid, validForMs: ttl * 1000 };
}

/**
 * A source of the servers named by the SRV records of `name` (such as
 * `_grpc._tcp.orders.internal`): each target's A/AAAA addresses with the
 * record's port, `weight` from the record, and `metadata` `{ target,
 * priority }`. A malformed record (port 0, an invalid target, the "."
 * target that means "no service") is skipped with an `invalid` event naming
 * it, as is a target with no address. Targets resolve as {@link dns}
 * resolves a name (the same resolver rule, and the same per-family rule
 * with a `partial` event per target).
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
  const source = config.name;
  return pollSourceWith((ctx) => {
    const names = new NameResolver(source, settings);
    return async (signal) => {
      const onAbort = (): void => names.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        return await resolveSrv(ctx, names, name, config, settings);
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    };
  }, config);
}

async function resolveSrv(
  ctx: Pick<SourceContext, 'emit'>,
  names: NameResolver,
  name: string,
  config: PollConfig,
  settings: DnsSettings,
): Promise<PollResult> {
  const source = config.name;
  let records: Awaited<ReturnType<Resolver['resolveSrv']>>;
  try {
    records = await names.resolver.resolveSrv(name);
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
  const systemNames = await names.systemNames();
  const queried = new Set<string>();
  const partial: { hostname: string; answer: HostAnswer }[] = [];
  const priorities = [...new Set(valid.map((r) => r.priority))].sort((a, b) => a - b);
  let result: PollAnswer = { addresses: [], invalid };
  for (const priority of priorities) {
    const group = valid.filter((r) => r.priority === priority);
    const answers = await Promise.all(
      group.map(async (r) => {
        if (isIP(r.name) !== 0) {
          const literal: HostAnswer = {
            ips: [{ ip: r.name, ttl: undefined }],
            noRecords: undefined,
            partial: [],
          };
          return { r, answer: literal };
        }
        queried.add(r.name);
        return { r, answer: await names.resolve(r.name, systemNames) };
      }),
    );
    const addresses: DiscoveredAddress[] = [];
    const ips: { ttl: number | undefined }[] = [];
    for (const { r, answer } of answers) {
      if (answer.partial.length > 0) partial.push({ hostname: r.name, answer });
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
        ips.push({ ttl });
      }
    }
    if (addresses.length > 0) {
      result = withTtl(addresses, ips, settings.respectTtl, invalid);
      break;
    }
    // none in this group: the next priority, or (records exist but none is usable) an empty answer
  }
  names.retain(queried);
  // one report per target, even when several records name it
  const reported = new Set<string>();
  for (const { hostname, answer } of partial) {
    if (reported.has(hostname)) continue;
    reported.add(hostname);
    reportPartial(ctx, source, hostname, answer);
  }
  return result;
}

function srvProblem(r: { name: string; port: number; priority: number; weight: number }): string | undefined {
  if (!isPort(r.port)) return `port ${r.port} is out of range 1..65535`;
  if (r.name === '' || r.name === '.') return 'the target "." means the service is not available here';
  if (!isHost(r.name)) return `target "${r.name}" is not an RFC 1123 host name`;
  if (!Number.isInteger(r.weight) || r.weight < 0 || r.weight > 65535) return `weight ${r.weight} is invalid`;
  return undefined;
}
