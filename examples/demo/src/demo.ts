/**
 * The demo's story, measured: three echo servers behind one DNS name (or,
 * with `discovery: 'kubernetes'`, one EndpointSlice of a Kubernetes
 * Service; with `discovery: 'xds'`, the ClusterLoadAssignment of an xDS
 * management server; and the same servers in DNS for the plain client), a grpc-tower
 * client (and, with `compare`, a plain grpc-js round_robin client) sending
 * steady traffic, while
 *
 * 1. traffic is steady on A and B;
 * 2. A crashes (SIGKILL); DNS drops it a few seconds later, as a registry
 *    that notices a dead server would (its endpoint turns not ready and
 *    not serving, as after a failed readiness probe);
 * 3. C appears in DNS (its endpoint turns ready);
 * 4. B turns slow (20× its latency), then recovers;
 * 5. B and C are restarted one at a time: out of DNS (terminating, still
 *    serving), drained, stopped gracefully (then no longer listed), started
 *    again on the same address, back in DNS (ready);
 * 6. traffic settles.
 *
 * Every number in the summary comes from the calls themselves, except its
 * last block, which the grpc-tower client's own telemetry recorded: the
 * demo serves it as a Prometheus page (`metrics.ts`) while it runs, prints
 * the page's URL at the start, and reads the page back over HTTP at the end.
 */
import './grpc-env.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderChart } from './chart.js';
import {
  type DemoClient,
  type DiscoveryKind,
  type TowerDemoClient,
  roundRobinClient,
  towerClient,
} from './clients.js';
import { type Clock, type Load, startLoad } from './load.js';
import { parsePrometheus, startMetricsPage } from './metrics.js';
import { Recorder } from './recorder.js';
import { startRegistry } from './registry.js';
import { type DemoServer, type ServerSettings, restart, startFleet } from './servers.js';
import { type DemoSummary, type PhaseInfo, clientResult, formatSummary, pageFigures } from './summary.js';
import { LiveView, type ViewMode } from './view.js';

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** The short story (about 25 s instead of about a minute). */
  readonly quick?: boolean;
  /** Also run a plain grpc-js round_robin client through the same story. */
  readonly compare?: boolean;
  /**
   * How the grpc-tower client finds the servers: `dns` (default), or
   * `kubernetes`: the EndpointSlices of a stand-in Kubernetes API server
   * (which needs the `openssl` CLI), watched. The plain client reads DNS
   * either way.
   */
  readonly discovery?: DiscoveryKind;
  /** Where the chart (and, by default, the JSON summary) are written; default `examples/demo/out`. */
  readonly outDir?: string;
  /** Where the JSON summary is written; default next to the chart. */
  readonly jsonPath?: string;
  /** The live view: `auto` (default) redraws on a terminal and prints lines elsewhere. */
  readonly view?: ViewMode | 'auto';
  /** Where text goes; default standard output. */
  readonly write?: (text: string) => void;
  /** The loopback addresses of A, B and C; default 127.0.0.251 to .253. */
  readonly hosts?: readonly [string, string, string];
  /** Calls per second per client; default 150 (100 in quick mode). */
  readonly ratePerSec?: number;
  /** Stops the demo early (it still cleans up). */
  readonly signal?: AbortSignal;
}

/** What {@link runDemo} returns. */
export interface DemoResult {
  readonly summary: DemoSummary;
  readonly chartPath: string;
  readonly jsonPath: string;
  /** The summary table as printed. */
  readonly text: string;
}

const DNS_NAME = 'echo.demo';
const SERVER_LATENCY_MS = 10;
const SLOW_LATENCY_MS = 200;
const CALL_DEADLINE_MS = 2_000;
const REDISCOVERY_MS = 1_000;

interface Timings {
  readonly steadyMs: number;
  readonly crashMs: number;
  readonly removalLagMs: number;
  readonly appearMs: number;
  readonly slowMs: number;
  readonly restartPauseMs: number;
  readonly settledMs: number;
  readonly bucketMs: number;
}

const FULL: Timings = {
  steadyMs: 8_000,
  crashMs: 9_000,
  removalLagMs: 3_000,
  appearMs: 9_000,
  slowMs: 12_000,
  restartPauseMs: 1_500,
  settledMs: 6_000,
  bucketMs: 500,
};

const QUICK: Timings = {
  steadyMs: 3_000,
  crashMs: 4_000,
  removalLagMs: 1_500,
  appearMs: 4_000,
  slowMs: 5_000,
  restartPauseMs: 500,
  settledMs: 2_500,
  bucketMs: 500,
};

const PHASES = [
  ['steady', 'steady traffic'],
  ['crash', 'A crashes (SIGKILL)'],
  ['appear', 'C appears in DNS'],
  ['slow', `B slow (${SLOW_LATENCY_MS} ms)`],
  ['restart', 'rolling restart'],
  ['settled', 'settled'],
] as const;

/** The story's words for where the servers are listed. */
interface Words {
  /** The label of the `appear` phase. */
  readonly appearPhase: string;
  readonly startListed: string;
  readonly notYetListed: string;
  crashed(name: string): string;
  appeared(name: string, address: string): string;
  leaving(name: string): string;
  /** Once it stopped; undefined when nothing changes then. */
  stopped(name: string): string | undefined;
  back(name: string, address: string): string;
}

const WORDS: Readonly<Record<DiscoveryKind, Words>> = {
  dns: {
    appearPhase: 'C appears in DNS',
    startListed: 'A and B in DNS',
    notYetListed: 'C not in DNS yet',
    crashed: (name) => `${name} removed from DNS`,
    appeared: (name, address) => `${name} (${address}) appears in DNS`,
    leaving: (name) => `restart ${name}: removed from DNS`,
    stopped: () => undefined,
    back: (name, address) => `${name} restarted on ${address} and back in DNS`,
  },
  kubernetes: {
    appearPhase: 'C appears (ready)',
    startListed: 'A and B ready endpoints',
    notYetListed: 'C not listed yet',
    crashed: (name) => `${name} not ready in the EndpointSlice (ready: false, serving: false); out of DNS`,
    appeared: (name, address) => `${name} (${address}) ready in the EndpointSlice and in DNS`,
    leaving: (name) =>
      `restart ${name}: terminating in the EndpointSlice (serving: true, ready: false); out of DNS`,
    stopped: (name) => `${name} stopped: no longer in the EndpointSlice`,
    back: (name, address) => `${name} restarted on ${address}, ready in the EndpointSlice and back in DNS`,
  },
  xds: {
    appearPhase: 'C appears (HEALTHY)',
    startListed: 'A and B HEALTHY in EDS',
    notYetListed: 'C not in EDS yet',
    crashed: (name) => `${name} UNHEALTHY in EDS; out of DNS`,
    appeared: (name, address) => `${name} (${address}) HEALTHY in EDS and in DNS`,
    leaving: (name) => `restart ${name}: DRAINING in EDS; out of DNS`,
    stopped: (name) => `${name} stopped: no longer in EDS`,
    back: (name, address) => `${name} restarted on ${address}, HEALTHY in EDS and back in DNS`,
  },
};

const PLANNED: Readonly<Record<string, (t: Timings) => number | undefined>> = {
  steady: (t) => t.steadyMs,
  crash: (t) => t.crashMs,
  appear: (t) => t.appearMs,
  slow: (t) => t.slowMs,
  restart: () => undefined,
  settled: (t) => t.settledMs,
};

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Waits until `done()` holds, checking every 25 ms, for at most `maxMs`; resolves with whether it held. */
async function waitFor(
  done: () => boolean,
  maxMs: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const until = performance.now() + maxMs;
  while (!done()) {
    if (performance.now() >= until) return false;
    await sleep(25, signal);
  }
  return true;
}

/** Sends calls until one succeeds (at most 15 s), so the clock starts with every client connected. */
async function warmUp(client: DemoClient, signal: AbortSignal | undefined): Promise<void> {
  const until = performance.now() + 15_000;
  let last: unknown;
  while (performance.now() < until) {
    try {
      await client.unary(1_000);
      return;
    } catch (err) {
      last = err;
      await sleep(100, signal);
    }
  }
  const hint = String(last).includes('Name resolution failed')
    ? ' (grpc-js must load after GRPC_NODE_USE_ALTERNATIVE_RESOLVER=true is set: import ./grpc-env.js first)'
    : '';
  throw new Error(`${client.label} could not reach the servers within 15 s: ${String(last)}${hint}`, {
    cause: last,
  });
}

/** Runs the whole story and writes the chart and the JSON summary. */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const timings = options.quick ? QUICK : FULL;
  const discovery = options.discovery ?? 'dns';
  const words = WORDS[discovery];
  const rate = options.ratePerSec ?? (options.quick ? 100 : 150);
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const signal = options.signal;
  const viewMode: ViewMode =
    options.view === undefined || options.view === 'auto'
      ? process.stdout.isTTY
        ? 'tty'
        : 'lines'
      : options.view;
  const [hostA, hostB, hostC] = options.hosts ?? ['127.0.0.251', '127.0.0.252', '127.0.0.253'];
  const settings: ServerSettings = { latencyMs: SERVER_LATENCY_MS };
  const startedAt = new Date();

  let t0 = performance.now();
  let phase = 'startup';
  const clock: Clock = {
    now: () => performance.now() - t0,
    get phase() {
      return phase;
    },
  };

  const cleanups: (() => Promise<unknown>)[] = [];
  const loads: Load[] = [];
  let ticker: ReturnType<typeof setInterval> | undefined;
  try {
    // first: the provider must exist when the grpc-tower client's stack is instrumented
    const page = await startMetricsPage();
    cleanups.push(() => page.close());
    const fleet = await startFleet(
      [
        ['A', hostA],
        ['B', hostB],
        ['C', hostC],
      ],
      settings,
    );
    cleanups.push(() => Promise.all(fleet.map((s) => s.child?.kill())));
    const [A, B, C] = fleet as [DemoServer, DemoServer, DemoServer];
    // DNS, and with kubernetes the EndpointSlice too: A and B ready, C not listed yet
    const registry = await startRegistry(discovery, fleet, DNS_NAME);
    cleanups.push(() => registry.close());
    registry.set(A, 'ready');
    registry.set(B, 'ready');

    const tower: TowerDemoClient = towerClient(registry.tower, page);
    const clients: DemoClient[] = [tower];
    if (options.compare) clients.push(roundRobinClient(registry.dns));
    cleanups.push(() => Promise.all(clients.map((c) => c.close())));

    write(
      `grpc-tower demo, discovery ${discovery}: servers A=${A.address} B=${B.address} C=${C.address} ` +
        `(${words.notYetListed}), ${registry.where}\n` +
        `clients: ${clients.map((c) => `${c.label} (${c.description})`).join('; ')}\n` +
        `metrics: ${page.url}\n`,
    );

    // warm up: every client has answered once before the clock starts
    for (const client of clients) await warmUp(client, signal);

    const recorders = clients.map((c) => new Recorder(c.label, timings.bucketMs));
    const hostToName = new Map(fleet.map((s) => [s.host, s.name]));
    const serverOf = (text: string): string | undefined => {
      const m = /(\d+\.\d+\.\d+\.\d+):\d+/.exec(text);
      return m?.[1] === undefined ? undefined : hostToName.get(m[1]);
    };
    const view = new LiveView(
      viewMode,
      write,
      recorders,
      fleet.map((s) => s.name),
      0,
      process.stdout.columns,
    );
    const events: { atMs: number; text: string }[] = [];
    const event = (text: string): void => {
      const atMs = Math.round(clock.now());
      events.push({ atMs, text });
      view.event(atMs, text);
    };
    // what the grpc-tower client's EndpointSlices watch said about each server
    if (discovery !== 'dns') {
      const heard = registry.tower.source.events$.subscribe((e) => {
        if (e.type === 'endpoint') event(`${discovery === 'xds' ? `ADS: ${e.key}` : 'watch:'} ${e.reason}`);
      });
      cleanups.push(async () => heard.unsubscribe());
    }
    const phases: { name: string; label: string; startMs: number; endMs: number }[] = [];
    const begin = (index: number): void => {
      const [name, listed] = PHASES[index] as (typeof PHASES)[number];
      const label = name === 'appear' ? words.appearPhase : listed;
      const now = clock.now();
      const prev = phases.at(-1);
      if (prev !== undefined) prev.endMs = now;
      phases.push({ name, label, startMs: now, endMs: now });
      phase = name;
    };
    const progress = () => {
      const current = phases.at(-1);
      const index = Math.max(0, phases.length - 1);
      const name = current?.name ?? 'steady';
      return {
        elapsedMs: clock.now(),
        phaseIndex: index,
        phaseCount: PHASES.length,
        phaseLabel: current?.label ?? '',
        phaseElapsedMs: clock.now() - (current?.startMs ?? 0),
        phasePlannedMs: PLANNED[name]?.(timings),
      };
    };

    // the clock starts with the traffic
    t0 = performance.now();
    begin(0);
    for (const [i, client] of clients.entries()) {
      loads.push(
        startLoad(client, recorders[i] as Recorder, clock, {
          ratePerSec: rate,
          deadlineMs: CALL_DEADLINE_MS,
          maxInFlight: 2_000,
          serverOf,
        }),
      );
    }
    ticker = setInterval(() => view.tick(progress()), 1_000);

    // 1. steady
    event(`traffic starts: ${rate} calls/s per client (${words.startListed})`);
    await sleep(timings.steadyMs, signal);

    // 2. A crashes
    begin(1);
    event(`SIGKILL server A (${A.address})`);
    await A.child?.kill('SIGKILL');
    A.child = undefined;
    await sleep(timings.removalLagMs, signal);
    registry.set(A, 'not-ready');
    event(words.crashed('A'));
    await sleep(Math.max(0, timings.crashMs - timings.removalLagMs), signal);

    // 3. C appears
    begin(2);
    registry.set(C, 'ready');
    const cAppearedMs = clock.now();
    for (const r of recorders) r.watchFirstReply('C', cAppearedMs);
    event(words.appeared('C', C.address));
    const seen = new Set<Recorder>();
    const reportFirstC = (): boolean => {
      for (const r of recorders) {
        const at = r.firstReplyAt('C');
        if (at !== undefined && !seen.has(r)) {
          seen.add(r);
          event(
            `${r.label}: first call answered by C, ${((at - cAppearedMs) / 1000).toFixed(2)} s after it appeared`,
          );
        }
      }
      return false;
    };
    await waitFor(reportFirstC, timings.appearMs, signal);
    const cPhaseEndMs = clock.now();

    // 4. B turns slow, then recovers
    begin(3);
    await B.child?.setLatency(SLOW_LATENCY_MS);
    event(`B turns slow: every call takes ${SLOW_LATENCY_MS} ms (others ${SERVER_LATENCY_MS} ms)`);
    await waitFor(reportFirstC, timings.slowMs, signal);
    await B.child?.setLatency(SERVER_LATENCY_MS);
    event('B recovers');

    // 5. rolling restart of the ready servers
    begin(4);
    for (const s of [B, C]) {
      registry.set(s, 'terminating');
      event(words.leaving(s.name));
      const drained = await waitFor(() => tower.endpointState(s.address) === 'absent', 5_000, signal);
      event(
        drained
          ? `${s.name} drained by grpc-tower (calls finished, connection closed); stopping it gracefully`
          : `${s.name} still in grpc-tower's balancer after 5 s; stopping it gracefully anyway`,
      );
      await s.child?.stop(5_000);
      s.child = undefined;
      registry.set(s, undefined);
      const stopped = words.stopped(s.name);
      if (stopped !== undefined) event(stopped);
      await restart(s, settings);
      registry.set(s, 'ready');
      const back = await waitFor(() => tower.endpointState(s.address) === 'ready', 5_000, signal);
      event(`${words.back(s.name, s.address)}${back ? '; ready in grpc-tower' : ''}`);
      reportFirstC();
      await sleep(timings.restartPauseMs, signal);
    }

    // 6. settled
    begin(5);
    await waitFor(reportFirstC, timings.settledMs, signal);

    const last = phases.at(-1);
    if (last !== undefined) last.endMs = clock.now();
    await Promise.all(loads.splice(0).map((l) => l.stop()));
    clearInterval(ticker);
    ticker = undefined;
    view.tick(progress());
    view.finish();
    const durationMs = Math.round(clock.now());
    // what the grpc-tower client's telemetry recorded, read back as Prometheus would
    const scraped = parsePrometheus(await page.scrape());

    const serverNames = fleet.map((s) => s.name);
    const phaseInfo: PhaseInfo[] = phases.map((p) => ({
      ...p,
      startMs: Math.round(p.startMs),
      endMs: Math.round(p.endMs),
    }));
    const outDir = options.outDir ?? fileURLToPath(new URL('../out/', import.meta.url));
    await mkdir(outDir, { recursive: true });
    const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
    const chartPath = join(outDir, `demo-${stamp}.svg`);
    const jsonPath = options.jsonPath ?? join(outDir, `demo-${stamp}.json`);
    const summary: DemoSummary = {
      version: 1,
      mode: options.quick ? 'quick' : 'full',
      startedAt: startedAt.toISOString(),
      durationMs,
      ratePerSec: rate,
      bucketMs: timings.bucketMs,
      settings: {
        serverLatencyMs: SERVER_LATENCY_MS,
        slowLatencyMs: SLOW_LATENCY_MS,
        callDeadlineMs: CALL_DEADLINE_MS,
        rediscoveryMs: REDISCOVERY_MS,
        dnsName: DNS_NAME,
        discovery,
      },
      servers: fleet.map((s) => ({ name: s.name, address: s.address })),
      phases: phaseInfo,
      events,
      clients: clients.map((c, i) =>
        clientResult(recorders[i] as Recorder, c.description, phaseInfo, serverNames, {
          cAppearedMs,
          cPhaseEndMs,
        }),
      ),
      metrics: pageFigures(scraped, page.url, tower.target, fleet),
      chartPath,
    };
    await writeFile(chartPath, renderChart(summary));
    await mkdir(join(jsonPath, '..'), { recursive: true });
    await writeFile(jsonPath, `${JSON.stringify(summary, null, 2)}\n`);
    const text = `${formatSummary(summary)}\nchart:   ${chartPath}\nsummary: ${jsonPath}\n`;
    write(text);
    return { summary, chartPath, jsonPath, text };
  } finally {
    if (ticker !== undefined) clearInterval(ticker);
    await Promise.allSettled(loads.map((l) => l.stop()));
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }
}
