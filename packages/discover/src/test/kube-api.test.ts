// The stand-in Kubernetes API server, checked with two real clients:
// `@kubernetes/client-node` (list, get and its Watch, as the discovery
// source uses them) and `kubectl` (a Go client, client-go, with its own
// discovery, list and watch). Every test is bounded in time, and every
// kubectl it starts is killed (its process group) in `finally`.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiException,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  type V1EndpointSlice,
  Watch,
} from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type KubeApiServer, endpointSlice, startKubeApi } from './kube-api.js';

const NS = 'shop';
const PATH = `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`;
const ORDERS = 'kubernetes.io/service-name=orders';
const TEST_MS = 20_000;
const WAIT_MS = 8_000;

function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function kubeConfig(server: KubeApiServer, token = server.token): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(server.kubeconfig.replace(server.token, token));
  return kc;
}

const slice = (name: string, addresses: string[], service = 'orders', namespace = NS) =>
  endpointSlice({
    name,
    namespace,
    service,
    endpoints: addresses.map((a) => ({ addresses: [a], ready: true })),
  });

const names = (items: readonly V1EndpointSlice[]): string[] => items.map((s) => s.metadata?.name ?? '?');
const addresses = (items: readonly V1EndpointSlice[]): Record<string, string[]> =>
  Object.fromEntries(items.map((s) => [s.metadata?.name, (s.endpoints ?? []).flatMap((e) => e.addresses)]));

interface Seen {
  readonly type: string;
  readonly object: {
    metadata?: { name?: string; resourceVersion?: string; annotations?: Record<string, string> };
  };
}

/** A client-node Watch that collects its events. */
async function watch(kc: KubeConfig, params: Record<string, string | boolean | number>) {
  const events: Seen[] = [];
  let waiters: (() => void)[] = [];
  let resolveDone: (error: unknown) => void = () => {};
  const done = new Promise<unknown>((resolve) => {
    resolveDone = resolve;
  });
  const controller = await new Watch(kc).watch(
    PATH,
    params,
    (type, object) => {
      events.push({ type, object });
      const woken = waiters;
      waiters = [];
      for (const w of woken) w();
    },
    (error) => resolveDone(error ?? null),
  );
  /** Resolves once `n` events have arrived. */
  const count = (n: number): Promise<Seen[]> =>
    within(
      new Promise<Seen[]>((resolve) => {
        const check = (): void => {
          if (events.length >= n) resolve(events.slice());
          else waiters.push(check);
        };
        check();
      }),
      `${n} watch events (have ${events.length}: ${events.map((e) => e.type).join(', ')})`,
    );
  return { events, count, done, stop: () => controller.abort() };
}

const brief = (events: readonly Seen[]): string[] =>
  events.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}@${e.object.metadata?.resourceVersion}`);

const until = async (what: string, check: () => boolean): Promise<void> =>
  within(
    (async () => {
      while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    what,
  );

let server: KubeApiServer;
beforeEach(async () => {
  server = await startKubeApi();
});
afterEach(async () => {
  await server.close();
});

describe('the stand-in, through @kubernetes/client-node', () => {
  it(
    'lists the slices a label selector picks, with the list resourceVersion and each item its own',
    async () => {
      const rvA = server.apply(slice('orders-a', ['10.0.0.1']));
      server.apply(slice('payments-a', ['10.0.1.1'], 'payments'));
      server.apply(slice('orders-elsewhere', ['10.0.2.1'], 'orders', 'other'));
      const rvB = server.apply(
        endpointSlice({
          name: 'orders-b',
          namespace: NS,
          service: 'orders',
          endpoints: [
            {
              addresses: ['10.0.0.2'],
              ready: null,
              serving: true,
              terminating: false,
              zone: 'z1',
              pod: 'orders-1',
            },
          ],
        }),
      );
      const api = kubeConfig(server).makeApiClient(DiscoveryV1Api);
      const list = await within(
        api.listNamespacedEndpointSlice({ namespace: NS, labelSelector: ORDERS }),
        'list',
      );
      expect(names(list.items)).toEqual(['orders-a', 'orders-b']);
      expect(list.metadata?.resourceVersion).toBe(server.resourceVersion);
      expect(list.items.map((s) => s.metadata?.resourceVersion)).toEqual([rvA, rvB]);
      const b = list.items[1];
      expect(b?.endpoints?.[0]?.conditions).toEqual({ serving: true, terminating: false }); // ready: null is omitted
      expect(b?.endpoints?.[0]?.zone).toBe('z1');
      expect(b?.endpoints?.[0]?.targetRef).toMatchObject({ kind: 'Pod', name: 'orders-1', namespace: NS });
      expect(b?.ports).toEqual([{ name: 'grpc', port: 50051, protocol: 'TCP' }]);
      expect(b?.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);

      const pick = async (labelSelector: string) =>
        names((await api.listNamespacedEndpointSlice({ namespace: NS, labelSelector })).items);
      expect(await pick('kubernetes.io/service-name==orders')).toEqual(['orders-a', 'orders-b']);
      expect(await pick('kubernetes.io/service-name!=orders')).toEqual(['payments-a']);
      expect(await pick('kubernetes.io/service-name in (payments, nothing)')).toEqual(['payments-a']);
      expect(
        await pick('kubernetes.io/service-name notin (payments),endpointslice.kubernetes.io/managed-by'),
      ).toEqual(['orders-a', 'orders-b']);
      expect(await pick('!kubernetes.io/service-name')).toEqual([]);
      expect(await pick('')).toEqual(['orders-a', 'orders-b', 'payments-a']);
      await expect(pick('a=b=c')).rejects.toMatchObject({ code: 400 });
      const all = await api.listEndpointSliceForAllNamespaces({ labelSelector: ORDERS });
      expect(names(all.items)).toEqual(['orders-elsewhere', 'orders-a', 'orders-b']);
      const one = await api.listNamespacedEndpointSlice({
        namespace: NS,
        fieldSelector: 'metadata.name=orders-b',
      });
      expect(names(one.items)).toEqual(['orders-b']);
    },
    TEST_MS,
  );

  it(
    'gets one slice and one node, and answers 404 with a Status for absent ones',
    async () => {
      server.apply(slice('orders-a', ['10.0.0.1']));
      server.applyNode('node-1', { 'topology.kubernetes.io/zone': 'zone-a' });
      const kc = kubeConfig(server);
      const discovery = kc.makeApiClient(DiscoveryV1Api);
      const got = await discovery.readNamespacedEndpointSlice({ namespace: NS, name: 'orders-a' });
      expect(got.kind).toBe('EndpointSlice');
      expect(got.endpoints?.map((e) => e.addresses)).toEqual([['10.0.0.1']]);
      const absent = await discovery
        .readNamespacedEndpointSlice({ namespace: NS, name: 'nope' })
        .catch((e) => e);
      expect(absent).toBeInstanceOf(ApiException);
      expect(absent.code).toBe(404);
      expect(JSON.parse(absent.body)).toMatchObject({ kind: 'Status', reason: 'NotFound', code: 404 });

      const core = kc.makeApiClient(CoreV1Api);
      const node = await core.readNode({ name: 'node-1' });
      expect(node.metadata?.labels).toEqual({ 'topology.kubernetes.io/zone': 'zone-a' });
      await expect(core.readNode({ name: 'node-2' })).rejects.toMatchObject({ code: 404 });
    },
    TEST_MS,
  );

  it(
    'a watch from the list RV gets ADDED, MODIFIED, DELETED and BOOKMARK in order, filtered by its selector',
    async () => {
      server.apply(slice('orders-a', ['10.0.0.1']));
      server.apply(slice('orders-gone', ['10.0.0.9']));
      const kc = kubeConfig(server);
      const list = await kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({ namespace: NS });
      const w = await watch(kc, {
        resourceVersion: list.metadata?.resourceVersion ?? '',
        allowWatchBookmarks: true,
        labelSelector: ORDERS,
      });
      try {
        await until('the watch to open', () => server.watches === 1);
        const added = server.apply(slice('orders-b', ['10.0.0.2']));
        server.apply(slice('payments-a', ['10.0.1.1'], 'payments')); // not selected
        server.apply(slice('orders-x', ['10.0.2.1'], 'orders', 'other')); // another namespace
        const modified = server.apply(slice('orders-a', ['10.0.0.1', '10.0.0.3']));
        const relabelled = server.apply(slice('orders-b', ['10.0.0.2'], 'payments')); // stops matching
        const deleted = server.remove(NS, 'orders-gone');
        const relabelledBack = server.apply(slice('orders-b', ['10.0.0.2'])); // matches again
        server.bookmark();
        const events = await w.count(6);
        expect(brief(events)).toEqual([
          `ADDED orders-b@${added}`,
          `MODIFIED orders-a@${modified}`,
          `DELETED orders-b@${relabelled}`,
          `DELETED orders-gone@${deleted}`,
          `ADDED orders-b@${relabelledBack}`,
          `BOOKMARK @${server.resourceVersion}`,
        ]);
        expect(events[5]?.object).toEqual({
          kind: 'EndpointSlice',
          apiVersion: 'discovery.k8s.io/v1',
          metadata: { resourceVersion: server.resourceVersion },
        });
        const watchRequest = server.requests.find((r) => r.query.watch === 'true');
        expect(watchRequest?.query).toMatchObject({
          resourceVersion: list.metadata?.resourceVersion,
          allowWatchBookmarks: 'true',
        });
      } finally {
        w.stop();
      }
    },
    TEST_MS,
  );

  it(
    'a watch without a resourceVersion starts with ADDED for the current objects; only bookmark watches get bookmarks',
    async () => {
      const rvA = server.apply(slice('orders-a', ['10.0.0.1']));
      const rvB = server.apply(slice('orders-b', ['10.0.0.2']));
      const kc = kubeConfig(server);
      const w = await watch(kc, {});
      try {
        expect(brief(await w.count(2))).toEqual([`ADDED orders-a@${rvA}`, `ADDED orders-b@${rvB}`]);
        server.bookmark();
        const rvC = server.apply(slice('orders-c', ['10.0.0.3']));
        expect(brief(await w.count(3))).toEqual([
          `ADDED orders-a@${rvA}`,
          `ADDED orders-b@${rvB}`,
          `ADDED orders-c@${rvC}`,
        ]);
      } finally {
        w.stop();
      }
    },
    TEST_MS,
  );

  it(
    'the watch-list protocol: sendInitialEvents gives ADDED events, then a bookmark marking their end',
    async () => {
      const rvA = server.apply(slice('orders-a', ['10.0.0.1']));
      const w = await watch(kubeConfig(server), {
        sendInitialEvents: true,
        resourceVersionMatch: 'NotOlderThan',
        allowWatchBookmarks: true,
      });
      try {
        const events = await w.count(2);
        expect(brief(events)).toEqual([`ADDED orders-a@${rvA}`, `BOOKMARK @${rvA}`]);
        expect(events[1]?.object.metadata?.annotations).toEqual({ 'k8s.io/initial-events-end': 'true' });
      } finally {
        w.stop();
      }
    },
    TEST_MS,
  );

  it(
    'after compact(), a watch from an older RV gets one ERROR 410 Expired and ends; an Exact list gets 410',
    async () => {
      const old = server.apply(slice('orders-a', ['10.0.0.1']));
      server.apply(slice('orders-a', ['10.0.0.2']));
      const kc = kubeConfig(server);
      const api = kc.makeApiClient(DiscoveryV1Api);
      // before compaction an Exact list at an older RV shows the state at that RV
      const then = await api.listNamespacedEndpointSlice({
        namespace: NS,
        resourceVersion: old,
        resourceVersionMatch: 'Exact',
      });
      expect(then.metadata?.resourceVersion).toBe(old);
      expect(addresses(then.items)).toEqual({ 'orders-a': ['10.0.0.1'] });
      server.compact();

      const w = await watch(kc, { resourceVersion: old, allowWatchBookmarks: true });
      expect(await within(w.done, 'the watch to end')).toBeNull();
      expect(w.events).toHaveLength(1);
      expect(w.events[0]?.type).toBe('ERROR');
      expect(w.events[0]?.object).toMatchObject({
        kind: 'Status',
        status: 'Failure',
        reason: 'Expired',
        code: 410,
      });

      await expect(
        api.listNamespacedEndpointSlice({
          namespace: NS,
          resourceVersion: old,
          resourceVersionMatch: 'Exact',
        }),
      ).rejects.toMatchObject({ code: 410 });
      // "not older than" an old RV: the current state, as the API documents
      const notOlder = await api.listNamespacedEndpointSlice({ namespace: NS, resourceVersion: old });
      expect(notOlder.metadata?.resourceVersion).toBe(server.resourceVersion);
      // an RV from the future: 504, as the apiserver answers after waiting for it
      await expect(
        api.listNamespacedEndpointSlice({ namespace: NS, resourceVersion: String(Number(old) + 100) }),
      ).rejects.toMatchObject({ code: 504 });

      // from the compaction point on, a watch works
      const fresh = await watch(kc, { resourceVersion: server.resourceVersion });
      try {
        const rv = server.apply(slice('orders-b', ['10.0.0.3']));
        expect(brief(await fresh.count(1))).toEqual([`ADDED orders-b@${rv}`]);
      } finally {
        fresh.stop();
      }
    },
    TEST_MS,
  );

  it(
    'dropWatches() ends the watch with an error, and a watch from the last RV seen replays what happened meanwhile',
    async () => {
      const kc = kubeConfig(server);
      const w = await watch(kc, { resourceVersion: server.resourceVersion });
      const rvA = server.apply(slice('orders-a', ['10.0.0.1']));
      await w.count(1);
      expect(server.watches).toBe(1);
      server.dropWatches();
      const error = await within(w.done, 'the dropped watch to end');
      expect(error).toBeInstanceOf(Error);
      expect(server.watches).toBe(0);

      const rvB = server.apply(slice('orders-b', ['10.0.0.2']));
      const rvA2 = server.apply(slice('orders-a', ['10.0.0.3']));
      const rvGone = server.remove(NS, 'orders-b');
      const again = await watch(kc, { resourceVersion: rvA });
      try {
        expect(brief(await again.count(3))).toEqual([
          `ADDED orders-b@${rvB}`,
          `MODIFIED orders-a@${rvA2}`,
          `DELETED orders-b@${rvGone}`,
        ]);
        expect(
          server.requests.filter((r) => r.query.watch === 'true').map((r) => r.query.resourceVersion),
        ).toEqual(['1', rvA]);
      } finally {
        again.stop();
      }
    },
    TEST_MS,
  );

  it(
    'endWatches() and timeoutSeconds end a watch cleanly (done with no error)',
    async () => {
      const kc = kubeConfig(server);
      const a = await watch(kc, { resourceVersion: server.resourceVersion });
      await until('the watch to open', () => server.watches === 1);
      server.endWatches();
      expect(await within(a.done, 'the ended watch')).toBeNull();

      const started = Date.now();
      const b = await watch(kc, { resourceVersion: server.resourceVersion, timeoutSeconds: 1 });
      expect(await within(b.done, 'the timed-out watch', 5_000)).toBeNull();
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(server.watches).toBe(0);
    },
    TEST_MS,
  );

  it(
    'a wrong token gets 401 with a Status, for a list and for a watch',
    async () => {
      const kc = kubeConfig(server, 'wrong-token');
      const error = await kc
        .makeApiClient(DiscoveryV1Api)
        .listNamespacedEndpointSlice({ namespace: NS })
        .catch((e) => e);
      expect(error).toBeInstanceOf(ApiException);
      expect(error.code).toBe(401); // client-node drops a 401's body: read it with node:https
      const raw = await within(
        new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
          const req = httpsGet(`${server.url}${PATH}`, { ca: server.caPem }, (res) => {
            let body = '';
            res.setEncoding('utf8').on('data', (d: string) => {
              body += d;
            });
            res.on('end', () => resolve({ status: res.statusCode, body }));
          });
          req.on('error', reject);
        }),
        'a request without a token',
      );
      expect(raw.status).toBe(401);
      expect(JSON.parse(raw.body)).toMatchObject({
        kind: 'Status',
        status: 'Failure',
        reason: 'Unauthorized',
        code: 401,
      });
      const w = await watch(kc, {});
      expect(await within(w.done, 'the refused watch')).toMatchObject({ statusCode: 401 });
      expect(server.requests.map((r) => r.status)).toEqual([401, 401, 401]);
    },
    TEST_MS,
  );

  it(
    'pause() answers 503 to new requests, resume() answers again',
    async () => {
      const api = kubeConfig(server).makeApiClient(DiscoveryV1Api);
      server.pause();
      await expect(api.listNamespacedEndpointSlice({ namespace: NS })).rejects.toMatchObject({ code: 503 });
      server.resume();
      expect((await api.listNamespacedEndpointSlice({ namespace: NS })).items).toEqual([]);
    },
    TEST_MS,
  );

  it(
    'close() ends open watches and leaves no socket, server or timer alive',
    async () => {
      const counted = new Set(['TCPSocketWrap', 'TCPServerWrap', 'TLSWrap', 'Timeout']);
      const handles = (): string[] =>
        process
          .getActiveResourcesInfo()
          .filter((r) => counted.has(r))
          .sort();
      const other = await startKubeApi(); // certificates already made: starting costs no child process
      const before = handles();
      await other.close();
      const idle = handles();
      const again = await startKubeApi();
      const w = await watch(kubeConfig(again), { timeoutSeconds: 600, allowWatchBookmarks: true });
      await until('the watch to open', () => again.watches === 1);
      await again.close();
      await within(w.done, 'the watch to end');
      // what is alive beyond the idle snapshot (a timer of the snapshot's that has
      // fired since is not a leak, so this is a multiset difference, not equality)
      const beyondIdle = (): string[] => {
        const left = [...idle];
        return handles().filter((h) => {
          const i = left.indexOf(h);
          if (i === -1) return true;
          left.splice(i, 1);
          return false;
        });
      };
      // sockets close a few turns later; wait without a timer of our own (it would count)
      const deadline = Date.now() + 2_000;
      while (beyondIdle().length > 0 && Date.now() < deadline)
        await new Promise((resolve) => setImmediate(resolve));
      expect(beyondIdle()).toEqual([]);
      expect(again.watches).toBe(0); // so its (unref'd, hence not listed) timeoutSeconds timer is cleared
      expect(before.length).toBeGreaterThan(idle.length);
    },
    TEST_MS,
  );
});

// ---- kubectl ------------------------------------------------------------

const KUBECTL = process.env.KUBECTL ?? 'kubectl';
let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'kube-api-kubectl-'));
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

const kubectlArgs = (kubeconfig: string, args: string[]): string[] => [
  '--kubeconfig',
  kubeconfig,
  '--cache-dir',
  join(home, 'cache'),
  '--request-timeout',
  '10s',
  ...args,
];

/** Runs kubectl to the end (bounded), with a HOME of its own. */
function kubectl(
  args: string[],
  kubeconfig = server.kubeconfigPath,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      KUBECTL,
      kubectlArgs(kubeconfig, args),
      { env: { ...process.env, HOME: home, KUBECONFIG: '' }, timeout: 15_000, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Splits a stream of concatenated JSON documents (compact or indented). */
function jsonDocuments(onDocument: (doc: unknown) => void): (chunk: string) => void {
  let buffer = '';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  return (chunk) => {
    const offset = buffer.length;
    buffer += chunk;
    for (let i = offset; i < buffer.length; i++) {
      const c = buffer[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === '\\') escaped = true;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === '{') {
        if (depth++ === 0) start = i;
      } else if (c === '}' && --depth === 0) {
        onDocument(JSON.parse(buffer.slice(start, i + 1)));
        buffer = buffer.slice(i + 1);
        i = -1;
      }
    }
  };
}

interface KubectlStream {
  readonly child: ChildProcess;
  readonly documents: unknown[];
  readonly stderr: () => string;
  next(n: number): Promise<unknown[]>;
  kill(): Promise<void>;
}

/** Starts a long-running kubectl (its own process group, so it can be killed whole) that prints JSON. */
function kubectlStream(args: string[]): KubectlStream {
  const child = spawn(KUBECTL, kubectlArgs(server.kubeconfigPath, args), {
    env: { ...process.env, HOME: home, KUBECONFIG: '' },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const documents: unknown[] = [];
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.stdout?.setEncoding('utf8').on(
    'data',
    jsonDocuments((d) => documents.push(d)),
  );
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  return {
    child,
    documents,
    stderr: () => stderr,
    next: async (n) => {
      await until(
        `${n} documents from kubectl ${args.join(' ')} (stderr: ${stderr})`,
        () => documents.length >= n,
      );
      return documents.slice();
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await within(exited, 'kubectl to exit', 5_000);
    },
  };
}

type Obj = {
  metadata: { name: string; labels?: Record<string, string> };
  endpoints?: { addresses: string[] }[];
};
const objAddresses = (o: Obj): string[] => (o.endpoints ?? []).flatMap((e) => e.addresses);

describe('the stand-in, through kubectl', () => {
  it(
    'kubectl get endpointslices -o json lists what client-node lists',
    async () => {
      server.apply(slice('orders-a', ['10.0.0.1', '10.0.0.2']));
      server.apply(slice('orders-b', ['10.0.0.3']));
      server.apply(slice('payments-a', ['10.0.1.1'], 'payments'));
      server.apply(slice('orders-x', ['10.0.2.1'], 'orders', 'other'));
      const listed = await kubeConfig(server)
        .makeApiClient(DiscoveryV1Api)
        .listNamespacedEndpointSlice({ namespace: NS, labelSelector: ORDERS });
      const run = await kubectl(['get', 'endpointslices', '-n', NS, '-l', ORDERS, '-o', 'json']);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const out = JSON.parse(run.stdout) as { kind: string; items: (Obj & { kind: string })[] };
      expect(out.kind).toBe('List');
      expect(out.items.map((i) => i.kind)).toEqual(['EndpointSlice', 'EndpointSlice']);
      expect(out.items.map((i) => i.metadata.name)).toEqual(names(listed.items));
      expect(Object.fromEntries(out.items.map((i) => [i.metadata.name, objAddresses(i)]))).toEqual(
        addresses(listed.items),
      );
      // kubectl read the legacy discovery documents: a kubectl from 1.26 on asks for
      // aggregated discovery first and falls back to them, Debian's (1.20) asks for them only
      const paths = server.requests.map((r) => r.path);
      expect(paths).toEqual(expect.arrayContaining(['/api', '/apis', '/apis/discovery.k8s.io/v1']));
      expect(server.requests.find((r) => r.path === '/apis')?.accept).toMatch(/application\/json/);
      expect(server.requests.filter((r) => r.status !== 200)).toEqual([]);
    },
    TEST_MS,
  );

  it(
    'kubectl get endpointslices --watch --output-watch-events -o json sees changes applied after it started',
    async () => {
      server.apply(slice('orders-a', ['10.0.0.1']));
      const stream = kubectlStream([
        'get',
        'endpointslices',
        '-n',
        NS,
        '--watch',
        '--output-watch-events',
        '-o',
        'json',
      ]);
      try {
        const [first] = (await stream.next(1)) as { type: string; object: Obj }[];
        expect(first?.type).toBe('ADDED');
        expect(first?.object.metadata.name).toBe('orders-a');
        await until('kubectl to watch', () => server.watches === 1);
        const modified = server.apply(slice('orders-a', ['10.0.0.1', '10.0.0.2']));
        const deleted = server.remove(NS, 'orders-a');
        const events = (await stream.next(3)) as {
          type: string;
          object: Obj & { metadata: { resourceVersion: string } };
        }[];
        expect(
          events.map((e) => `${e.type} ${e.object.metadata.name}@${e.object.metadata.resourceVersion}`),
        ).toEqual([`ADDED orders-a@2`, `MODIFIED orders-a@${modified}`, `DELETED orders-a@${deleted}`]);
        expect(objAddresses(events[1]!.object)).toEqual(['10.0.0.1', '10.0.0.2']);
        // kubectl listed, then watched from the list's RV
        const watchRequest = server.requests.find((r) => r.query.watch === 'true');
        expect(watchRequest?.query.resourceVersion).toBe('2');
      } finally {
        await stream.kill();
      }
    },
    TEST_MS,
  );

  it(
    'kubectl get endpointslices -w -o json prints the changed object',
    async () => {
      const stream = kubectlStream(['get', 'endpointslices', '-n', NS, '-w', '-o', 'json']);
      try {
        await until('kubectl to watch', () => server.watches === 1);
        server.apply(slice('orders-a', ['10.0.0.7']));
        const [object] = (await stream.next(1)) as Obj[];
        expect(object?.metadata.name).toBe('orders-a');
        expect(objAddresses(object!)).toEqual(['10.0.0.7']);
      } finally {
        await stream.kill();
      }
    },
    TEST_MS,
  );

  it(
    'kubectl get node -o json returns the labels; an absent node is NotFound',
    async () => {
      server.applyNode('node-1', {
        'topology.kubernetes.io/zone': 'zone-a',
        'kubernetes.io/hostname': 'node-1',
      });
      const run = await kubectl(['get', 'node', 'node-1', '-o', 'json']);
      expect(run.code).toBe(0);
      const node = JSON.parse(run.stdout) as Obj & { kind: string };
      expect(node.kind).toBe('Node');
      expect(node.metadata.labels).toEqual({
        'topology.kubernetes.io/zone': 'zone-a',
        'kubernetes.io/hostname': 'node-1',
      });
      const absent = await kubectl(['get', 'node', 'node-2', '-o', 'json']);
      expect(absent.code).not.toBe(0);
      expect(absent.stderr).toContain('nodes "node-2" not found');
    },
    TEST_MS,
  );

  it(
    'kubectl with a wrong token is refused',
    async () => {
      const wrong = join(home, 'wrong-kubeconfig.yaml');
      await writeFile(wrong, server.kubeconfig.replace(server.token, 'wrong-token'), { mode: 0o600 });
      const run = await kubectl(['get', 'endpointslices', '-n', NS, '-o', 'json'], wrong);
      expect(run.code).not.toBe(0);
      expect(run.stderr).toMatch(/Unauthorized|must be logged in/);
      expect(server.requests.length).toBeGreaterThan(0);
      expect(server.requests.every((r) => r.status === 401)).toBe(true);
    },
    TEST_MS,
  );
});
