/**
 * One subscription of a Kubernetes source: list the Service's
 * EndpointSlices (paged, within the request timeout), publish the merged
 * set with one `endpoint` event per address whose state changed, then
 * watch from the list's resource version; a watch that fails or ends at
 * once backs off, and a 410 Gone lists again.
 *
 * @module
 */
import { DiscoveryV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import type { DiscoveredAddress } from '../address.js';
import { ResolveError } from '../errors.js';
import type { EndpointState } from '../events.js';
import type { SourceContext } from '../source.js';
import { type Backoff, backoffDelay, unrefTimer } from '../timing.js';
import {
  type SliceEndpoint,
  type SliceReading,
  mergeSlices,
  readSlice,
  resourceVersionOf,
  sliceName,
} from './slices.js';

const SLICES = (namespace: string): string =>
  `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`;
const SERVICE_LABEL = 'kubernetes.io/service-name';
const PAGE = 500;
/** A watch that ends sooner than this without an event counts as a failure (backoff applies). */
const SHORT_WATCH_MS = 1000;

/** The client configuration `loadFromDefault()` finds (in a pod: its service account). */
export function defaultConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromDefault();
  return config;
}

/** What one subscription needs: the source's name, what to list and watch, and its timings. */
export interface KubeRun {
  readonly name: string;
  readonly namespace: string;
  readonly service: string;
  readonly port: string | number;
  readonly config: KubeConfig;
  readonly requestTimeoutMs: number;
  readonly backoff: Backoff;
  readonly watchBackoff: Backoff;
  readonly watchTimeoutSeconds: number;
}

/**
 * An error's message, with its cause's when the message alone does not say
 * what failed: the client's fetch fails with "fetch failed", and only its
 * cause names the connection error (`connect ECONNREFUSED 10.0.0.1:6443`).
 */
export function message(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause: unknown = err.cause;
  if (!(cause instanceof Error) || cause.message === '' || err.message.includes(cause.message)) {
    return err.message;
  }
  return `${err.message} (${cause.message})`;
}

/** The HTTP status of a failed request of the client, when it has one. */
function statusOf(err: unknown): number | undefined {
  const e = err as { statusCode?: unknown; code?: unknown } | null;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}

/** Why an address is in `state`, for its `endpoint` event. */
function reasonFor(ep: SliceEndpoint | undefined, key: string, state: EndpointState): string {
  const who = ep?.pod === undefined ? key : `pod ${ep.pod} (${key})`;
  switch (state) {
    case 'ready':
      return `${who} is ready: it takes calls`;
    case 'terminating':
      return ep?.serving === true
        ? `${who} is terminating: no new calls; its calls in flight finish, then its connection closes`
        : `${who} is terminating and no longer serving: no new calls`;
    case 'not-serving':
      return `${who} is not ready: no new calls until it is`;
    case 'gone':
      return `${who} is no longer listed: no new calls; its calls in flight finish`;
  }
}

/** Lists then watches, publishing through `ctx`; returns what stops it. */
export function runKubernetes(ctx: SourceContext, run: KubeRun): () => void {
  const { name, namespace } = run;
  const labelSelector = `${SERVICE_LABEL}=${run.service}`;
  const path = SLICES(namespace);
  let stopped = false;
  /** Each slice's reading, by `namespace/name`. */
  let slices = new Map<string, SliceReading>();
  /** The last state published per address, for the `endpoint` events. */
  const states = new Map<string, EndpointState>();
  let resourceVersion: string | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let listFailures = 0;
  let watchFailures = 0;
  let down = false;
  /** The running watch's number; events of an older one are ignored. */
  let watchId = 0;
  let controller: AbortController | undefined;
  const discovery = run.config.makeApiClient(DiscoveryV1Api);
  const watcher = new Watch(run.config);

  const report = (reading: SliceReading): void => {
    for (const error of reading.invalid)
      ctx.emit(() => ({ type: 'invalid', source: name, input: error.input, error }));
    for (const d of reading.duplicates)
      ctx.emit(() => ({ type: 'duplicate', source: name, key: d.key, inputs: d.inputs }));
  };

  /** Publishes the merged set; then one `endpoint` event per address whose state changed. */
  const publish = (always = false): void => {
    const ordered = [...slices.keys()].sort().map((k) => slices.get(k) as SliceReading);
    const merged = mergeSlices(ordered);
    const next = new Map<string, DiscoveredAddress>();
    for (const [key, ep] of merged) if (ep.state === 'ready') next.set(key, ep.value);
    const { inserted, removed } = ctx.replace(next);
    const changed: [string, SliceEndpoint | undefined, EndpointState, EndpointState | undefined][] = [];
    for (const [key, ep] of merged) {
      const previous = states.get(key);
      if (previous !== ep.state) changed.push([key, ep, ep.state, previous]);
    }
    for (const [key, previous] of states) {
      if (!merged.has(key)) changed.push([key, undefined, 'gone', previous]);
    }
    for (const [key, ep, state, previous] of changed) {
      if (state === 'gone') states.delete(key);
      else states.set(key, state);
      ctx.emit(() => ({
        type: 'endpoint',
        source: name,
        key,
        ...(ep?.pod === undefined ? {} : { pod: ep.pod }),
        ...(ep?.zone === undefined ? {} : { zone: ep.zone }),
        state,
        previous,
        reason: reasonFor(ep, key, state),
      }));
    }
    if (always || inserted + removed > 0) {
      ctx.emit(() => ({ type: 'resolved', source: name, count: ctx.current.size, inserted, removed }));
    }
  };

  const later = (fn: () => void, delayMs: number): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = unrefTimer(() => {
      timer = undefined;
      if (!stopped) fn();
    }, delayMs);
  };

  const stopWatch = (): void => {
    watchId++;
    const c = controller;
    controller = undefined;
    c?.abort();
  };

  const onEvent = (id: number, type: string, object: unknown): void => {
    if (id !== watchId || stopped) return;
    const rv = resourceVersionOf(object);
    if (type === 'ADDED' || type === 'MODIFIED') {
      if (rv !== undefined) resourceVersion = rv;
      const reading = readSlice(name, object, run.port);
      report(reading);
      slices.set(sliceName(object), reading);
      publish();
    } else if (type === 'DELETED') {
      if (rv !== undefined) resourceVersion = rv;
      slices.delete(sliceName(object));
      publish();
    } else if (type === 'BOOKMARK') {
      if (rv !== undefined) resourceVersion = rv;
    } else if (type === 'ERROR') {
      const status = object as { code?: unknown; message?: unknown } | null;
      stopWatch();
      if (status?.code === 410) {
        void list('expired');
        return;
      }
      watchFailed(
        new Error(`the watch reported an error: ${String(status?.message ?? JSON.stringify(object))}`),
      );
    }
  };

  const watchFailed = (err: unknown): void => {
    watchFailures++;
    if (!down) {
      down = true;
      ctx.emit(() => ({
        type: 'disconnected',
        source: name,
        error: new ResolveError(name, `watch of ${path} lost its connection: ${message(err)}`, {
          cause: err,
        }),
      }));
    }
    const delayMs = backoffDelay(watchFailures, run.watchBackoff);
    ctx.emit(() => ({ type: 'backoff', source: name, delayMs, failures: watchFailures }));
    later(watch, delayMs);
  };

  const watch = (): void => {
    stopWatch();
    const id = watchId;
    const startedAt = performance.now();
    let events = 0;
    let ended = false;
    const timeoutSeconds = Math.max(1, Math.round(run.watchTimeoutSeconds * (0.9 + Math.random() * 0.2)));
    watcher
      .watch(
        path,
        {
          labelSelector,
          resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
        },
        (type: string, object: unknown) => {
          events++;
          onEvent(id, type, object);
        },
        (err: unknown) => {
          ended = true;
          if (id !== watchId || stopped) return;
          controller = undefined;
          if (statusOf(err) === 410) {
            void list('expired');
          } else if (err !== null && err !== undefined) {
            watchFailed(err);
          } else if (events === 0 && performance.now() - startedAt < SHORT_WATCH_MS) {
            watchFailed(new Error('the server ended the watch at once'));
          } else {
            watch();
          }
        },
      )
      .then(
        (c) => {
          if (id !== watchId || stopped || ended) {
            if (!ended) c.abort();
            return;
          }
          controller = c;
          watchFailures = 0;
          if (down) {
            down = false;
            ctx.emit(() => ({ type: 'reconnected', source: name }));
          }
        },
        (err: unknown) => {
          // no cluster in the configuration: the watch cannot even start
          if (id === watchId && !stopped) watchFailed(err);
        },
      );
  };

  const listOnce = async (): Promise<{ items: unknown[]; resourceVersion: string | undefined }> => {
    const items: unknown[] = [];
    let next: string | undefined;
    let rv: string | undefined;
    do {
      const page = await discovery.listNamespacedEndpointSlice({
        namespace,
        labelSelector,
        limit: PAGE,
        ...(next === undefined ? {} : { _continue: next }),
      });
      items.push(...(page.items ?? []));
      next = page.metadata?._continue || undefined;
      rv = page.metadata?.resourceVersion;
    } while (next !== undefined && !stopped);
    return { items, resourceVersion: rv };
  };

  const list = async (reason: 'start' | 'expired' | 'retry'): Promise<void> => {
    stopWatch();
    let deadline: ReturnType<typeof setTimeout> | undefined;
    let answer: Awaited<ReturnType<typeof listOnce>>;
    try {
      answer = await Promise.race([
        listOnce(),
        new Promise<never>((_, reject) => {
          deadline = unrefTimer(
            () => reject(new Error(`no answer within ${run.requestTimeoutMs} ms`)),
            run.requestTimeoutMs,
          );
        }),
      ]);
    } catch (err) {
      if (stopped) return;
      listFailures++;
      const status = statusOf(err);
      const detail = status === undefined ? message(err) : `HTTP ${status} ${message(err)}`;
      ctx.emit(() => ({
        type: 'failed',
        source: name,
        error: new ResolveError(name, `listing ${path}?labelSelector=${labelSelector} failed: ${detail}`, {
          cause: err,
        }),
        failures: listFailures,
      }));
      const delayMs = backoffDelay(listFailures, run.backoff);
      ctx.emit(() => ({ type: 'backoff', source: name, delayMs, failures: listFailures }));
      later(() => void list('retry'), delayMs);
      return;
    } finally {
      if (deadline !== undefined) clearTimeout(deadline);
    }
    if (stopped) return;
    listFailures = 0;
    const read = new Map<string, SliceReading>();
    for (const item of answer.items) {
      const reading = readSlice(name, item, run.port);
      report(reading);
      read.set(sliceName(item), reading);
    }
    slices = read;
    resourceVersion = answer.resourceVersion;
    ctx.emit(() => ({ type: 'resync', source: name, reason, revision: resourceVersion ?? '' }));
    publish(true);
    watch();
  };

  void list('start');

  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    stopWatch();
  };
}
