// A rolling update with the client on EndpointSlices, against the stand-in
// Kubernetes API server of the test support (HTTPS, list and watch; no real
// API server can run here) and real echo servers: each old pod turns
// terminating in the Service's slice and gets SIGTERM at the same moment,
// and shuts down with no drain delay (NOT_SERVING, GOAWAY at once, the
// calls in flight finish), as the servers of k8s/echo.yaml do with
// DRAIN_DELAY_MS=0.
import { type EchoServer, pickHosts, startPods } from '@grpc-tower/testing';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  type KubeApiServer,
  endpointSlice,
  startKubeApi,
} from '../../../packages/discover/src/test/index.js';
import { sendTraffic } from './client.js';
import { endpointSlicesClient } from './endpointslices.js';
import { gracefulShutdown } from './graceful-shutdown.js';

const SERVICE = 'echo';
const NODE = 'node-a';
const ZONE = 'europe-west1-b';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let api: KubeApiServer | undefined;
let pods: EchoServer[] = [];

beforeAll(async () => {
  pods = await startPods(pickHosts(4));
  api = await startKubeApi();
  api.applyNode(NODE, { 'kubernetes.io/hostname': NODE, 'topology.kubernetes.io/zone': ZONE });
});

afterAll(async () => {
  await Promise.all(pods.map((p) => p.stop(0)));
  await api?.close();
});

test('a rolling update where each old pod turns terminating and stops at once, with no drain delay, loses no call', async () => {
  const server = api as KubeApiServer;
  const [pod1, pod2, pod3, pod4] = pods as [EchoServer, EchoServer, EchoServer, EchoServer];
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(server.kubeconfig);

  // the Service's one slice, as the EndpointSlice controller maintains it
  const states = new Map<EchoServer, 'ready' | 'terminating'>([
    [pod1, 'ready'],
    [pod2, 'ready'],
  ]);
  const publish = (): void => {
    server.apply(
      endpointSlice({
        name: `${SERVICE}-x7k2p`,
        service: SERVICE,
        ports: [{ name: 'grpc', port: pod1.port, protocol: 'TCP' }],
        endpoints: [...states].map(([pod, state]) => ({
          addresses: [pod.host],
          ready: state === 'ready',
          serving: true,
          terminating: state === 'terminating',
          pod: pod.name,
          nodeName: NODE,
          zone: ZONE,
        })),
      }),
    );
  };
  publish();

  /** What Kubernetes and the server do when an old pod is replaced. */
  const replace = async (old: EchoServer, next: EchoServer): Promise<void> => {
    // maxSurge 1: the new pod turns ready first
    states.set(next, 'ready');
    publish();
    await sleep(500);
    // the old pod turns terminating and gets SIGTERM at the same moment: no drain delay
    states.set(old, 'terminating');
    publish();
    await gracefulShutdown(old.grpcServer, () => old.setServing('NOT_SERVING'), {
      drainDelayMs: 0,
      graceMs: 2_000,
    });
    // the pod has exited: the controller drops it from the slice
    states.delete(old);
    publish();
  };

  const lines: string[] = [];
  const echo = await endpointSlicesClient({
    service: SERVICE,
    port: 'grpc',
    kubeConfig,
    nodeName: NODE,
    log: (line) => lines.push(line),
  });
  const result = await sendTraffic(echo, {
    ratePerSec: 200,
    during: async () => {
      await sleep(800);
      await replace(pod1, pod3);
      await sleep(500);
      await replace(pod2, pod4);
      await sleep(800);
    },
  });

  expect(result.failures).toEqual([]);
  for (const name of ['pod-1', 'pod-2', 'pod-3', 'pod-4'])
    expect(result.perServer[name] ?? 0).toBeGreaterThan(0);
  // every call an old pod started was answered to the client: none was lost in its shutdown
  expect(pod1.calls.total).toBe(result.perServer['pod-1'] ?? 0);
  expect(pod2.calls.total).toBe(result.perServer['pod-2'] ?? 0);
  // the client learned its zone from its node, and each pod's terminating state from the watch
  expect(lines).toContain(`kubernetes:default/${SERVICE}:grpc: zone ${ZONE}`);
  for (const old of [pod1, pod2]) {
    expect(lines.some((l) => l.startsWith(`pod ${old.name} (${old.address}) is terminating`))).toBe(true);
  }
});
