/**
 * The demo's summary: what it writes as JSON next to the chart and prints
 * as a table. Every number in it was measured during the run.
 */
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
  /** Calls answered per server and failures, per time bucket (for the chart). */
  readonly timeline: readonly {
    readonly startMs: number;
    readonly perServer: Readonly<Record<string, number>>;
    readonly errors: number;
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
    readonly rediscoveryMs: number;
    readonly dnsName: string;
  };
  readonly servers: readonly { readonly name: string; readonly address: string }[];
  readonly phases: readonly PhaseInfo[];
  readonly events: readonly { readonly atMs: number; readonly text: string }[];
  readonly clients: readonly ClientResult[];
  /** Where the chart was written. */
  readonly chartPath: string;
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
      return { startMs: i * recorder.bucketMs, perServer, errors: b.errors };
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
    `summary — ${summary.ratePerSec} calls/s per client, servers answer in ${summary.settings.serverLatencyMs} ms ` +
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
  row('C in DNS → its first call', (c) =>
    c.cFirstCallMs === null
      ? 'never'
      : `${(c.cFirstCallMs / 1000).toFixed(2)} s${c.cFirstCallInPhase ? '' : ' (after that phase)'}`,
  );
  row("B's share while slow", (c) => `${(c.bShareWhileSlow * 100).toFixed(1)} %`);
  row('p50 / p99 while B slow', (c) => {
    const slow = c.phases.find((p) => p.name === 'slow');
    return `${fmt(slow?.p50Ms ?? null)} / ${fmt(c.slowP99Ms)} ms`;
  });
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
