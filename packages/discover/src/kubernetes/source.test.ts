// The kubernetes() source through the real @kubernetes/client-node against
// the stand-in API server of test support (HTTPS, list and watch with
// resourceVersions, bookmarks, 410 Gone, dropped connections; checked
// against kubectl in its own test).
import { ConfigError } from '@grpc-tower/core';
import { activeHandles, expectNoLeaks } from '@grpc-tower/testing';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { type KubeApiServer, endpointSlice, startKubeApi } from '../test/kube-api.js';
import { type Recording, record } from '../test/record.js';
import { type KubernetesOptions, kubernetes, kubernetesZone } from './source.js';

let api: KubeApiServer;
let config: KubeConfig;

let baseline: ReturnType<typeof activeHandles>;
beforeAll(async () => {
  baseline = activeHandles();
  api = await startKubeApi();
  config = new KubeConfig();
  config.loadFromString(api.kubeconfig);
});
// every list and watch connection and every backoff timer is gone once the sources stopped
afterAll(async () => {
  await api?.close();
  await expectNoLeaks(baseline, { settleMs: 5000 });
});

const open: Recording<unknown>[] = [];
afterEach(() => {
  for (const r of open.splice(0)) r.stop();
  api.resume();
});

let services = 0;
/** A fresh service name per test, so tests do not see each other's slices. */
const svc = () => `orders-${++services}`;

function source(service: string, extra: Partial<KubernetesOptions> = {}) {
  const r = record(
    kubernetes({
      service,
      port: 'grpc',
      kubeConfig: config,
      backoff: { initialMs: 50, maxMs: 200, jitter: 0 },
      watchBackoff: { initialMs: 20, maxMs: 100, jitter: 0 },
      ...extra,
    }),
  );
  open.push(r as Recording<unknown>);
  return r;
}

const waitFor = (fn: () => void, timeout = 10_000) => vi.waitFor(fn, { timeout, interval: 5 });

type Ep = Parameters<typeof endpointSlice>[0]['endpoints'][number];
const ready = (ip: string, pod: string, more: Partial<Ep> = {}): Ep => ({
  addresses: [ip],
  ready: true,
  serving: true,
  terminating: false,
  pod,
  ...more,
});

describe('kubernetes', () => {
  test('lists the slices, then watches: ready endpoints are the set, with zone, hints, pod and node', async () => {
    const service = svc();
    api.apply(
      endpointSlice({
        name: `${service}-a`,
        service,
        endpoints: [
          ready('10.1.0.1', 'p1', { zone: 'a', nodeName: 'n1', forZones: ['a'] }),
          { addresses: ['10.1.0.2'], ready: false, serving: false, terminating: false, pod: 'p2' },
        ],
      }),
    );
    api.apply(endpointSlice({ name: 'other-a', service: 'other', endpoints: [ready('10.9.0.1', 'x')] }));
    const r = source(service);
    await waitFor(() => expect(r.of('resync')).toHaveLength(1));
    expect(r.keys()).toEqual(['10.1.0.1:50051']);
    expect(r.set.get('10.1.0.1:50051')).toEqual({
      address: '10.1.0.1:50051',
      zone: 'a',
      forZones: ['a'],
      metadata: { pod: 'p1', node: 'n1' },
    });
    expect(r.of('resync')[0]).toMatchObject({
      reason: 'start',
      source: `kubernetes:default/${service}:grpc`,
    });
    expect(r.of('endpoint').map((e) => [e.key, e.pod, e.state, e.previous])).toEqual([
      ['10.1.0.1:50051', 'p1', 'ready', undefined],
      ['10.1.0.2:50051', 'p2', 'not-serving', undefined],
    ]);
    // the list asked for this service's slices only, and the watch started from the list's RV with bookmarks
    const list = api.requests.find((q) => q.path.endsWith('/endpointslices') && q.query.watch === undefined);
    expect(list?.query.labelSelector).toBe(`kubernetes.io/service-name=${service}`);
    await waitFor(() => expect(api.requests.some((q) => q.query.watch === 'true')).toBe(true));
    const watch = api.requests.findLast((q) => q.query.watch === 'true');
    expect(watch?.query.allowWatchBookmarks).toBe('true');
    expect(watch?.query.resourceVersion).toBe((r.of('resync')[0] as { revision: string }).revision);

    // a pod turns ready: inserted by the next watch event
    api.apply(
      endpointSlice({
        name: `${service}-a`,
        service,
        endpoints: [
          ready('10.1.0.1', 'p1', { zone: 'a', nodeName: 'n1', forZones: ['a'] }),
          ready('10.1.0.2', 'p2'),
        ],
      }),
    );
    await waitFor(() => expect(r.keys()).toEqual(['10.1.0.1:50051', '10.1.0.2:50051']));
    expect(r.of('endpoint').at(-1)).toMatchObject({
      key: '10.1.0.2:50051',
      state: 'ready',
      previous: 'not-serving',
    });
    expect(r.problems).toEqual([]);
  });

  test('terminating, not serving and gone take an endpoint out at once, each an event naming the pod', async () => {
    const service = svc();
    const name = `${service}-a`;
    const apply = (...endpoints: Ep[]) => api.apply(endpointSlice({ name, service, endpoints }));
    apply(ready('10.2.0.1', 'p1'), ready('10.2.0.2', 'p2'), ready('10.2.0.3', 'p3'));
    const r = source(service);
    await waitFor(() => expect(r.keys()).toHaveLength(3));
    const before = r.changes.length;

    apply(
      { addresses: ['10.2.0.1'], ready: false, serving: true, terminating: true, pod: 'p1' },
      ready('10.2.0.2', 'p2'),
      ready('10.2.0.3', 'p3'),
    );
    await waitFor(() => expect(r.keys()).toEqual(['10.2.0.2:50051', '10.2.0.3:50051']));
    // exactly one change for one watch event: the remove of the terminating pod
    expect(r.changes.slice(before)).toEqual([{ type: 'remove', key: '10.2.0.1:50051' }]);
    const terminating = r.of('endpoint').at(-1);
    expect(terminating).toMatchObject({
      key: '10.2.0.1:50051',
      pod: 'p1',
      state: 'terminating',
      previous: 'ready',
    });
    expect(terminating?.reason).toMatch(/pod p1 \(10\.2\.0\.1:50051\) is terminating: no new calls/);

    apply(
      { addresses: ['10.2.0.1'], ready: false, serving: false, terminating: true, pod: 'p1' },
      { addresses: ['10.2.0.2'], ready: false, serving: false, pod: 'p2' },
      ready('10.2.0.3', 'p3'),
    );
    await waitFor(() => expect(r.keys()).toEqual(['10.2.0.3:50051']));
    expect(r.of('endpoint').at(-1)).toMatchObject({
      key: '10.2.0.2:50051',
      state: 'not-serving',
      previous: 'ready',
    });

    apply(ready('10.2.0.3', 'p3'));
    await waitFor(() => expect(r.of('endpoint').filter((e) => e.state === 'gone')).toHaveLength(2));
    expect(
      r
        .of('endpoint')
        .filter((e) => e.state === 'gone')
        .map((e) => e.key)
        .sort(),
    ).toEqual(['10.2.0.1:50051', '10.2.0.2:50051']);

    api.remove('default', name);
    await waitFor(() => expect(r.keys()).toEqual([]));
    expect(r.of('endpoint').at(-1)).toMatchObject({
      key: '10.2.0.3:50051',
      state: 'gone',
      previous: 'ready',
    });
    expect(r.problems).toEqual([]);
  });

  test('a dropped watch resumes from the last resourceVersion without losing a change made meanwhile', async () => {
    const service = svc();
    const name = `${service}-a`;
    api.apply(endpointSlice({ name, service, endpoints: [ready('10.3.0.1', 'p1')] }));
    const r = source(service);
    await waitFor(() => expect(r.keys()).toEqual(['10.3.0.1:50051']));
    await waitFor(() => expect(api.watches).toBeGreaterThan(0));
    const seenRv = api.resourceVersion;
    api.pause(); // the reconnect fails for a while: the change below is made while no watch is open
    api.dropWatches();
    await waitFor(() => expect(r.of('disconnected')).toHaveLength(1));
    api.apply(
      endpointSlice({ name, service, endpoints: [ready('10.3.0.1', 'p1'), ready('10.3.0.2', 'p2')] }),
    );
    api.resume();
    await waitFor(() => expect(r.keys()).toEqual(['10.3.0.1:50051', '10.3.0.2:50051']));
    await waitFor(() => expect(r.of('reconnected')).toHaveLength(1));
    // resumed, not re-listed: one list in all, and the new watch asked for what came after seenRv
    expect(r.of('resync')).toHaveLength(1);
    const watches = api.requests.filter(
      (q) => q.query.watch === 'true' && q.query.labelSelector?.endsWith(service),
    );
    expect(watches.at(-1)?.query.resourceVersion).toBe(seenRv);
    expect(r.of('backoff').length).toBeGreaterThan(0);
  });

  test('a watch the server ends resumes at once; a bookmark moves the resourceVersion it resumes from', async () => {
    const service = svc();
    api.apply(endpointSlice({ name: `${service}-a`, service, endpoints: [ready('10.4.0.1', 'p1')] }));
    const r = source(service);
    await waitFor(() => expect(r.keys()).toEqual(['10.4.0.1:50051']));
    await waitFor(() => expect(api.watches).toBeGreaterThan(0));
    // other objects move the RV; the bookmark tells this watch where it is
    api.apply(
      endpointSlice({ name: 'unrelated', service: 'unrelated', endpoints: [ready('10.9.9.9', 'u')] }),
    );
    api.bookmark();
    const bookmarked = api.resourceVersion;
    const mine = () =>
      api.requests.filter((q) => q.query.watch === 'true' && q.query.labelSelector?.endsWith(service));
    const count = mine().length;
    await new Promise((resolve) => setTimeout(resolve, 50)); // the bookmark reaches the client
    api.endWatches();
    await waitFor(() => expect(mine().length).toBe(count + 1));
    expect(mine().at(-1)?.query.resourceVersion).toBe(bookmarked);
    expect(r.of('disconnected')).toHaveLength(0);
  });

  test('410 Gone re-lists and emits only the difference', async () => {
    const service = svc();
    const name = `${service}-a`;
    api.apply(
      endpointSlice({
        name,
        service,
        endpoints: [ready('10.5.0.1', 'p1'), ready('10.5.0.2', 'p2'), ready('10.5.0.3', 'p3')],
      }),
    );
    const r = source(service);
    await waitFor(() => expect(r.keys()).toHaveLength(3));
    await waitFor(() => expect(api.watches).toBeGreaterThan(0));
    api.pause();
    api.dropWatches();
    await waitFor(() => expect(r.of('disconnected')).toHaveLength(1));
    const before = r.changes.length;
    // while the client is away: p3 goes, p4 comes, and history is compacted past its RV
    api.apply(
      endpointSlice({
        name,
        service,
        endpoints: [ready('10.5.0.1', 'p1'), ready('10.5.0.2', 'p2'), ready('10.5.0.4', 'p4')],
      }),
    );
    api.compact();
    api.resume();
    await waitFor(() => expect(r.of('resync').map((e) => e.reason)).toEqual(['start', 'expired']));
    await waitFor(() => expect(r.keys()).toEqual(['10.5.0.1:50051', '10.5.0.2:50051', '10.5.0.4:50051']));
    // the new one first, then the one that left: the set never shrinks needlessly
    expect(r.changes.slice(before)).toEqual([
      {
        type: 'insert',
        key: '10.5.0.4:50051',
        endpoint: { address: '10.5.0.4:50051', metadata: { pod: 'p4' } },
      },
      { type: 'remove', key: '10.5.0.3:50051' },
    ]);
    expect(r.problems).toEqual([]);
  });

  test('a service split across two slices is merged; an address moving between slices stays', async () => {
    const service = svc();
    api.apply(
      endpointSlice({
        name: `${service}-a`,
        service,
        endpoints: [ready('10.6.0.1', 'p1'), ready('10.6.0.2', 'p2')],
      }),
    );
    api.apply(endpointSlice({ name: `${service}-b`, service, endpoints: [ready('10.6.0.3', 'p3')] }));
    const r = source(service);
    await waitFor(() => expect(r.keys()).toEqual(['10.6.0.1:50051', '10.6.0.2:50051', '10.6.0.3:50051']));
    const before = r.changes.length;
    // the controller moves p2 to slice b: added there first, then removed from a
    api.apply(
      endpointSlice({
        name: `${service}-b`,
        service,
        endpoints: [ready('10.6.0.3', 'p3'), ready('10.6.0.2', 'p2')],
      }),
    );
    api.apply(endpointSlice({ name: `${service}-a`, service, endpoints: [ready('10.6.0.1', 'p1')] }));
    api.remove('default', `${service}-b`);
    await waitFor(() => expect(r.keys()).toEqual(['10.6.0.1:50051']));
    // p2 stayed while it moved; only deleting slice b took p2 and p3 out
    expect(r.changes.slice(before).sort((x, y) => x.key.localeCompare(y.key))).toEqual([
      { type: 'remove', key: '10.6.0.2:50051' },
      { type: 'remove', key: '10.6.0.3:50051' },
    ]);
    expect(
      r
        .of('endpoint')
        .filter((e) => e.key === '10.6.0.2:50051')
        .map((e) => e.state),
    ).toEqual(['ready', 'gone']);
  });

  test('bad objects are events, never crashes: missing ports, unknown conditions, duplicate addresses', async () => {
    const service = svc();
    api.apply({
      ...endpointSlice({ name: `${service}-noports`, service, endpoints: [ready('10.7.0.1', 'p1')] }),
      ports: null,
    });
    api.apply({
      ...endpointSlice({ name: `${service}-conditions`, service, endpoints: [] }),
      endpoints: [
        // what a broken controller could write; the stand-in's types refuse it, so it is cast
        { addresses: ['10.7.0.2'], conditions: { ready: 'maybe' as unknown as boolean } },
        { addresses: ['10.7.0.3'], conditions: { ready: true, warming: true } },
      ],
    });
    api.apply(
      endpointSlice({
        name: `${service}-dup`,
        service,
        endpoints: [ready('10.7.0.4', 'p4'), ready('10.7.0.4', 'p4-again')],
      }),
    );
    const r = source(service);
    await waitFor(() => expect(r.of('resync')).toHaveLength(1));
    // an unknown extra condition is ignored; the known ones decide
    expect(r.keys()).toEqual(['10.7.0.3:50051', '10.7.0.4:50051']);
    const invalid = r.of('invalid').map((e) => e.error.message);
    expect(invalid).toEqual([
      expect.stringMatching(
        new RegExp(`EndpointSlice default/${service}-conditions endpoints\\[0\\].*"ready" is "maybe"`),
      ),
      expect.stringMatching(new RegExp(`EndpointSlice default/${service}-noports.*lists no ports`)),
    ]);
    expect(r.of('duplicate')).toEqual([
      expect.objectContaining({
        key: '10.7.0.4:50051',
        inputs: [expect.stringContaining('[0]'), expect.stringContaining('[1]')],
      }),
    ]);
    // the stream goes on: a fixed slice is picked up
    api.apply(endpointSlice({ name: `${service}-noports`, service, endpoints: [ready('10.7.0.1', 'p1')] }));
    await waitFor(() => expect(r.keys()).toContain('10.7.0.1:50051'));
    expect(r.errored).toBeUndefined();
    expect(r.completed).toBe(false);
  });

  test('a failing API keeps the last set, backs off, and recovers', async () => {
    const service = svc();
    api.pause();
    const r = source(service);
    await waitFor(() => expect(r.of('failed').length).toBeGreaterThanOrEqual(2));
    expect(r.of('failed')[0]?.error.message).toMatch(
      /listing .*endpointslices\?labelSelector=kubernetes.io\/service-name=.* failed: HTTP 503/,
    );
    expect(r.of('backoff')[0]?.delayMs).toBe(50);
    api.apply(endpointSlice({ name: `${service}-a`, service, endpoints: [ready('10.8.0.1', 'p1')] }));
    api.resume();
    await waitFor(() => expect(r.keys()).toEqual(['10.8.0.1:50051']));
    expect(r.of('resync').at(-1)?.reason).toBe('retry');
  });

  test('the port by number; a port the slices lack is an event naming the ports they have', async () => {
    const service = svc();
    api.apply(
      endpointSlice({
        name: `${service}-a`,
        service,
        ports: [{ name: 'http', port: 8080 }],
        endpoints: [ready('10.10.0.1', 'p1')],
      }),
    );
    const byNumber = source(service, { port: 8080 });
    await waitFor(() => expect(byNumber.keys()).toEqual(['10.10.0.1:8080']));
    const byName = source(service, { port: 'grpc' });
    await waitFor(() => expect(byName.of('invalid')).toHaveLength(1));
    expect(byName.of('invalid')[0]?.error.message).toMatch(/no port named "grpc" \(it has http:8080\)/);
    expect(byName.keys()).toEqual([]);
  });

  test('the last subscriber leaving closes the watch', async () => {
    const service = svc();
    // the earlier tests' sources were stopped after each: their watches close
    await waitFor(() => expect(api.watches).toBe(0));
    const r = source(service);
    await waitFor(() => expect(api.watches).toBe(1));
    r.stop();
    await waitFor(() => expect(api.watches).toBe(0));
  });

  test('options are checked, naming the option', () => {
    expect(() => kubernetes({ service: 'Orders_1', port: 'grpc', kubeConfig: config })).toThrow(ConfigError);
    expect(() => kubernetes({ service: 'orders', port: 0, kubeConfig: config })).toThrow(/option "port"/);
    expect(() => kubernetes({ service: 'orders', port: '', kubeConfig: config })).toThrow(/option "port"/);
    expect(() =>
      kubernetes({ service: 'orders', port: 'grpc', namespace: 'A B', kubeConfig: config }),
    ).toThrow(/option "namespace"/);
    expect(() => kubernetes({ service: 'orders', port: 'grpc', kubeConfig: {} as KubeConfig })).toThrow(
      /option "kubeConfig"/,
    );
    expect(() =>
      kubernetes({ service: 'orders', port: 'grpc', kubeConfig: config, watchTimeoutSeconds: 0.5 }),
    ).toThrow(/option "watchTimeoutSeconds"/);
    // the namespace defaults to the kubeconfig context's
    expect(kubernetes({ service: 'orders', port: 'grpc', kubeConfig: config }).name).toBe(
      'kubernetes:default/orders:grpc',
    );
  });
});

describe('kubernetesZone', () => {
  test("reads the zone label of this pod's node; undefined without a node or a label", async () => {
    api.applyNode('node-z', { 'topology.kubernetes.io/zone': 'zone-b', 'kubernetes.io/hostname': 'node-z' });
    api.applyNode('node-bare', {});
    expect(await kubernetesZone({ nodeName: 'node-z', kubeConfig: config })).toBe('zone-b');
    expect(await kubernetesZone({ nodeName: 'node-bare', kubeConfig: config })).toBeUndefined();
    expect(await kubernetesZone({ nodeName: '', kubeConfig: config })).toBeUndefined();
    await expect(kubernetesZone({ nodeName: 'node-missing', kubeConfig: config })).rejects.toThrow(
      /kubernetes:node\/node-missing: reading the node failed/,
    );
  });
});
