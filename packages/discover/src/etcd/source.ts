/**
 * `etcd`: a watch-based source over an etcd v3 key prefix, using the
 * `etcd3` client. Each key under the prefix holds one server, as an address
 * (`10.0.0.7:50051`) or as JSON `{ "address": "10.0.0.7:50051", "weight": 2,
 * "metadata": { … } }`.
 *
 * The algorithm is etcd's list-then-watch (the one Kubernetes' reflector
 * and etcd's own `clientv3/naming` use): read the whole prefix with one
 * range request, which returns the store revision R, then watch the prefix
 * from R + 1, so every change after the read arrives and none is missed.
 * When the connection drops, the watch is re-established from the last
 * revision it saw (the client replays what happened meanwhile). When that
 * revision has been compacted away, etcd cancels the watch; the source then
 * reads the prefix again, emits only the difference with what it had, and
 * watches from the new revision. A failed read keeps the last set and
 * retries with backoff.
 *
 * Bad data never breaks the stream: a value that is not an address is
 * skipped with an `invalid` event naming the key, and two keys naming the
 * same address yield a `duplicate` event (the lexicographically first key
 * supplies the value; removing it hands the address to the other key).
 *
 * @module
 */
import { optionChecks } from '@grpc-tower/core/internal';
import { Etcd3, type IOptions, type IEvent, type IKeyValue, type Watcher } from 'etcd3';
import { type DiscoveredAddress, toDiscoveredAddress } from '../address.js';
import { valueEquals } from '../equals.js';
import type { Change } from '../change.js';
import { ClaimTable } from '../claims.js';
import { InvalidAddressError, InvalidRecordError, ResolveError, describe } from '../errors.js';
import { type DiscoverySource, type SourceContext, sharedSource } from '../source.js';
import {
  type Backoff,
  type BackoffOptions,
  backoffConfig,
  DELAY_RULE,
  backoffDelay,
  unrefTimer,
} from '../timing.js';

/**
 * Options of {@link etcd}.
 *
 * @example
 * ```ts
 * const opts: EtcdSourceOptions = { requestTimeoutMs: 3000, backoff: { maxMs: 10_000 } };
 * ```
 */
export interface EtcdSourceOptions {
  /** The source's name in events; default `'etcd:<prefix>'`. */
  readonly name?: string;
  /** Deadline of the range request that reads the prefix; default 5000 ms. */
  readonly requestTimeoutMs?: number;
  /** Backoff between failed reads; default 1 s doubling to 30 s, ±10 %. */
  readonly backoff?: BackoffOptions;
  /**
   * Backoff between watch reconnection attempts, for a client this source
   * creates from endpoints; default 100 ms doubling to 5 s, ±10 %. (A client
   * passed in keeps its own `faultHandling.watchBackoff`.)
   */
  readonly watchBackoff?: BackoffOptions;
  /** More options for a client this source creates from endpoints (credentials, auth…). */
  readonly clientOptions?: Omit<IOptions, 'hosts'>;
}

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** The etcd3 client's watch backoff interface, over this package's backoff. */
function watchBackoff(config: Backoff, attempt: number): WatchBackoff {
  return {
    duration: backoffDelay(attempt, config),
    next: () => watchBackoff(config, attempt + 1),
  };
}

/** The factory the client calls `next()` on to get the first delay (and again after each success). */
function watchBackoffFactory(config: Backoff): WatchBackoff {
  return { duration: 0, next: () => watchBackoff(config, 1) };
}

function checkEndpoints(value: unknown): string[] {
  const list = typeof value === 'string' ? [value] : value;
  const ok =
    Array.isArray(list) &&
    list.length > 0 &&
    list.every((e) => typeof e === 'string' && /^(https?:\/\/)?[^\s/]+:\d{1,5}\/?$/.test(e));
  if (!ok) {
    throw optionChecks('etcd').error(
      'clientOrEndpoints',
      value,
      'an Etcd3 client, or one or more endpoints such as "http://127.0.0.1:2379"',
    );
  }
  return list as string[];
}

/** Parses one etcd value into an address, or explains why not. @internal */
export function parseEtcdValue(
  source: string,
  key: string,
  raw: string,
): DiscoveredAddress | InvalidRecordError {
  const text = raw.trim();
  const input = `${key} = ${describe(raw)}`;
  let entry: unknown = text;
  if (text.startsWith('{')) {
    try {
      entry = JSON.parse(text);
    } catch (err) {
      return new InvalidRecordError(source, input, 'the value looks like JSON but does not parse', {
        cause: err,
      });
    }
  }
  try {
    return toDiscoveredAddress(entry, source);
  } catch (err) {
    const reason = err instanceof InvalidAddressError ? err.message : String(err);
    return new InvalidRecordError(
      source,
      input,
      `expected "host:port" or JSON {"address": "host:port", "weight"?, "metadata"?} (${reason})`,
      { cause: err },
    );
  }
}

/**
 * A source over the keys under `prefix` in etcd. Pass an `Etcd3` client
 * (which the source uses but never closes) or endpoints (the source then
 * creates its own client when the first subscriber arrives and closes it
 * when the last one leaves). Lazy and shared; never errors or completes.
 *
 * @example
 * ```ts
 * const orders = etcd('http://127.0.0.1:2379', '/services/orders/');
 * // etcdctl put /services/orders/a 10.0.0.7:50051
 * // etcdctl put /services/orders/b '{"address":"10.0.0.8:50051","weight":2}'
 * ```
 */
export function etcd(
  clientOrEndpoints: Etcd3 | string | readonly string[],
  prefix: string,
  options: EtcdSourceOptions = {},
): DiscoverySource {
  const client = clientOrEndpoints instanceof Etcd3 ? clientOrEndpoints : undefined;
  const endpoints = client === undefined ? checkEndpoints(clientOrEndpoints) : undefined;
  const check = optionChecks('etcd');
  if (typeof prefix !== 'string' || prefix.length === 0) {
    throw check.error('prefix', prefix, 'a non-empty key prefix such as "/services/orders/"');
  }
  check.object('options', options);
  const name = check.string('name', options.name, `etcd:${prefix}`);
  const requestTimeoutMs = check.number('requestTimeoutMs', options.requestTimeoutMs, DELAY_RULE, 5000);
  const backoff = backoffConfig('etcd', options.backoff);
  const reconnect = backoffConfig(
    'etcd',
    options.watchBackoff,
    { initialMs: 100, maxMs: 5000, multiplier: 2, jitter: 0.1 },
    'watchBackoff',
  );
  const makeClient = (): Etcd3 =>
    new Etcd3({
      ...options.clientOptions,
      hosts: endpoints ?? [],
      grpcOptions: {
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        ...options.clientOptions?.grpcOptions,
      },
      faultHandling: {
        watchBackoff: watchBackoffFactory(reconnect),
        ...options.clientOptions?.faultHandling,
      },
    });
  return sharedSource(name, (ctx) =>
    runEtcd(ctx, {
      name,
      prefix,
      requestTimeoutMs,
      backoff,
      client: client ?? makeClient(),
      owned: client === undefined,
    }),
  );
}

interface EtcdRun {
  readonly name: string;
  readonly prefix: string;
  readonly requestTimeoutMs: number;
  readonly backoff: Backoff;
  readonly client: Etcd3;
  readonly owned: boolean;
}

function runEtcd(ctx: SourceContext, run: EtcdRun): () => void {
  const { name, prefix, client } = run;
  let stopped = false;
  let watcher: Watcher | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  let table = new ClaimTable<DiscoveredAddress>(valueEquals);
  /** The address each etcd key currently claims. */
  let claimed = new Map<string, string>();

  /** Applies one key's new value (or its deletion); records the addresses it touched. */
  const applyKey = (key: string, raw: string | undefined, touched: Set<string>): void => {
    let value: DiscoveredAddress | undefined;
    if (raw !== undefined) {
      const parsed = parseEtcdValue(name, key, raw);
      if (parsed instanceof InvalidRecordError) {
        ctx.emit(() => ({ type: 'invalid', source: name, input: parsed.input, error: parsed }));
      } else {
        value = parsed;
      }
    }
    const before = claimed.get(key);
    if (before !== undefined && before !== value?.address) {
      table.release(before, key);
      claimed.delete(key);
      touched.add(before);
    }
    if (value !== undefined) {
      const duplicate = table.count(value.address) > 0 && !table.owners(value.address).includes(key);
      table.claim(value.address, key, key, value);
      claimed.set(key, value.address);
      touched.add(value.address);
      if (duplicate) {
        ctx.emit(() => ({
          type: 'duplicate',
          source: name,
          key: value.address,
          inputs: table.owners(value.address),
        }));
      }
    }
  };

  const fail = (error: ResolveError): void => {
    failures++;
    ctx.emit(() => ({ type: 'failed', source: name, error, failures }));
    const delayMs = backoffDelay(failures, run.backoff);
    ctx.emit(() => ({ type: 'backoff', source: name, delayMs, failures }));
    timer = unrefTimer(() => {
      timer = undefined;
      void sync('retry');
    }, delayMs);
  };

  const onEvents = (events: readonly IEvent[]): void => {
    if (events.length === 0) return;
    const touched = new Set<string>();
    for (const ev of events) {
      const key = ev.kv.key.toString();
      applyKey(key, ev.type === 'Put' ? ev.kv.value.toString() : undefined, touched);
    }
    // Net effect on each touched address, inserts first.
    const inserts: Change<string, DiscoveredAddress>[] = [];
    const removes: Change<string, DiscoveredAddress>[] = [];
    for (const address of touched) {
      const now = table.winner(address);
      if (now !== undefined) inserts.push({ type: 'insert', key: address, endpoint: now });
      else removes.push({ type: 'remove', key: address });
    }
    const { inserted, removed } = ctx.apply([...inserts, ...removes]);
    if (inserted + removed > 0) {
      ctx.emit(() => ({ type: 'resolved', source: name, count: ctx.current.size, inserted, removed }));
    }
  };

  const watch = (fromRevision: bigint): void => {
    const w = client.watch().prefix(prefix).startRevision(fromRevision.toString()).watcher();
    watcher = w;
    let down = false;
    w.on('data', (res) => {
      if (watcher === w && !stopped) onEvents(res.events);
    });
    w.on('disconnected', (err) => {
      if (watcher !== w || stopped || down) return;
      down = true;
      ctx.emit(() => ({
        type: 'disconnected',
        source: name,
        error: new ResolveError(name, `watch on ${prefix} lost its connection: ${err.message}`, {
          cause: err,
        }),
      }));
    });
    w.on('connected', () => {
      if (watcher !== w || stopped || !down) return;
      down = false;
      ctx.emit(() => ({ type: 'reconnected', source: name }));
    });
    w.on('error', (err) => {
      // Non-recoverable for this watcher: etcd cancelled it, typically because
      // the revision it resumes from was compacted. Read everything again.
      // The client has already detached the cancelled watcher.
      if (watcher !== w || stopped) return;
      watcher = undefined;
      ctx.emit(() => ({
        type: 'failed',
        source: name,
        error: new ResolveError(name, `watch on ${prefix} was cancelled (${err.message}); reading it again`, {
          cause: err,
        }),
        failures: failures + 1,
      }));
      void sync('watch-cancelled');
    });
  };

  const sync = async (reason: 'start' | 'watch-cancelled' | 'retry'): Promise<void> => {
    let kvs: IKeyValue[];
    let revision: string;
    try {
      const res = await client
        .getAll()
        .prefix(prefix)
        .options({ deadline: Date.now() + run.requestTimeoutMs })
        .exec();
      kvs = res.kvs;
      revision = res.header.revision;
    } catch (err) {
      if (stopped) return;
      const message = err instanceof Error ? err.message : String(err);
      fail(new ResolveError(name, `reading ${prefix} failed: ${message}`, { cause: err }));
      return;
    }
    if (stopped) return;
    failures = 0;
    table = new ClaimTable<DiscoveredAddress>(valueEquals);
    claimed = new Map();
    const touched = new Set<string>();
    for (const kv of kvs) applyKey(kv.key.toString(), kv.value.toString(), touched);
    const { inserted, removed } = ctx.replace(table.snapshot());
    ctx.emit(() => ({ type: 'resync', source: name, reason, revision }));
    ctx.emit(() => ({ type: 'resolved', source: name, count: ctx.current.size, inserted, removed }));
    watch(BigInt(revision) + 1n);
  };

  void sync('start');

  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const w = watcher;
    watcher = undefined;
    void (async () => {
      if (w !== undefined) {
        let wait: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          w.cancel().catch(() => undefined),
          new Promise<void>((resolve) => {
            wait = unrefTimer(resolve, 1000);
          }),
        ]);
        if (wait !== undefined) clearTimeout(wait);
      }
      if (run.owned) client.close();
    })();
  };
}
