// The metrics page against real peers: the demo's grpc-tower client (DNS
// discovery from the demo's DNS server, health checks, outlier detection,
// p2c, retry, timeout) with its telemetry going to a real MeterProvider and
// the Prometheus exporter, calling a real grpc-js echo server; the page read
// with real HTTP requests (fetch, and the page's own scrape), then parsed.
import { Status } from '@grpc-tower/core';
import { LATENCY_BUCKETS_S } from '@grpc-tower/telemetry';
import {
  type EchoServer,
  activeHandles,
  expectNoLeaks,
  pickHosts,
  startEchoServer,
} from '@grpc-tower/testing';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { type TowerDemoClient, dnsDiscovery, towerClient } from './clients.js';
import { DemoDns } from './dns-server.js';
import {
  type MetricsPage,
  PrometheusFormatError,
  type PrometheusSample,
  type PrometheusText,
  histogramOf,
  histogramQuantile,
  parsePrometheus,
  samplesOf,
  startMetricsPage,
  sumBy,
  sumOf,
} from './metrics.js';
import { pageFigures } from './summary.js';

const UNARY = 'grpctower.testing.Echo/Unary';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let baseline: ReturnType<typeof activeHandles>;
beforeAll(() => {
  baseline = activeHandles();
});
afterAll(async () => {
  await expectNoLeaks(baseline, { settleMs: 5000 });
});

/** A started page, closed after the test. */
async function page(): Promise<MetricsPage> {
  const p = await startMetricsPage();
  cleanups.push(() => p.close());
  return p;
}

/** One echo server (with the health service the demo's client watches) behind a DNS name, and the demo's grpc-tower client over it. */
async function towerOver(p: MetricsPage): Promise<{ server: EchoServer; client: TowerDemoClient }> {
  const [host] = pickHosts(1) as [string];
  const server = await startEchoServer({ host, name: 'A', health: true });
  cleanups.push(() => server.stop(0));
  const dns = await DemoDns.start();
  cleanups.push(() => dns.close());
  dns.set('echo.test', [host]);
  const client = towerClient(
    dnsDiscovery({ dnsServer: dns.address, name: 'echo.test', port: server.port }),
    p,
  );
  cleanups.push(() => client.close());
  return { server, client };
}

/** The page read with `fetch`, as a scraper would: the response checked, the body parsed. */
async function fetchPage(url: string): Promise<PrometheusText> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return parsePrometheus(await res.text());
}

/** The series of a histogram's buckets, by their labels other than `le`. */
function bucketSeries(samples: readonly PrometheusSample[]): Map<string, PrometheusSample[]> {
  const out = new Map<string, PrometheusSample[]>();
  for (const s of samples) {
    const { le: _, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    out.set(key, [...(out.get(key) ?? []), s]);
  }
  return out;
}

describe('the metrics page', () => {
  test('serves the grpc-tower client’s metrics at /metrics on 127.0.0.1, with gRPC’s names, labels and counts', async () => {
    const p = await page();
    expect(p.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(Number(new URL(p.url).port)).toBeGreaterThan(0);
    const { server, client } = await towerOver(p);

    // 5 calls that succeed at once, one that succeeds at its third attempt, one that fails for good
    for (let i = 0; i < 5; i++) expect(await client.unary(5_000)).toBe('A');
    server.failNext(2, Status.UNAVAILABLE, 'try again');
    expect(await client.unary(5_000)).toBe('A');
    server.failNext(1, Status.INVALID_ARGUMENT, 'no such thing');
    await expect(client.unary(5_000)).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT });
    const calls = 7;
    const attempts = calls + 2;

    const m = await fetchPage(p.url);
    const base = { grpc_method: UNARY, grpc_target: client.target };
    expect(client.target).toBe(`dns:echo.test:${server.port}`);

    // families: names with underscores, counters with _total, units and help from the instruments
    expect(m.families.get('grpc_client_attempt_started_total')).toMatchObject({
      type: 'counter',
      unit: '{attempt}',
      help: expect.stringContaining('Attempts started'),
    });
    expect(m.families.get('grpc_client_call_duration')).toMatchObject({ type: 'histogram', unit: 's' });
    expect(m.families.get('grpc_client_attempt_duration')).toMatchObject({ type: 'histogram', unit: 's' });
    expect(m.families.get('target_info')?.type).toBe('gauge');

    // attempts started: every attempt of every call, labelled with the method and the target
    const started = samplesOf(m, 'grpc_client_attempt_started_total');
    expect(started).toHaveLength(1);
    expect(started[0]?.labels).toMatchObject(base);
    expect(started[0]?.labels).not.toHaveProperty('grpc_status');
    expect(started[0]?.value).toBe(attempts);

    // calls and attempts by grpc_status
    expect(sumBy(m, 'grpc_client_call_duration_count', 'grpc_status', base)).toEqual({
      OK: 6,
      INVALID_ARGUMENT: 1,
    });
    expect(sumBy(m, 'grpc_client_attempt_duration_count', 'grpc_status', base)).toEqual({
      OK: 6,
      UNAVAILABLE: 2,
      INVALID_ARGUMENT: 1,
    });
    // A96: one call retried, twice
    expect(sumOf(m, 'grpc_client_call_retries_count', base)).toBe(1);
    expect(sumOf(m, 'grpc_client_call_retries_sum', base)).toBe(2);

    // buckets: A66's bounds, cumulative, the last le="+Inf" equal to the series' _count
    const buckets = bucketSeries(samplesOf(m, 'grpc_client_call_duration_bucket', base));
    expect([...buckets.keys()]).toHaveLength(2);
    for (const series of buckets.values()) {
      const labels = { ...series[0]?.labels };
      delete labels.le;
      expect(series.map((s) => s.labels.le)).toEqual([...LATENCY_BUCKETS_S.map(String), '+Inf']);
      for (let i = 1; i < series.length; i++) {
        expect(series[i]?.value).toBeGreaterThanOrEqual(series[i - 1]?.value as number);
      }
      const [count] = samplesOf(m, 'grpc_client_call_duration_count', labels);
      expect(series.at(-1)?.value).toBe(count?.value);
      const [sum] = samplesOf(m, 'grpc_client_call_duration_sum', labels);
      expect(sum?.value).toBeGreaterThan(0);
      expect(sum?.value).toBeLessThan((count?.value as number) * 5);
    }
    const all = histogramOf(m, 'grpc_client_call_duration', base);
    expect(all.count).toBe(calls);
    expect(all.buckets.at(-1)).toEqual({ le: Number.POSITIVE_INFINITY, count: calls });
    // the calls took at least the server's 0 ms and at most their 5 s deadline
    expect(histogramQuantile(all, 0.99)).toBeGreaterThan(0);
    expect(histogramQuantile(all, 0.99)).toBeLessThanOrEqual(5);

    // the balancer placed every attempt on the one endpoint; its connection came up once
    const endpoint = { grpc_target: client.target, grpc_tower_endpoint: server.address };
    expect(sumOf(m, 'grpc_tower_lb_endpoint_picks_total', endpoint)).toBe(attempts);
    expect(sumOf(m, 'grpc_tower_lb_endpoint_failures_total', endpoint)).toBeGreaterThanOrEqual(2);
    expect(sumOf(m, 'grpc_subchannel_connection_attempts_succeeded_total', endpoint)).toBe(1);
    expect(sumOf(m, 'grpc_subchannel_open_connections', endpoint)).toBe(1);
    expect(
      sumOf(m, 'grpc_tower_lb_endpoint_state', { ...endpoint, grpc_tower_endpoint_state: 'ready' }),
    ).toBe(1);
    expect(
      sumOf(m, 'grpc_tower_discovery_resolutions_total', { grpc_target: client.target }),
    ).toBeGreaterThanOrEqual(1);
    // every sample of the stack carries the instrumentation scope
    for (const s of m.samples.filter((x) => x.name.startsWith('grpc'))) {
      expect(s.labels.otel_scope_name).toBe('@grpc-tower/telemetry');
    }

    // the demo's figures from the same page
    const figures = pageFigures(m, p.url, client.target, [{ name: 'A', address: server.address }]);
    expect(figures).toMatchObject({
      url: p.url,
      calls,
      callsByStatus: { OK: 6, INVALID_ARGUMENT: 1 },
      attemptsStarted: attempts,
      callsRetried: 1,
      retries: 2,
      connections: { succeeded: 1, failed: 0, disconnections: 0 },
      ejections: { enforced: 0, unenforced: 0 },
      picksNow: { A: attempts },
    });
    expect(figures.callMeanMs).toBeGreaterThan(0);
    expect(figures.callP99Ms).toBeGreaterThanOrEqual(figures.callP50Ms as number);

    // the page's own scrape (http.get) reads the same counts
    const again = parsePrometheus(await p.scrape());
    expect(sumOf(again, 'grpc_client_attempt_started_total', base)).toBe(attempts);
    expect(histogramOf(again, 'grpc_client_call_duration', base).count).toBe(calls);
  });

  test('answers 404 off /metrics and 405 to other methods; after close, connections are refused and scrape names the URL', async () => {
    const p = await startMetricsPage();
    try {
      const base = new URL(p.url);
      const other = await fetch(new URL('/other', base));
      expect(other.status).toBe(404);
      expect(await other.text()).toContain('/metrics');
      const post = await fetch(p.url, { method: 'POST', body: 'x' });
      expect(post.status).toBe(405);
      expect(post.headers.get('allow')).toBe('GET, HEAD');
      await post.text();
      // with no instrument yet: only the SDK's resource
      const empty = await fetchPage(`${p.url}?x=1`);
      expect(empty.samples.map((s) => s.name)).toEqual(['target_info']);
    } finally {
      await p.close();
    }
    await p.close(); // idempotent
    await expect(fetch(p.url)).rejects.toThrow();
    await expect(p.scrape()).rejects.toThrow(new RegExp(`GET ${p.url.replaceAll('.', '\\.')} failed`));
  });

  test('a port that is taken is reported with its address', async () => {
    const p = await page();
    const port = Number(new URL(p.url).port);
    await expect(startMetricsPage({ port })).rejects.toThrow(`cannot listen on 127.0.0.1:${port}`);
  });
});

describe('parsePrometheus', () => {
  test('label values with escapes, +Inf, -Inf and NaN, timestamps, blanks, comments and families', () => {
    const text = [
      '# a comment, ignored',
      '# HELP rpc_total Calls, counted\\nper \\\\ method.',
      '# UNIT rpc_total {call}',
      '# TYPE rpc_total counter',
      'rpc_total{path="C:\\\\dir",quote="say \\"hi\\"",nl="one\\ntwo",empty=""} 3 1700000000000',
      '  rpc_total { a = "1" , b="x,}=y", } 4.5e1',
      '',
      'rpc_total{} -0.5',
      '# TYPE latency histogram',
      'latency_bucket{le="0.1"} 1',
      'latency_bucket{le="+Inf"} 2',
      'latency_sum 0.3',
      'latency_count 2',
      'weird NaN',
      'up +Inf',
      'down\t-Inf\t-12',
      'latency_total 9', // not a histogram suffix: a family of its own
      'tight{a="b"}7', // no blank needed after the labels
    ].join('\r\n');
    const page = parsePrometheus(text);
    const [first, second, third, ...rest] = page.samples;
    expect(first).toEqual({
      name: 'rpc_total',
      labels: { path: 'C:\\dir', quote: 'say "hi"', nl: 'one\ntwo', empty: '' },
      value: 3,
      timestampMs: 1_700_000_000_000,
      family: 'rpc_total',
      line: 5,
    });
    expect(second).toMatchObject({ labels: { a: '1', b: 'x,}=y' }, value: 45, line: 6 });
    expect(second).not.toHaveProperty('timestampMs');
    expect(third).toMatchObject({ labels: {}, value: -0.5, line: 8 });
    expect(rest.map((s) => [s.name, s.family])).toEqual([
      ['latency_bucket', 'latency'],
      ['latency_bucket', 'latency'],
      ['latency_sum', 'latency'],
      ['latency_count', 'latency'],
      ['weird', 'weird'],
      ['up', 'up'],
      ['down', 'down'],
      ['latency_total', 'latency_total'],
      ['tight', 'tight'],
    ]);
    expect(samplesOf(page, 'tight')[0]).toMatchObject({ labels: { a: 'b' }, value: 7 });
    expect(Number.isNaN(samplesOf(page, 'weird')[0]?.value)).toBe(true);
    expect(samplesOf(page, 'up')[0]?.value).toBe(Number.POSITIVE_INFINITY);
    expect(samplesOf(page, 'down')[0]).toMatchObject({ value: Number.NEGATIVE_INFINITY, timestampMs: -12 });
    expect(page.families.get('rpc_total')).toEqual({
      name: 'rpc_total',
      type: 'counter',
      help: 'Calls, counted\nper \\ method.',
      unit: '{call}',
    });
    expect(page.families.get('latency')).toEqual({ name: 'latency', type: 'histogram' });
    expect(sumOf(page, 'rpc_total')).toBe(3 + 45 - 0.5);
    expect(sumOf(page, 'rpc_total', { a: '1' })).toBe(45);
    expect(histogramOf(page, 'latency')).toEqual({
      buckets: [
        { le: 0.1, count: 1 },
        { le: Number.POSITIVE_INFINITY, count: 2 },
      ],
      count: 2,
      sum: 0.3,
    });
  });

  test.each([
    [
      'a value that is not a number',
      'up 1\nup{a="b"} twelve',
      2,
      /sample up has value "twelve", not a number/,
    ],
    ['no value', 'up{a="b"}', 1, /sample up has no value/],
    ['a third field', 'up 1 2 3', 1, /more than a value and a timestamp/],
    ['a fractional timestamp', 'up 1 2.5', 1, /timestamp "2\.5", not an integer/],
    ['an unclosed label value', '\n\nup{a="b} 1', 3, /the value of label a is not closed/],
    ['an unknown escape', 'up{a="\\t"} 1', 1, /invalid escape \\t in the value of label a/],
    ['a repeated label', 'up{a="1",a="2"} 1', 1, /label a appears twice/],
    ['a label without a value', 'up{a} 1', 1, /expected = after label a/],
    ['an unquoted label value', 'up{a=1} 1', 1, /expected " to open the value of label a/],
    ['a bad label name', 'up{1a="x"} 1', 1, /expected a label name or \}/],
    ['a bad metric name', '9lives 1', 1, /expected a metric name/],
    [
      'no blank after a name without labels',
      'up-1',
      1,
      /expected a blank or \{ after the name up, found "-"/,
    ],
    ['two # TYPE lines', '# TYPE up gauge\n# TYPE up gauge', 2, /a second # TYPE for up/],
    ['a # TYPE after the samples', 'up 1\n# TYPE up gauge', 2, /# TYPE for up after its samples/],
    ['an unknown type', '# TYPE up meter', 1, /has type "meter", not one of/],
    ['a # HELP without a name', '# HELP', 1, /# HELP needs a metric name/],
    ['a bad escape in a help text', '# HELP up one\\ttwo', 1, /invalid escape \\t in a help text/],
    [
      'a bucket without le',
      '# TYPE h histogram\nh_bucket{x="1"} 1',
      2,
      /histogram bucket h_bucket has no le label/,
    ],
    ['a bucket with a bad le', '# TYPE h histogram\nh_bucket{le="big"} 1', 2, /le="big", not a number/],
  ])('%s is an error naming its line', (_, text, line, message) => {
    let error: unknown;
    try {
      parsePrometheus(text);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PrometheusFormatError);
    const e = error as PrometheusFormatError;
    expect(e.line).toBe(line);
    expect(e.text).toBe(text.split('\n')[line - 1]);
    expect(e.message).toMatch(new RegExp(`^Prometheus text, line ${line}: `));
    expect(e.message).toMatch(message);
    expect(e.message).toContain(JSON.stringify(e.text));
  });

  test('histogramQuantile interpolates within the bucket, as histogram_quantile does', () => {
    const h = {
      buckets: [
        { le: 0.01, count: 50 },
        { le: 0.02, count: 90 },
        { le: 0.1, count: 100 },
        { le: Number.POSITIVE_INFINITY, count: 100 },
      ],
      count: 100,
      sum: 1.5,
    };
    expect(histogramQuantile(h, 0.25)).toBeCloseTo(0.005, 10); // from 0 to the first bound
    expect(histogramQuantile(h, 0.5)).toBeCloseTo(0.01, 10);
    expect(histogramQuantile(h, 0.7)).toBeCloseTo(0.015, 10);
    expect(histogramQuantile(h, 0.99)).toBeCloseTo(0.092, 10);
    // in +Inf: the highest finite bound
    const tail = { ...h, buckets: [...h.buckets.slice(0, 3), { le: Number.POSITIVE_INFINITY, count: 110 }] };
    expect(histogramQuantile(tail, 0.99)).toBe(0.1);
    expect(histogramQuantile({ buckets: [], count: 0, sum: 0 }, 0.5)).toBeUndefined();
  });
});

test('pageFigures: picks only of the endpoints the balancer holds, named after their server', () => {
  const t = 'grpc_target="dns:echo.demo:1"';
  const lines = [
    '# TYPE grpc_tower_lb_endpoint_state gauge',
    '# TYPE grpc_tower_lb_endpoint_picks_total counter',
  ];
  for (const [address, state, picks] of [
    ['127.0.0.2:1', 0, 40], // left: every state 0
    ['127.0.0.3:1', 1, 7],
    ['127.0.0.9:1', 1, 3], // not one of the servers: named by its address
  ] as const) {
    for (const s of ['ready', 'failed'])
      lines.push(
        `grpc_tower_lb_endpoint_state{${t},grpc_tower_endpoint="${address}",grpc_tower_endpoint_state="${s}"} ${s === 'ready' ? state : 0}`,
      );
    lines.push(`grpc_tower_lb_endpoint_picks_total{${t},grpc_tower_endpoint="${address}"} ${picks}`);
  }
  // another target's series are not this client's
  lines.push('grpc_tower_lb_endpoint_picks_total{grpc_target="other",grpc_tower_endpoint="127.0.0.3:1"} 100');
  const figures = pageFigures(parsePrometheus(lines.join('\n')), 'http://x/metrics', 'dns:echo.demo:1', [
    { name: 'A', address: '127.0.0.2:1' },
    { name: 'B', address: '127.0.0.3:1' },
  ]);
  expect(figures.picksNow).toEqual({ B: 7, '127.0.0.9:1': 3 });
  expect(figures).toMatchObject({ calls: 0, callsByStatus: {}, callMeanMs: null, callP99Ms: null });
});
