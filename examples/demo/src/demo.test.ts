// first: grpc-js must see GRPC_NODE_USE_ALTERNATIVE_RESOLVER when it loads (see grpc-env.ts)
import './grpc-env.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pickHosts } from '@grpc-tower/testing';
import { afterAll, expect, test } from 'vitest';
import { type DemoResult, runDemo } from './demo.js';
import { parsePrometheus, sumOf } from './metrics.js';
import type { DemoSummary } from './summary.js';

const PHASES = ['steady', 'crash', 'appear', 'slow', 'restart', 'settled'];
const SERVERS = ['A', 'B', 'C'];

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Checks that tags open and close in order (enough to catch a broken document). */
function expectBalancedXml(svg: string): void {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = m;
    if (selfClosing === '/') continue;
    if (closing === '/') expect(stack.pop(), `</${name}> closes the open tag`).toBe(name);
    else stack.push(name as string);
  }
  expect(stack).toEqual([]);
}

/** The checks every run's summary passes: complete, consistent, every number measured. */
function expectMeasured(summary: DemoSummary): void {
  expect(summary.version).toBe(1);
  expect(summary.mode).toBe('quick');
  expect(summary.phases.map((p) => p.name)).toEqual(PHASES);
  for (const [i, p] of summary.phases.entries()) {
    expect(p.endMs).toBeGreaterThanOrEqual(p.startMs);
    if (i > 0) expect(p.startMs).toBe(summary.phases[i - 1]?.endMs);
  }
  expect(summary.servers.map((s) => s.name)).toEqual(SERVERS);

  for (const client of summary.clients) {
    expect(client.phases.map((p) => p.name)).toEqual(PHASES);
    let ok = 0;
    let failed = 0;
    for (const p of client.phases) {
      expect(Number.isInteger(p.ok) && p.ok > 0, `${client.label}/${p.name} ok`).toBe(true);
      expect(Number.isInteger(p.failed) && p.failed >= 0, `${client.label}/${p.name} failed`).toBe(true);
      // every successful call was answered by a known server
      expect(Object.values(p.perServer).reduce((a, b) => a + b, 0)).toBe(p.ok);
      expect(p.failures.reduce((a, f) => a + f.count, 0)).toBeLessThanOrEqual(p.failed);
      expect(typeof p.p50Ms).toBe('number');
      expect(p.p99Ms).toBeGreaterThanOrEqual(p.p50Ms as number);
      ok += p.ok;
      failed += p.failed;
    }
    expect(client.totals).toEqual({ ok, failed });
    // the timeline counts the same calls, by the time they settled
    const charted = client.timeline.reduce(
      (a, b) => a + Object.values(b.perServer).reduce((x, y) => x + y, 0),
      0,
    );
    expect(charted).toBe(ok);
    expect(client.timeline.reduce((a, b) => a + b.errors, 0)).toBe(failed);
    // the crashed server answered nothing after the crash phase began
    for (const name of ['appear', 'slow', 'restart', 'settled']) {
      expect(client.phases.find((p) => p.name === name)?.perServer.A).toBe(0);
    }
    expect(client.bShareWhileSlow).toBeGreaterThanOrEqual(0);
    expect(client.bShareWhileSlow).toBeLessThanOrEqual(1);
  }
}

/** One client's line in the chart's p99 latency panel. */
interface LatencySeries {
  readonly client: string;
  readonly points: readonly { readonly startMs: number; readonly p99Ms: number }[];
}

/** The p99 latency panel of a chart, read from its SVG: its bucket width and one series per client. */
function latencyPanel(svg: string): { bucketMs: number; series: LatencySeries[] } {
  const panel = /<g class="panel" id="latency-p99" data-bucket-ms="(\d+)">([\s\S]*?)\n<\/g>\n<\/svg>/.exec(
    svg,
  );
  expect(panel, 'the chart has a latency panel').not.toBeNull();
  const series = [
    ...(panel?.[2] ?? '').matchAll(/<g class="latency-series" data-client="([^"]+)" data-points="([^"]*)">/g),
  ].map((m) => ({
    client: m[1] ?? '',
    points: (m[2] ?? '')
      .split(' ')
      .filter((p) => p.length > 0)
      .map((p) => {
        const [startMs, p99Ms] = p.split(',').map(Number);
        return { startMs: startMs ?? Number.NaN, p99Ms: p99Ms ?? Number.NaN };
      }),
  }));
  return { bucketMs: Number(panel?.[1]), series };
}

/**
 * The chart: a document in `dir` with one series per server for each client,
 * and a latency panel with one series per client, whose points are the p99
 * latencies the summary measured per bucket (plausible ones: no faster than
 * the servers answer, no slower than the call deadline).
 */
async function expectChart(result: DemoResult, dir: string): Promise<LatencySeries[]> {
  const summary = result.summary;
  const svg = await readFile(result.chartPath, 'utf8');
  expect(result.chartPath.startsWith(dir)).toBe(true);
  expect(svg.startsWith('<svg')).toBe(true);
  expectBalancedXml(svg);
  for (const client of summary.clients) {
    const series = [...svg.matchAll(/<g class="series" data-client="([^"]+)" data-server="([^"]+)">/g)]
      .filter((m) => m[1] === client.label)
      .map((m) => m[2]);
    expect(series).toEqual(SERVERS);
  }
  const latency = latencyPanel(svg);
  expect(latency.bucketMs).toBe(summary.bucketMs);
  expect(latency.series.map((s) => s.client)).toEqual(summary.clients.map((c) => c.label));
  for (const [i, client] of summary.clients.entries()) {
    const points = latency.series[i]?.points ?? [];
    const measured = client.timeline.filter((b) => b.p99Ms !== null);
    // every bucket with an answered call, but a last partial one the chart may leave out
    expect(points.length).toBeGreaterThanOrEqual(measured.length - 1);
    for (const p of points) {
      expect(measured.find((b) => b.startMs === p.startMs)?.p99Ms, `${client.label} at ${p.startMs} ms`).toBe(
        p.p99Ms,
      );
      expect(p.p99Ms).toBeGreaterThanOrEqual(summary.settings.serverLatencyMs);
      expect(p.p99Ms).toBeLessThanOrEqual(summary.settings.callDeadlineMs + summary.bucketMs);
    }
  }
  return latency.series;
}

test('the quick story runs both clients and writes a measured, well-formed summary and chart', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'grpc-tower-demo-'));
  dirs.push(dir);
  const printed: string[] = [];
  const jsonPath = join(dir, 'nested', 'summary.json');
  // while the demo runs, its metrics page is read once, over HTTP, when the traffic starts
  let pageUrl: string | undefined;
  let midRun: Promise<{ status: number; body: string }> | undefined;
  const write = (text: string): void => {
    printed.push(text);
    pageUrl ??= /^metrics: (http:\/\/127\.0\.0\.1:\d+\/metrics)$/m.exec(text)?.[1];
    if (midRun === undefined && pageUrl !== undefined && text.includes('traffic starts')) {
      midRun = fetch(pageUrl).then(async (res) => ({ status: res.status, body: await res.text() }));
      midRun.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    }
  };
  const result: DemoResult = await runDemo({
    quick: true,
    compare: true,
    outDir: dir,
    jsonPath,
    view: 'lines',
    write,
    hosts: pickHosts(3) as [string, string, string],
  });

  // the JSON file is the summary that was returned
  const summary = JSON.parse(await readFile(jsonPath, 'utf8')) as DemoSummary;
  expect(summary).toEqual(JSON.parse(JSON.stringify(result.summary)));
  expect(summary.clients.map((c) => c.label)).toEqual(['grpc-tower', 'grpc-js round_robin']);
  expect(summary.settings.discovery).toBe('dns');
  expectMeasured(summary);

  const [tower] = summary.clients;
  // grpc-tower found C through DNS and sent it calls
  expect(tower?.cFirstCallMs).toBeGreaterThan(0);
  expect(Number.isFinite(tower?.cFirstCallMs)).toBe(true);
  // and moved traffic away from the slow server
  expect(tower?.bShareWhileSlow).toBeLessThan(0.5);

  // the latency panel shows the slow phase: grpc-js round_robin's p99 takes B's latency, and in
  // some of its buckets grpc-tower's p99 is below grpc-js's
  const [towerLatency, grpcLatency] = await expectChart(result, dir);
  const slow = summary.phases.find((p) => p.name === 'slow');
  const inSlow = (s: LatencySeries | undefined) =>
    new Map(
      (s?.points ?? [])
        .filter(
          (p) =>
            slow !== undefined && p.startMs >= slow.startMs && p.startMs + summary.bucketMs <= slow.endMs,
        )
        .map((p) => [p.startMs, p.p99Ms]),
    );
  const towerSlow = inSlow(towerLatency);
  const grpcSlow = inSlow(grpcLatency);
  expect(towerSlow.size).toBeGreaterThan(0);
  expect(grpcSlow.size).toBeGreaterThan(0);
  expect(Math.max(...grpcSlow.values())).toBeGreaterThanOrEqual(summary.settings.slowLatencyMs);
  const below = [...towerSlow].filter(([at, p99]) => p99 < (grpcSlow.get(at) ?? Number.NEGATIVE_INFINITY));
  console.info(
    `p99 per bucket while B was slow, grpc-tower / grpc-js (ms): ${[...towerSlow]
      .map(([at, p99]) => `${p99}/${grpcSlow.get(at) ?? '-'}`)
      .join(' ')}; grpc-tower below in ${below.length} of ${towerSlow.size}`,
  );
  expect(below.length).toBeGreaterThan(0);

  // the metrics page: printed at the start, read while the demo ran, closed at the end
  expect(pageUrl).toBe(summary.metrics.url);
  const during = await midRun;
  expect(during?.status).toBe(200);
  const early = parsePrometheus(during?.body ?? '');
  // the warm-up call at least, labelled with the grpc-tower client's target
  expect(
    sumOf(early, 'grpc_client_attempt_started_total', { grpc_target: summary.metrics.target }),
  ).toBeGreaterThanOrEqual(1);
  await expect(fetch(summary.metrics.url)).rejects.toThrow();

  // the figures read back from the page at the end agree with the calls the demo counted
  const m = summary.metrics;
  expect(m.target).toMatch(/^dns:echo\.demo:\d+$/);
  expect(m.families).toBeGreaterThan(10);
  expect(m.calls).toBe(Object.values(m.callsByStatus).reduce((a, b) => a + b, 0));
  // the page also counts the warm-up calls, which the demo's recorder does not
  const counted = tower?.totals ?? { ok: 0, failed: 0 };
  expect(m.callsByStatus.OK).toBeGreaterThanOrEqual(counted.ok + 1);
  expect(m.callsByStatus.OK).toBeLessThanOrEqual(counted.ok + 1 + counted.failed);
  expect(m.attemptsStarted).toBeGreaterThanOrEqual(m.calls + m.retries);
  expect(m.retries).toBeGreaterThanOrEqual(m.callsRetried);
  expect(m.callMeanMs).toBeGreaterThan(0);
  expect(m.callP99Ms).toBeGreaterThanOrEqual(m.callP50Ms as number);
  // A, B and C connected; A's connection was lost when it crashed
  expect(m.connections.succeeded).toBeGreaterThanOrEqual(3);
  expect(m.connections.disconnections).toBeGreaterThanOrEqual(1);
  expect(m.ejections.enforced).toBeGreaterThanOrEqual(0);
  expect(m.dnsResolutions).toBeGreaterThanOrEqual(1);
  // the balancer holds B and C at the end (A left it), and sent each of them calls
  expect(Object.keys(m.picksNow).sort()).toEqual(['B', 'C']);
  for (const n of Object.values(m.picksNow)) expect(n).toBeGreaterThan(0);

  // the printed summary names both files
  const text = printed.join('');
  expect(text).toContain('grpc-tower demo, discovery dns: ');
  expect(text).toContain(result.chartPath);
  expect(text).toContain(jsonPath);
  expect(text).toContain("B's share while slow");
  expect(text).toContain(`metrics: ${summary.metrics.url}`);
  expect(text).toContain("grpc-tower's telemetry, read back from its metrics page");
  expect(text).toMatch(new RegExp(`calls, by grpc_status +${m.calls} \\(${m.callsByStatus.OK} OK`));
}, 180_000);

test('with kubernetes discovery, the quick story loses no call in the rolling restart and C gets calls', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'grpc-tower-demo-kube-'));
  dirs.push(dir);
  const printed: string[] = [];
  const result = await runDemo({
    quick: true,
    discovery: 'kubernetes',
    outDir: dir,
    view: 'lines',
    write: (text) => printed.push(text),
    hosts: pickHosts(3) as [string, string, string],
  });
  const summary = result.summary;
  expect(summary.settings.discovery).toBe('kubernetes');
  expect(summary.clients.map((c) => c.label)).toEqual(['grpc-tower']);
  expectMeasured(summary);
  await expectChart(result, dir);

  const [tower] = summary.clients;
  // B and C turned terminating, drained, stopped and came back: no call failed meanwhile
  expect(tower?.phases.find((p) => p.name === 'restart')?.failed).toBe(0);
  // C got calls from the watch event that made it ready on
  expect(tower?.cFirstCallMs).not.toBeNull();
  for (const name of ['appear', 'slow', 'settled']) {
    expect(tower?.phases.find((p) => p.name === name)?.perServer.C).toBeGreaterThan(0);
  }
  // the client heard each restarted server turn terminating, through its watch
  for (const pod of ['echo-b', 'echo-c']) {
    expect(
      summary.events.some(
        (e) => e.text.startsWith(`watch: pod ${pod} (`) && e.text.includes(' is terminating'),
      ),
      `${pod} terminating`,
    ).toBe(true);
  }
  expect(summary.metrics.target).toBe('kubernetes:demo/echo:grpc');
  expect(summary.metrics.dnsResolutions).toBeGreaterThanOrEqual(1);
  const text = printed.join('');
  expect(text).toContain('grpc-tower demo, discovery kubernetes: ');
  expect(text).toContain('EndpointSlices of Service demo/echo');
  expect(text).toContain('C ready → its first call');
}, 120_000);

test('with xds discovery, the quick story loses no call in the rolling restart and C gets calls', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'grpc-tower-demo-xds-'));
  dirs.push(dir);
  const printed: string[] = [];
  const result = await runDemo({
    quick: true,
    discovery: 'xds',
    outDir: dir,
    view: 'lines',
    write: (text) => printed.push(text),
    hosts: pickHosts(3) as [string, string, string],
  });
  const summary = result.summary;
  expect(summary.settings.discovery).toBe('xds');
  expectMeasured(summary);
  const [tower] = summary.clients;
  // B and C turned DRAINING in EDS, drained, stopped and came back: no call failed meanwhile
  expect(tower?.phases.find((p) => p.name === 'restart')?.failed).toBe(0);
  expect(tower?.cFirstCallMs).not.toBeNull();
  for (const name of ['appear', 'slow', 'settled']) {
    expect(tower?.phases.find((p) => p.name === name)?.perServer.C).toBeGreaterThan(0);
  }
  // the client heard each restarted server turn DRAINING, through its ADS stream
  expect(
    summary.events.filter((e) => e.text.includes('health_status DRAINING')).length,
  ).toBeGreaterThanOrEqual(2);
  expect(summary.metrics.target).toBe('xds:///echo.demo');
  const text = printed.join('');
  expect(text).toContain('grpc-tower demo, discovery xds: ');
  expect(text).toContain('EDS of echo.demo');
  expect(text).toContain('C HEALTHY in EDS → its first call');
}, 120_000);
