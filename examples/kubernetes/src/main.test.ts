import { type EchoServer, pickHosts, startPods } from '@grpc-tower/testing';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Dnsmasq, startDnsmasq } from '../../../packages/discover/src/test/index.js';
import { gracefulShutdown } from './graceful-shutdown.js';
import { run } from './main.js';

const SERVICE = 'echo.default.svc.cluster.local';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let dnsmasq: Dnsmasq | undefined;
let pods: EchoServer[] = [];

beforeAll(async () => {
  pods = await startPods(pickHosts(4));
  dnsmasq = await startDnsmasq({
    hosts: { [SERVICE]: [pods[0]?.host as string, pods[1]?.host as string] },
    localDomain: 'cluster.local',
  });
});

afterAll(async () => {
  await Promise.all(pods.map((p) => p.stop(0)));
  await dnsmasq?.close();
});

test('a rolling update of both pods (surge one, drain one, twice) loses no call', async () => {
  const [pod1, pod2, pod3, pod4] = pods as [EchoServer, EchoServer, EchoServer, EchoServer];
  const dns = dnsmasq as Dnsmasq;
  const answer = (...ps: EchoServer[]) => dns.setHosts({ [SERVICE]: ps.map((p) => p.host) });
  /** What Kubernetes and the server do when an old pod is replaced. */
  const replace = async (old: EchoServer, ...remaining: EchoServer[]): Promise<void> => {
    // SIGTERM: the server reports NOT_SERVING and drains (graceful-shutdown.ts) while
    // the pod leaves the Service's endpoints, so the DNS answer drops it
    const shutdown = gracefulShutdown(old.grpcServer, () => old.setServing('NOT_SERVING'), {
      drainDelayMs: 1_500,
      graceMs: 2_000,
    });
    await answer(...remaining);
    await shutdown;
  };
  const result = await run({
    service: SERVICE,
    port: pod1.port,
    dnsServers: [dns.address],
    resolveEveryMs: 500,
    ratePerSec: 100,
    during: async () => {
      await sleep(800);
      await answer(pod1, pod2, pod3); // maxSurge 1: the new pod is ready first
      await sleep(500);
      await replace(pod1, pod2, pod3);
      await answer(pod2, pod3, pod4);
      await sleep(500);
      await replace(pod2, pod3, pod4);
      await sleep(800);
    },
  });

  expect(result.failures).toEqual([]);
  for (const name of ['pod-1', 'pod-3']) expect(result.perServer[name] ?? 0).toBeGreaterThan(0);
  expect((result.perServer['pod-3'] ?? 0) + (result.perServer['pod-4'] ?? 0)).toBeGreaterThan(0);
  // every call an old pod started was answered to the client: none was lost in its shutdown
  expect(pod1.calls.total).toBe(result.perServer['pod-1'] ?? 0);
  expect(pod2.calls.total).toBe(result.perServer['pod-2'] ?? 0);
});
