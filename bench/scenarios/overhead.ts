/**
 * overhead: what grpc-tower costs on the unary path, over one server in a
 * child process. Clients of the same echo service, measured in
 * alternating rounds:
 *
 * - grpc-js (baseline): a plain grpc-js client;
 * - createChannel (bare): `createChannel` over one native `grpcEndpoint`;
 * - createChannel (full stack): static discovery → health checking →
 *   outlier detection → p2c (PeakEWMA) → retry with a budget → timeout,
 *   over native endpoints;
 * - towerChannel: the full default stack as `towerChannel` builds it
 *   (native transport);
 * - the bare channel and the full stack over grpc-js endpoints
 *   (`transport: 'grpc-js'`), what they cost before the native transport.
 *
 * Per round and client: throughput of a closed loop (32 calls in flight),
 * the client process's CPU time per call during it, the latency of each of
 * those calls (p99 under load), then a run of sequential calls (p50/p99
 * with no queueing). Targets (ratios taken round by round): the bare
 * channel ≥ 1.25× plain grpc-js's throughput at ≤ 0.65× its client CPU
 * per call; `towerChannel` ≥ 1.1× at ≤ 0.85×; `towerChannel`'s sequential
 * p50 at most 10 µs above grpc-js's and its p99 ≤ 1.05× grpc-js's.
 *
 * Telemetry: the full stack with `@grpc-tower/telemetry`'s layers and
 * observers, recording into the OpenTelemetry SDK (metrics into an
 * in-memory reader, collected between runs; every call and attempt traced
 * through a batch processor into an in-process exporter that counts the
 * spans), with metrics and traces, metrics only, traces only, and with no
 * SDK; the per-call metrics through the Meter API or through the package's
 * `callMetricsProducer()`, and with 1 % of calls traced. Targets: metrics
 * and traces (every call, Meter API) ≤ 5 µs of client CPU per call over the
 * full stack; metrics by the producer ≤ 5 µs; with no SDK, no measurable
 * difference (≤ 1.5 µs, below the machine's noise).
 *
 * Per layer: the bare channel with one layer of the full stack added
 * (timeout, retry, health checking, outlier detection, p2c), each measured
 * in the same rounds with the same closed loop; the table gives the client
 * CPU per call each layer adds to the bare channel's, round by round.
 *
 * @module
 */
import { staticList } from '@grpc-tower/discover';
import { telemetry } from '@grpc-tower/telemetry';
import { closedLoop, sequential } from '../lib/load.js';
import { startBenchSdk } from '../lib/otel.js';
import { roundOrder } from '../lib/rounds.js';
import { type ScenarioBody, type ScenarioOptions, target } from '../lib/schema.js';
import { HOSTS, spawnServers, stopServers } from '../lib/servers.js';
import {
  type Contender,
  FULL_STACK,
  LAYER_DESCRIPTIONS,
  LAYER_STACKS,
  type LayerName,
  bareChannel,
  closeAll,
  fullStack,
  plainClient,
  towerClient,
} from '../lib/stacks.js';
import { RoundRecorder, percentile, sortedSamples } from '../lib/stats.js';

const BASE = 'grpc-js';
const BARE = 'createChannel (bare)';
const FULL = 'createChannel (full stack)';
const TOWER = 'towerChannel';
const BARE_GRPC_JS = 'createChannel (bare, grpc-js endpoint)';
const FULL_GRPC_JS = 'createChannel (full stack, grpc-js endpoints)';
/** The rows of the main table, in order (the bare channel second: the layer runs pair with it). */
const MAIN_ROWS = [BASE, BARE, FULL, TOWER, BARE_GRPC_JS, FULL_GRPC_JS];
const TELEMETRY = 'full stack + telemetry (SDK: metrics, traces)';
const TELEMETRY_FAST = 'full stack + telemetry (SDK: metrics by callMetricsProducer, traces)';
const TELEMETRY_SAMPLED = 'full stack + telemetry (SDK: metrics by callMetricsProducer, 1 % of calls traced)';
const TELEMETRY_METRICS = 'full stack + telemetry (SDK: metrics only)';
const TELEMETRY_FAST_METRICS = 'full stack + telemetry (SDK: metrics only, by callMetricsProducer)';
const TELEMETRY_TRACES = 'full stack + telemetry (SDK: traces only)';
const TELEMETRY_OFF = 'full stack + telemetry (no SDK)';
const TELEMETRY_ROWS = [
  FULL,
  TELEMETRY,
  TELEMETRY_FAST,
  TELEMETRY_SAMPLED,
  TELEMETRY_METRICS,
  TELEMETRY_FAST_METRICS,
  TELEMETRY_TRACES,
  TELEMETRY_OFF,
];
const LAYERS = Object.keys(LAYER_STACKS) as LayerName[];
const layerRow = (layer: LayerName): string => `bare + ${LAYER_DESCRIPTIONS[layer]}`;

/**
 * Runs the overhead scenario.
 *
 * @example
 * ```ts
 * const body = await overhead({ quick: true, log: console.error });
 * ```
 */
export async function overhead({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  const rounds = quick ? 2 : 5;
  const throughputMs = quick ? 1_000 : 3_000;
  const sequentialCalls = quick ? 300 : 1_500;
  const warmupMs = quick ? 500 : 1_500;
  const layerMs = quick ? 400 : 1_500;
  const concurrency = 32;

  const servers = await spawnServers([{ host: HOSTS.overhead[0], name: 'server', health: true }]);
  const server = servers[0]!;
  const contenders: Contender[] = [];
  const sdks = new Map([
    [TELEMETRY, startBenchSdk()],
    [TELEMETRY_FAST, startBenchSdk({ producer: true })],
    [TELEMETRY_SAMPLED, startBenchSdk({ producer: true, sampleRatio: 0.01 })],
    [TELEMETRY_METRICS, startBenchSdk({ tracing: false })],
    [TELEMETRY_FAST_METRICS, startBenchSdk({ tracing: false, producer: true })],
    [TELEMETRY_TRACES, startBenchSdk({ metrics: false })],
  ]);
  try {
    contenders.push(
      plainClient(BASE, server.address),
      bareChannel(BARE, server.address),
      fullStack(FULL, staticList([server.address]), { target: server.address }),
      towerClient(TOWER, server.address),
      bareChannel(BARE_GRPC_JS, server.address, 'grpc-js'),
      fullStack(FULL_GRPC_JS, staticList([server.address]), { target: server.address, transport: 'grpc-js' }),
      ...[...sdks].map(([name, sdk]) =>
        fullStack(name, staticList([server.address]), { target: server.address, telemetry: sdk.telemetry }),
      ),
      // no SDK registered globally: the API's no-op providers
      fullStack(TELEMETRY_OFF, staticList([server.address]), {
        target: server.address,
        telemetry: telemetry(),
      }),
    );
    const layered = LAYERS.map((layer) => LAYER_STACKS[layer](layerRow(layer), server.address));
    contenders.push(...layered);
    const main = contenders.slice(0, MAIN_ROWS.length + TELEMETRY_ROWS.length - 1);
    let spans = 0;
    for (const c of contenders) await closedLoop(c.client, { concurrency, durationMs: warmupMs });
    for (const s of sdks.values()) await s.drain();

    const rec = new RoundRecorder();
    let failures = 0;
    for (let r = 0; r < rounds; r++) {
      for (const c of roundOrder(main, r)) {
        const loop = await closedLoop(c.client, { concurrency, durationMs: throughputMs });
        const seq = await sequential(c.client, sequentialCalls);
        failures += loop.failures + seq.failures;
        // a scrape and an export, between runs
        const own = sdks.get(c.name);
        if (own !== undefined) {
          const drained = await own.drain();
          if (c.name === TELEMETRY) spans += drained.spans;
        }
        const loaded = sortedSamples(loop.latencies);
        const unloaded = sortedSamples(seq.latencies);
        rec.add(c.name, 'rps', (loop.calls / loop.elapsedMs) * 1000);
        rec.add(c.name, 'cpuUsPerCall', loop.cpuUs / Math.max(1, loop.calls + loop.failures));
        rec.add(c.name, 'p50Ms', percentile(unloaded, 0.5));
        rec.add(c.name, 'p99Ms', percentile(unloaded, 0.99));
        rec.add(c.name, 'loadedP99Ms', percentile(loaded, 0.99));
      }
      // each layer against the bare channel, measured back to back (pairs in alternating order)
      for (const c of roundOrder(layered, r)) {
        const pair = r % 2 === 0 ? [main[1]!, c] : [c, main[1]!];
        const cpu = new Map<Contender, number>();
        const rps = new Map<Contender, number>();
        for (const x of pair) {
          const loop = await closedLoop(x.client, { concurrency, durationMs: layerMs });
          failures += loop.failures;
          cpu.set(x, loop.cpuUs / Math.max(1, loop.calls + loop.failures));
          rps.set(x, (loop.calls / loop.elapsedMs) * 1000);
          rec.add(x.name, 'layerCpuUsPerCall', cpu.get(x) as number);
          rec.add(x.name, 'layerRps', rps.get(x) as number);
        }
        rec.add(c.name, 'addedCpuUs', (cpu.get(c) as number) - (cpu.get(main[1]!) as number));
        rec.add(c.name, 'layerRpsRatio', (rps.get(c) as number) / (rps.get(main[1]!) as number));
      }
      rec.add(BARE, 'addedCpuUs', 0);
      rec.add(BARE, 'layerRpsRatio', 1);
      log(`overhead: round ${r + 1}/${rounds} done`);
    }
    for (const c of main) {
      rec.ratio(c.name, BASE, 'rps', 'rpsRatio');
      rec.ratio(c.name, BASE, 'cpuUsPerCall', 'cpuRatio');
      rec.difference(c.name, BASE, 'p50Ms', 'p50DiffMs');
      rec.ratio(c.name, BASE, 'p99Ms', 'p99Ratio');
    }
    for (const name of TELEMETRY_ROWS) {
      rec.difference(name, FULL, 'cpuUsPerCall', 'cpuOverFullUs');
      rec.ratio(name, FULL, 'rps', 'rpsOverFull');
      rec.difference(name, FULL, 'p50Ms', 'p50OverFullMs');
    }

    const metrics = ['rps', 'rpsRatio', 'p50Ms', 'p99Ms', 'loadedP99Ms', 'cpuUsPerCall', 'cpuRatio'];
    const rows = main.slice(0, MAIN_ROWS.length).map((c) => ({
      name: c.name,
      ...(c.name === BASE ? { baseline: true } : {}),
      metrics: Object.fromEntries(metrics.map((m) => [m, rec.spread(c.name, m)])),
    }));
    const layerMetrics = ['layerCpuUsPerCall', 'addedCpuUs', 'layerRps', 'layerRpsRatio'];
    const layerRows = [main[1]!, ...layered].map((c) => ({
      name: c.name,
      ...(c.name === BARE ? { baseline: true } : {}),
      metrics: Object.fromEntries(layerMetrics.map((m) => [m, rec.spread(c.name, m)])),
    }));
    const telemetryMetrics = [
      'cpuUsPerCall',
      'cpuOverFullUs',
      'rps',
      'rpsOverFull',
      'p50Ms',
      'p50OverFullMs',
    ];
    const telemetryRows = TELEMETRY_ROWS.map((name) => ({
      name,
      ...(name === FULL ? { baseline: true } : {}),
      metrics: Object.fromEntries(telemetryMetrics.map((m) => [m, rec.spread(name, m)])),
    }));
    const median = (row: string, metric: string) => rec.spread(row, metric).median;
    const ratio = (row: string) => median(row, 'rpsRatio');
    return {
      title: 'unary calls over one endpoint',
      description:
        'One echo server in a child process; clients of it measured in alternating rounds: a plain ' +
        'grpc-js client, `createChannel` over one native `grpcEndpoint` (bare), the full default stack ' +
        `(${FULL_STACK.description}) over native endpoints, the same stack as \`towerChannel\` builds it, ` +
        "and the bare channel and the full stack over grpc-js endpoints (`transport: 'grpc-js'`). " +
        `Throughput and CPU: a closed loop with ${concurrency} calls in flight ` +
        "for each round; client CPU is this process's user + system time per call during that loop (the " +
        "server's is not counted). p50/p99: sequential calls after it (no queueing); loaded p99: the calls " +
        'of the closed loop. Ratios are to grpc-js, round by round. Per layer: the bare channel with one ' +
        'layer of the full stack added, each measured right before or after a run of the bare channel (the ' +
        'order alternates by round); "added" is its client CPU per call minus that bare run\'s, and the ratio ' +
        "its throughput over that bare run's. Telemetry: the full stack with `@grpc-tower/telemetry` " +
        'recording into the OpenTelemetry SDK ' +
        '(an in-memory metric reader collected between runs; every call and attempt traced through a batch ' +
        'processor into an in-process exporter that counts the spans): metrics and traces, metrics only, ' +
        'traces only, and with no SDK; the per-call metrics through the Meter API, or aggregated by ' +
        '`callMetricsProducer()` and read by the reader; "added" is its client CPU per call minus the full ' +
        "stack's in the same round.",
      rounds,
      config: { concurrency, throughputMs, sequentialCalls, warmupMs, layerMs, server: server.address },
      tables: [
        {
          title: `unary calls, ${concurrency} in flight (throughput, CPU) and one at a time (p50/p99)`,
          metrics: [
            { key: 'rps', label: 'calls/s', unit: '', digits: 0, better: 'higher' },
            { key: 'rpsRatio', label: 'ratio', unit: '×', digits: 3, better: 'higher' },
            { key: 'p50Ms', label: 'p50', unit: 'ms', digits: 3, better: 'lower' },
            { key: 'p99Ms', label: 'p99', unit: 'ms', digits: 3, better: 'lower' },
            { key: 'loadedP99Ms', label: 'p99 loaded', unit: 'ms', digits: 2, better: 'lower' },
            { key: 'cpuUsPerCall', label: 'client CPU', unit: 'µs/call', digits: 1, better: 'lower' },
            { key: 'cpuRatio', label: 'CPU ratio', unit: '×', digits: 2, better: 'lower' },
          ],
          rows,
        },
        {
          title: `telemetry over the full stack (${concurrency} in flight; differences round by round)`,
          metrics: [
            { key: 'cpuUsPerCall', label: 'client CPU', unit: 'µs/call', digits: 1, better: 'lower' },
            { key: 'cpuOverFullUs', label: 'added', unit: 'µs/call', digits: 1, better: 'lower' },
            { key: 'rps', label: 'calls/s', unit: '', digits: 0, better: 'higher' },
            { key: 'rpsOverFull', label: 'ratio to full', unit: '×', digits: 3, better: 'higher' },
            { key: 'p50Ms', label: 'p50', unit: 'ms', digits: 3, better: 'lower' },
            { key: 'p50OverFullMs', label: 'p50 added', unit: 'ms', digits: 3, better: 'lower' },
          ],
          rows: telemetryRows,
        },
        {
          title: `client CPU each layer adds to the bare channel (${concurrency} in flight, ${layerMs / 1000} s runs, each paired with a bare run)`,
          metrics: [
            { key: 'layerCpuUsPerCall', label: 'client CPU', unit: 'µs/call', digits: 1, better: 'lower' },
            { key: 'addedCpuUs', label: 'added', unit: 'µs/call', digits: 1, better: 'lower' },
            { key: 'layerRps', label: 'calls/s', unit: '', digits: 0, better: 'higher' },
            { key: 'layerRpsRatio', label: 'ratio to bare', unit: '×', digits: 3, better: 'higher' },
          ],
          rows: layerRows,
        },
      ],
      targets: [
        target({
          id: 'overhead-full-throughput',
          description: 'towerChannel (full default stack, native) throughput vs plain grpc-js',
          row: TOWER,
          metric: 'rpsRatio',
          op: '>=',
          target: 1.1,
          value: ratio(TOWER),
          unit: '×',
        }),
        target({
          id: 'overhead-bare-throughput',
          description: 'bare createChannel over one native endpoint: throughput vs plain grpc-js',
          row: BARE,
          metric: 'rpsRatio',
          op: '>=',
          target: 1.25,
          value: ratio(BARE),
          unit: '×',
        }),
        target({
          id: 'overhead-full-cpu',
          description: 'towerChannel (full default stack, native) client CPU per call vs plain grpc-js',
          row: TOWER,
          metric: 'cpuRatio',
          op: '<=',
          target: 0.85,
          value: median(TOWER, 'cpuRatio'),
          unit: '×',
        }),
        target({
          id: 'overhead-bare-cpu',
          description: 'bare createChannel over one native endpoint: client CPU per call vs plain grpc-js',
          row: BARE,
          metric: 'cpuRatio',
          op: '<=',
          target: 0.65,
          value: median(BARE, 'cpuRatio'),
          unit: '×',
        }),
        target({
          id: 'overhead-telemetry-cpu',
          description: 'client CPU per call that telemetry with the SDK adds to the full stack',
          row: TELEMETRY,
          metric: 'cpuOverFullUs',
          op: '<=',
          target: 5,
          value: median(TELEMETRY, 'cpuOverFullUs'),
          unit: 'µs',
        }),
        target({
          id: 'overhead-telemetry-producer-metrics-cpu',
          description: 'client CPU per call that metrics only, by callMetricsProducer, add to the full stack',
          row: TELEMETRY_FAST_METRICS,
          metric: 'cpuOverFullUs',
          op: '<=',
          target: 5,
          value: median(TELEMETRY_FAST_METRICS, 'cpuOverFullUs'),
          unit: 'µs',
        }),
        target({
          id: 'overhead-telemetry-off-cpu',
          description: 'client CPU per call that telemetry with no SDK adds to the full stack',
          row: TELEMETRY_OFF,
          metric: 'cpuOverFullUs',
          op: '<=',
          target: 1.5,
          value: median(TELEMETRY_OFF, 'cpuOverFullUs'),
          unit: 'µs',
        }),
        target({
          id: 'overhead-full-p50',
          description: 'towerChannel sequential p50 minus plain grpc-js p50',
          row: TOWER,
          metric: 'p50DiffMs',
          op: '<=',
          target: 0.01,
          value: median(TOWER, 'p50DiffMs'),
          unit: 'ms',
        }),
        target({
          id: 'overhead-full-p99',
          description: 'towerChannel sequential p99 vs plain grpc-js',
          row: TOWER,
          metric: 'p99Ratio',
          op: '<=',
          target: 1.05,
          value: median(TOWER, 'p99Ratio'),
          unit: '×',
        }),
      ],
      notes: [
        ...(failures > 0 ? [`${failures} calls failed during the measurement`] : []),
        `telemetry with the SDK: ${spans} spans exported over the measured runs (a call span and an attempt span per call)`,
      ],
    };
  } finally {
    await closeAll(contenders);
    for (const s of sdks.values()) await s.shutdown();
    await stopServers(servers);
  }
}
