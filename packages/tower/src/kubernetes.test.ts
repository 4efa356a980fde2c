// The shutdown scenario of a rolling update on Kubernetes, played against
// real grpc-js servers (the pods, on their own 127.0.0.x addresses and one
// port), the stand-in Kubernetes API server of test support (checked
// against kubectl in its own test) and a real dnsmasq: each old pod turns
// terminating in its EndpointSlice and gets SIGTERM at the same moment, and
// its server does nothing special on SIGTERM: it sends GOAWAY at once and
// lets the calls in flight finish, with no drain delay and no preStop
// sleep. One client finds the pods through kubernetes(), another through
// DNS (polled every second), both under the same load.
import * as grpc from '@grpc/grpc-js';
import { kubernetes } from '@grpc-tower/discover/kubernetes';
import {
  type EchoServer,
  activeHandles,
  createEchoClient,
  expectNoLeaks,
  loadEchoPackage,
  pickHosts,
  startPods,
} from '@grpc-tower/testing';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  type Dnsmasq,
  type KubeApiServer,
  endpointSlice,
  startDnsmasq,
  startKubeApi,
} from '../../discover/src/test/index.js';
import { towerChannel } from './channel.js';
import { CALL_EVERY_MS, firstPick, load, picks, picksAfter } from './test/load.js';

const insecure = grpc.credentials.createInsecure();
const { EchoService } = loadEchoPackage();
const NAME = 'orders.rolling.test';
const SERVICE = 'orders';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let pods: EchoServer[] = [];
let api: KubeApiServer;
let dnsmasq: Dnsmasq;
let baseline: ReturnType<typeof activeHandles>;

beforeAll(async () => {
  baseline = activeHandles();
  pods = await startPods(pickHosts(6));
  api = await startKubeApi();
  dnsmasq = await startDnsmasq({ hosts: { [NAME]: pods.slice(0, 3).map((p) => p.host) } });
});

afterAll(async () => {
  await Promise.all(pods.map((p) => p.stop(0)));
  await dnsmasq?.close();
  await api?.close();
  await expectNoLeaks(baseline, { settleMs: 5000 });
});

test('a rolling update where each old pod turns terminating and gets SIGTERM at once: no call fails through kubernetes(); DNS for comparison', async () => {
  const port = (pods[0] as EchoServer).port;
  const config = new KubeConfig();
  config.loadFromString(api.kubeconfig);

  // the Service's one slice, as the EndpointSlice controller maintains it
  const states = new Map<EchoServer, 'ready' | 'terminating'>();
  const publish = () =>
    api.apply(
      endpointSlice({
        name: `${SERVICE}-x7k2p`,
        service: SERVICE,
        ports: [{ name: 'grpc', port, protocol: 'TCP' }],
        endpoints: [...states].map(([pod, state]) => ({
          addresses: [pod.host],
          ready: state === 'ready',
          serving: true,
          terminating: state === 'terminating',
          pod: pod.name,
        })),
      }),
    );
  for (const pod of pods.slice(0, 3)) states.set(pod, 'ready');
  publish();

  const source = kubernetes({ service: SERVICE, port: 'grpc', kubeConfig: config });
  /** When each endpoint event reached the client, by `state address`. */
  const heard = new Map<string, number>();
  const kubeInFlight = new Map<string, number>();
  /** The kubernetes client's attempts in flight on each old pod when it heard the pod turn terminating. */
  const inFlightAtTerminating = new Map<string, number>();
  const events = source.events$.subscribe((e) => {
    if (e.type !== 'endpoint') return;
    heard.set(`${e.state} ${e.key}`, performance.now());
    if (e.state === 'terminating') inFlightAtTerminating.set(e.key, kubeInFlight.get(e.key) ?? 0);
  });
  const kubePicks: { address: string; at: number }[] = [];
  const dnsPicks: { address: string; at: number }[] = [];
  const target = `dns:///${NAME}:${port}`;
  const kubeChannel = towerChannel(target, insecure, {
    services: [EchoService],
    discovery: source,
    layers: { inner: [picks(kubePicks, kubeInFlight)] },
  });
  const dnsTarget = `dns://${dnsmasq.address}/${NAME}:${port}`;
  const dnsChannel = towerChannel(dnsTarget, insecure, {
    services: [EchoService],
    dns: { intervalMs: 1000 },
    layers: { inner: [picks(dnsPicks)] },
  });
  const kubeClient = createEchoClient(target, { channelOverride: kubeChannel });
  const dnsClient = createEchoClient(dnsTarget, { channelOverride: dnsChannel });
  const readyAt = new Map<EchoServer, number>();
  const sigtermAt = new Map<EchoServer, number>();
  const stopped: Promise<void>[] = [];
  // each call takes a while, so an old pod has calls in flight when it turns terminating
  for (const pod of pods) pod.setLatency(15);
  try {
    const kubeLoad = load(kubeClient, CALL_EVERY_MS);
    const dnsLoad = load(dnsClient, CALL_EVERY_MS);
    await sleep(600);
    for (let i = 0; i < 3; i++) {
      const old = pods[i] as EchoServer;
      const next = pods[i + 3] as EchoServer;
      // maxSurge 1: the new pod turns ready in the slice and in DNS
      states.set(next, 'ready');
      publish();
      readyAt.set(next, performance.now());
      await dnsmasq.setHosts({ [NAME]: [...states].filter(([, s]) => s === 'ready').map(([p]) => p.host) });
      await sleep(400);
      // the old pod turns terminating and gets SIGTERM at the same moment: GOAWAY at once, no drain delay
      states.set(old, 'terminating');
      publish();
      sigtermAt.set(old, performance.now());
      stopped.push(old.stop(5000));
      await dnsmasq.setHosts({ [NAME]: [...states].filter(([, s]) => s === 'ready').map(([p]) => p.host) });
      await sleep(400);
      // the pod has exited: the controller drops it from the slice
      states.delete(old);
      publish();
    }
    await sleep(1500);
    await Promise.all([kubeLoad.stop(), dnsLoad.stop()]);
    await Promise.all(stopped);

    const report: Record<string, unknown> = { kubernetes: {}, dns: {} };
    const k = report.kubernetes as Record<string, unknown>;
    const d = report.dns as Record<string, unknown>;
    k.calls = kubeLoad.calls;
    k.failed = kubeLoad.failures.length;
    d.calls = dnsLoad.calls;
    d.failed = dnsLoad.failures.length;
    d.failures = [...new Set(dnsLoad.failures)].slice(0, 3);

    for (const old of pods.slice(0, 3)) {
      const term = heard.get(`terminating ${old.address}`);
      expect(term, `the client heard ${old.name} turn terminating`).toBeDefined();
      const after = picksAfter(kubePicks, old.address, term as number);
      k[`${old.name} picks after its terminating event`] = after;
      k[`${old.name} calls in flight at its terminating event`] = inFlightAtTerminating.get(old.address);
      expect(after).toBe(0);
      const sigterm = sigtermAt.get(old) as number;
      d[`${old.name} picks after SIGTERM`] = dnsPicks.filter(
        (p) => p.address === old.address && p.at > sigterm,
      ).length;
    }
    for (const next of pods.slice(3)) {
      const heardReady = heard.get(`ready ${next.address}`) as number;
      expect(heardReady, `the client heard ${next.name} turn ready`).toBeDefined();
      const first = firstPick(kubePicks, next.address, heardReady);
      expect(first, `${next.name} got a call`).toBeDefined();
      const between = first?.before ?? Number.POSITIVE_INFINITY;
      k[`${next.name} first call after ready (ms)`] = Math.round(
        (first?.at ?? 0) - (readyAt.get(next) as number),
      );
      k[`${next.name} calls placed before its first`] = between;
      // at one call every 4 ms, 25 calls are 100 ms: a new pod is in use within a few dozen calls
      expect(between).toBeLessThanOrEqual(50);
      const dnsFirst = dnsPicks.find(
        (p) => p.address === next.address && p.at >= (readyAt.get(next) as number),
      );
      d[`${next.name} first call after ready (ms)`] =
        dnsFirst === undefined ? 'none' : Math.round(dnsFirst.at - (readyAt.get(next) as number));
    }
    console.log(
      `rolling update, one call every ${CALL_EVERY_MS} ms per client:\n${JSON.stringify(report, null, 2)}`,
    );
    // calls were in flight on the old pods when they turned terminating, and none of them failed
    expect([...inFlightAtTerminating.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(kubeLoad.failures).toEqual([]);
    // every call an old pod started was answered: none was lost in its shutdown
    expect(pods.slice(0, 3).every((p) => p.calls.total > 0)).toBe(true);
  } finally {
    events.unsubscribe();
    kubeClient.close();
    dnsClient.close();
    await kubeChannel.closeAsync();
    await dnsChannel.closeAsync();
  }
}, 60_000);
