/**
 * The demo's summary: what it writes as JSON next to the chart and prints
 * as a table. Every number in it was measured during the run: by the
 * demo's recorder, from the calls themselves, and (the `metrics` part)
 * by the grpc-tower client's own telemetry, read back from its metrics page.
 */
import type { DiscoveryKind } from './clients.js';
import { type PrometheusText, histogramOf, histogramQuantile, sumBy, sumOf } from './metrics.js';
import { type Recorder, percentile } from './recorder.js';

/** One phase of the story as it ran. */
export interface PhaseInfo {
  /** A stable identifier: `steady`, `crash`, `appear`, `slow`, `restart`, `settled`. */
  readonly name: string;
  /** What happened, in words. */
  readonly label: string;
  /** When it started and ended, ms since the demo started. */
  readonly startMs: number;
  readonly endMs: number;
}

/** One client's results in one phase. */
export interface PhaseResult {
  readonly name: string;
  /** Calls sent in this phase that succeeded. */
  readonly ok: number;
  /** Calls sent in this phase that failed (after the client's retries). */
  readonly failed: number;
  /** Successful calls by the server that answered. */
  readonly perServer: Readonly<Record<string, number>>;
  /** Latency percentiles of the successful calls, ms; null when none succeeded. */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** Distinct failures (status and message) with their counts, most frequent first. */
  readonly failures: readonly { readonly message: string; readonly count: number }[];
}

/** One client's results over the run. */
export interface ClientResult {
  readonly label: string;
  readonly description: string;
  readonly totals: { readonly ok: number; readonly failed: number };
  readonly phases: readonly PhaseResult[];
  /**
   * Time from C's appearance in DNS to the first call C answered, ms; null
   * when C never answered a call of this client.
   */
  readonly cFirstCallMs: number | null;
  /** Whether that first call came during the phase in which C appeared. */
  readonly cFirstCallInPhase: boolean;
  /** The share of the successful calls of the slow phase that B answered, from 0 to 1. */
  readonly bShareWhileSlow: number;
  /** p99 latency of the slow phase, ms (null when no call succeeded). */
  readonly slowP99Ms: number | null;
  /**
   * Calls answered per server, failures, and the p99 latency of the calls
   * that succeeded (ms, null when none did), per time bucket (for the chart).
   */
  readonly timeline: readonly {
    readonly startMs: number;
    readonly perServer: Readonly<Record<string, number>>;
    readonly errors: number;
    readonly p99Ms: number | null;
  }[];
}

/** The whole summary (`--json` writes it). */
export interface DemoSummary {
  readonly version: 1;
  readonly mode: 'quick' | 'full';
  readonly startedAt: string;
  readonly durationMs: number;
  /** Calls per second each client sends. */
  readonly ratePerSec: number;
  /** The width of the timeline buckets, ms. */
  readonly bucketMs: number;
  readonly settings: {
    readonly serverLatencyMs: number;
    readonly slowLatencyMs: number;
    readonly callDeadlineMs: number;
    /** How often the DNS clients resolve the name again, ms. */
    readonly rediscoveryMs: number;
    readonly dnsName: string;
    /**
     * What the grpc-tower client's discovery read: `dns` (the name, every
     * `rediscoveryMs`) or `kubernetes` (the EndpointSlices of the Service
     * `demo/echo`, watched). The plain grpc-js client always reads DNS.
     */
    readonly discovery: DiscoveryKind;
  };
  readonly servers: readonly { readonly name: string; readonly address: string }[];
  readonly phases: readonly PhaseInfo[];
  readonly events: readonly { readonly atMs: number; readonly text: string }[];
  readonly clients: readonly ClientResult[];
  /** Figures the grpc-tower client's telemetry recorded, read back from its metrics page at the end. */
  readonly metrics: PageFigures;
  /** Where the chart was written. */
  readonly chartPath: string;
}

/**
 * What the grpc-tower client's metrics page said at the end of the run,
 * every figure read from the Prometheus text (the names in the comments
 * are the page's; OpenTelemetry's dots are underscores there, counters end
 * in `_total`), for the series of one `grpc_target`.
 */
export interface PageFigures {
  /** The page, `http://127.0.0.1:<port>/metrics` (gone once the demo ended). */
  readonly url: string;
  /** The `grpc_target` label of the grpc-tower client's series. */
  readonly target: string;
  /** Metric families on the page and samples (lines with a value). */
  readonly families: number;
  readonly samples: number;
  /** Calls, from `grpc_client_call_duration_count`, and by `grpc_status`. */
  readonly calls: number;
  readonly callsByStatus: Readonly<Record<string, number>>;
  /** `grpc_client_attempt_started_total`: first attempts, retries and transparent re-sends. */
  readonly attemptsStarted: number;
  /** `grpc_client_call_retries`: calls that were retried (`_count`) and their retries (`_sum`). */
  readonly callsRetried: number;
  readonly retries: number;
  /** Mean call duration (`_sum` / `_count`), ms; null without calls. */
  readonly callMeanMs: number | null;
  /** p50 and p99 of the call duration estimated from its buckets (as `histogram_quantile` does), ms. */
  readonly callP50Ms: number | null;
  readonly callP99Ms: number | null;
  /** `grpc_subchannel_connection_attempts_succeeded_total`, `…_failed_total`, `grpc_subchannel_disconnections_total`. */
  readonly connections: {
    readonly succeeded: number;
    readonly failed: number;
    readonly disconnections: number;
  };
  /** `grpc_lb_outlier_detection_ejections_enforced_total` and `…_unenforced_total`. */
  readonly ejections: { readonly enforced: number; readonly unenforced: number };
  /** `grpc_tower_health_transitions_total` to `unhealthy`. */
  readonly unhealthyTransitions: number;
  /**
   * `grpc_tower_discovery_resolutions_total`: DNS lookups, or with
   * `kubernetes` discovery the updates of the set (the first list and
   * each watch event that changed it).
   */
  readonly dnsResolutions: number;
  /**
   * `grpc_tower_lb_endpoint_picks_total` by server, for the endpoints the
   * balancer holds at the end (`grpc_tower_lb_endpoint_state` is 1 for one
   * of their states): the calls it sent each since that endpoint joined it
   * (the count is read from the balancer, so a restarted server starts
   * again from 0; one that left keeps the value of the last scrape that
   * saw it, or is not on the page at all).
   */
  readonly picksNow: Readonly<Record<string, number>>;
}

/**
 * Reads {@link PageFigures} from the parsed metrics page: the series of
 * `target`, endpoints named after the server at their address.
 *
 * @example
 * ```ts
 * const figures = pageFigures(parsePrometheus(await page.scrape()), page.url, 'dns:echo.demo:50051', servers);
 * ```
 */
export function pageFigures(
  page: PrometheusText,
  url: string,
  target: string,
  servers: readonly { readonly name: string; readonly address: string }[],
): PageFigures {
  const t = { grpc_target: target };
  const callsByStatus = sumBy(page, 'grpc_client_call_duration_count', 'grpc_status', t);
  const duration = histogramOf(page, 'grpc_client_call_duration', t);
  const ms = (seconds: number | undefined): number | null =>
    round(seconds === undefined ? undefined : seconds * 1000);
  const nameOf = new Map(servers.map((s) => [s.address, s.name]));
  // the endpoints the balancer holds now: one of their states is 1 (one that left reads 0 in all,
  // or is absent when the page was not read while it was there)
  const held = sumBy(page, 'grpc_tower_lb_endpoint_state', 'grpc_tower_endpoint', t);
  const picks = sumBy(page, 'grpc_tower_lb_endpoint_picks_total', 'grpc_tower_endpoint', t);
  const picksNow: Record<string, number> = {};
  for (const [address, n] of Object.entries(picks)) {
    if ((held[address] ?? 0) > 0) picksNow[nameOf.get(address) ?? address] = n;
  }
  return {
    url,
    target,
    families: page.families.size,
    samples: page.samples.length,
    calls: duration.count,
    callsByStatus,
    attemptsStarted: sumOf(page, 'grpc_client_attempt_started_total', t),
    callsRetried: sumOf(page, 'grpc_client_call_retries_count', t),
    retries: sumOf(page, 'grpc_client_call_retries_sum', t),
    callMeanMs: duration.count === 0 ? null : ms(duration.sum / duration.count),
    callP50Ms: ms(histogramQuantile(duration, 0.5)),
    callP99Ms: ms(histogramQuantile(duration, 0.99)),
    connections: {
      succeeded: sumOf(page, 'grpc_subchannel_connection_attempts_succeeded_total', t),
      failed: sumOf(page, 'grpc_subchannel_connection_attempts_failed_total', t),
      disconnections: sumOf(page, 'grpc_subchannel_disconnections_total', t),
    },
    ejections: {
      enforced: sumOf(page, 'grpc_lb_outlier_detection_ejections_enforced_total', t),
      unenforced: sumOf(page, 'grpc_lb_outlier_detection_ejections_unenforced_total', t),
    },
    unhealthyTransitions: sumOf(page, 'grpc_tower_health_transitions_total', {
      ...t,
      grpc_tower_health_state: 'unhealthy',
    }),
    dnsResolutions: sumOf(page, 'grpc_tower_discovery_resolutions_total', t),
    picksNow,
  };
}

const round = (v: number | undefined, digits = 1): number | null =>
  v === undefined ? null : Math.round(v * 10 ** digits) / 10 ** digits;

/** Builds one client's results from its recorder. */
export function clientResult(
  recorder: Recorder,
  description: string,
  phases: readonly PhaseInfo[],
  servers: readonly string[],
  measure: { readonly cAppearedMs: number; readonly cPhaseEndMs: number },
): ClientResult {
  const results: PhaseResult[] = phases.map((p) => {
    const c = recorder.phases.get(p.name);
    const perServer: Record<string, number> = {};
    for (const s of servers) perServer[s] = c?.perServer.get(s) ?? 0;
    return {
      name: p.name,
      ok: c?.ok ?? 0,
      failed: c?.failed ?? 0,
      perServer,
      p50Ms: round(percentile(c?.latencies ?? [], 50)),
      p99Ms: round(percentile(c?.latencies ?? [], 99)),
      failures: [...(c?.failures ?? new Map<string, number>())]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([message, count]) => ({ message, count })),
    };
  });
  const slow = results.find((p) => p.name === 'slow');
  const firstC = recorder.firstReplyAt('C');
  return {
    label: recorder.label,
    description,
    totals: { ...recorder.total },
    phases: results,
    cFirstCallMs: firstC === undefined ? null : Math.max(0, Math.round(firstC - measure.cAppearedMs)),
    cFirstCallInPhase: firstC !== undefined && firstC <= measure.cPhaseEndMs,
    bShareWhileSlow:
      slow === undefined || slow.ok === 0 ? 0 : Math.round(((slow.perServer.B ?? 0) / slow.ok) * 1000) / 1000,
    slowP99Ms: slow?.p99Ms ?? null,
    timeline: recorder.buckets.map((b, i) => {
      const perServer: Record<string, number> = {};
      for (const s of servers) perServer[s] = b.perServer.get(s) ?? 0;
      return {
        startMs: i * recorder.bucketMs,
        perServer,
        errors: b.errors,
        p99Ms: round(percentile(b.latencies, 99)),
      };
    }),
  };
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const fmt = (v: number | null): string => (v === null ? '-' : v.toFixed(1));

/** The summary as a text table. */
export function formatSummary(summary: DemoSummary): string {
  const out: string[] = [];
  const clients = summary.clients;
  const col = 44;
  out.push('');
  out.push(
    `summary — discovery ${summary.settings.discovery}, ${summary.ratePerSec} calls/s per client, servers answer in ${summary.settings.serverLatencyMs} ms ` +
      `(B: ${summary.settings.slowLatencyMs} ms while slow), deadline ${summary.settings.callDeadlineMs} ms`,
  );
  out.push('');
  out.push(`${pad('phase', 30)}${clients.map((c) => pad(c.label, col)).join('')}`);
  out.push(`${pad('', 30)}${clients.map(() => pad('    ok  failed  p50 ms  p99 ms  A/B/C', col)).join('')}`);
  for (const phase of summary.phases) {
    const cells = clients.map((c) => {
      const p = c.phases.find((x) => x.name === phase.name);
      if (p === undefined) return pad('', col);
      const split = ['A', 'B', 'C'].map((s) => String(p.perServer[s] ?? 0)).join('/');
      return pad(
        `${lpad(String(p.ok), 6)}${lpad(String(p.failed), 8)}${lpad(fmt(p.p50Ms), 8)}` +
          `${lpad(fmt(p.p99Ms), 8)}  ${split}`,
        col,
      );
    });
    out.push(`${pad(phase.label, 30)}${cells.join('')}`);
  }
  out.push('');
  const row = (label: string, cell: (c: ClientResult) => string): void => {
    out.push(`${pad(label, 30)}${clients.map((c) => pad(cell(c), col)).join('')}`);
  };
  row('failed calls, all phases', (c) => `${c.totals.failed} of ${c.totals.ok + c.totals.failed}`);
  row('failed while A crashed', (c) => String(c.phases.find((p) => p.name === 'crash')?.failed ?? 0));
  row('failed in rolling restart', (c) => String(c.phases.find((p) => p.name === 'restart')?.failed ?? 0));
  const listed = { dns: 'C in DNS', kubernetes: 'C ready', xds: 'C HEALTHY in EDS' }[
    summary.settings.discovery
  ];
  row(`${listed} → its first call`, (c) =>
    c.cFirstCallMs === null
      ? 'never'
      : `${(c.cFirstCallMs / 1000).toFixed(2)} s${c.cFirstCallInPhase ? '' : ' (after that phase)'}`,
  );
  row("B's share while slow", (c) => `${(c.bShareWhileSlow * 100).toFixed(1)} %`);
  row('p50 / p99 while B slow', (c) => {
    const slow = c.phases.find((p) => p.name === 'slow');
    return `${fmt(slow?.p50Ms ?? null)} / ${fmt(c.slowP99Ms)} ms`;
  });
  out.push('');
  out.push(...formatFigures(summary.metrics, summary.settings.discovery));
  const failing = clients.flatMap((c) =>
    c.phases.flatMap((p) => p.failures.map((f) => `  ${c.label} / ${p.name}: ${f.count} × ${f.message}`)),
  );
  if (failing.length > 0) {
    out.push('');
    out.push('failures:');
    out.push(...failing.slice(0, 20));
  }
  return `${out.join('\n')}\n`;
}

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

/** The metrics page's figures, as lines of the summary. */
function formatFigures(m: PageFigures, discovery: DiscoveryKind): string[] {
  const out: string[] = [];
  const line = (label: string, value: string): void => void out.push(`${pad(label, 30)}${value}`);
  const byStatus = Object.entries(m.callsByStatus)
    .sort((a, b) => b[1] - a[1])
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
  out.push(
    `grpc-tower's telemetry, read back from its metrics page (${m.samples} samples of ${m.families} metrics):`,
  );
  line('calls, by grpc_status', `${m.calls}${byStatus === '' ? '' : ` (${byStatus})`}`);
  line(
    'attempts started',
    `${m.attemptsStarted} (${plural(m.retries, 'retry', 'retries')} in ${plural(m.callsRetried, 'call', 'calls')})`,
  );
  line(
    'call duration mean/p50/p99',
    `${fmt(m.callMeanMs)} / ${fmt(m.callP50Ms)} / ${fmt(m.callP99Ms)} ms (p from buckets)`,
  );
  line(
    'connection attempts',
    `${m.connections.succeeded} succeeded, ${m.connections.failed} failed; ${m.connections.disconnections} disconnections`,
  );
  line('ejections', `${m.ejections.enforced} enforced, ${m.ejections.unenforced} not enforced`);
  line(
    discovery === 'dns' ? 'to unhealthy / DNS lookups' : 'to unhealthy / set updates',
    `${m.unhealthyTransitions} / ${m.dnsResolutions}`,
  );
  const picks = Object.entries(m.picksNow)
    .sort((a, b) => a[0].localeCompare(b[0]))
    .map(([server, n]) => `${server} ${n}`)
    .join(', ');
  line('picks since joined', picks === '' ? '-' : picks);
  return out;
}
