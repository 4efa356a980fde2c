/**
 * The chart, written by hand as SVG (no dependency): one panel per client,
 * one line per server with its calls answered per second over time, red
 * bars where calls failed, and the phases of the story marked across; then,
 * on the same time axis, a panel of the p99 latency of each client's
 * answered calls (`<g id="latency-p99">`, each client's line a
 * `<g class="latency-series">` whose `data-points` lists its
 * `startMs,p99Ms` pairs, one per time bucket with an answered call).
 */
import type { ClientResult, DemoSummary } from './summary.js';

const COLORS: Readonly<Record<string, string>> = { A: '#4e79a7', B: '#f28e2b', C: '#59a14f' };
const FALLBACK = ['#76b7b2', '#edc948', '#b07aa1', '#ff9da7'];
/** The clients' colors in the latency panel, in the order of the summary's clients. */
const CLIENT_COLORS = ['#1b4f72', '#af7aa1', '#76b7b2'];
const WIDTH = 980;
const LEFT = 64;
const RIGHT = 150;
const TOP = 56;
const PANEL = 230;
const GAP = 64;
const LATENCY_PANEL = 200;

const esc = (s: string): string =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
const fixed = (v: number): string => (Math.round(v * 10) / 10).toString();

/** A round upper bound for an axis (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten). */
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

type ChartInput = Pick<
  DemoSummary,
  'clients' | 'phases' | 'bucketMs' | 'durationMs' | 'servers' | 'ratePerSec'
>;

/** What every panel shares: the time axis and the phases. */
interface Frame {
  readonly summary: ChartInput;
  readonly parts: string[];
  readonly plotW: number;
  readonly span: number;
  readonly x: (ms: number) => number;
}

/** Shades every other phase and marks where each starts, between `top` and `bottom`. */
function drawPhases(f: Frame, top: number, bottom: number): void {
  const { parts, x } = f;
  f.summary.phases.forEach((p, pi) => {
    if (pi % 2 === 1) {
      parts.push(
        `<rect x="${fixed(x(p.startMs))}" y="${top}" width="${fixed(Math.max(0, x(p.endMs) - x(p.startMs)))}" height="${bottom - top}" fill="#f3f3f3"/>`,
      );
    }
    parts.push(
      `<line x1="${fixed(x(p.startMs))}" y1="${top}" x2="${fixed(x(p.startMs))}" y2="${bottom}" stroke="#999" stroke-dasharray="4 3"/>`,
    );
    parts.push(
      `<text x="${fixed(x(p.startMs) + 3)}" y="${top + 12 + (pi % 2) * 13}" fill="#444" font-size="11">${esc(`${pi + 1}. ${p.label}`)}</text>`,
    );
  });
}

/** The axes of a panel: `yMax` over its height, seconds along the bottom, `unit` up the side. */
function drawAxes(f: Frame, top: number, bottom: number, yMax: number, unit: string): void {
  const { parts, x, plotW, span } = f;
  const y = (v: number): number => bottom - (Math.min(v, yMax) / yMax) * (bottom - top);
  const tickStep = span > 60_000 ? 10_000 : 5_000;
  parts.push(`<line x1="${LEFT}" y1="${bottom}" x2="${LEFT + plotW}" y2="${bottom}" stroke="#333"/>`);
  parts.push(`<line x1="${LEFT}" y1="${top}" x2="${LEFT}" y2="${bottom}" stroke="#333"/>`);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    parts.push(
      `<line x1="${LEFT - 4}" y1="${fixed(y(v))}" x2="${LEFT}" y2="${fixed(y(v))}" stroke="#333"/>` +
        `<text x="${LEFT - 8}" y="${fixed(y(v) + 4)}" text-anchor="end">${fixed(v)}</text>`,
    );
  }
  for (let t = 0; t <= span; t += tickStep) {
    parts.push(
      `<line x1="${fixed(x(t))}" y1="${bottom}" x2="${fixed(x(t))}" y2="${bottom + 4}" stroke="#333"/>` +
        `<text x="${fixed(x(t))}" y="${bottom + 17}" text-anchor="middle">${t / 1000} s</text>`,
    );
  }
  parts.push(
    `<text x="16" y="${fixed((top + bottom) / 2)}" transform="rotate(-90 16 ${fixed((top + bottom) / 2)})" text-anchor="middle">${esc(unit)}</text>`,
  );
}

/** A client's buckets as charted: those that end after the run are partial (scaled to their length; one shorter than half dropped). */
function chartedTimeline(
  f: Frame,
  client: ClientResult,
): (ClientResult['timeline'][number] & { readonly widthMs: number })[] {
  const { bucketMs } = f.summary;
  return client.timeline
    .map((b) => ({ ...b, widthMs: Math.min(bucketMs, f.span - b.startMs) }))
    .filter((b) => b.widthMs >= bucketMs / 2);
}

/** The p99 latency panel: one line per client, from `top`. */
function drawLatency(f: Frame, top: number): void {
  const { parts, x, plotW, summary } = f;
  const bottom = top + LATENCY_PANEL;
  const series = summary.clients.map((client) => chartedTimeline(f, client));
  let peak = 0;
  for (const timeline of series) for (const b of timeline) peak = Math.max(peak, b.p99Ms ?? 0);
  const yMax = niceMax(peak * 1.05);
  const y = (v: number): number => bottom - (Math.min(v, yMax) / yMax) * LATENCY_PANEL;
  parts.push(`<g class="panel" id="latency-p99" data-bucket-ms="${summary.bucketMs}">`);
  parts.push(
    `<text x="${LEFT}" y="${top - 8}" font-size="14" font-weight="bold">p99 latency<tspan dx="8" font-weight="normal" fill="#555">— of the calls answered, per client and ${summary.bucketMs} ms bucket</tspan></text>`,
  );
  drawPhases(f, top, bottom);
  drawAxes(f, top, bottom, yMax, 'p99 ms');
  summary.clients.forEach((client, ci) => {
    const color = CLIENT_COLORS[ci % CLIENT_COLORS.length] ?? '#333';
    const timeline = series[ci] ?? [];
    const points = timeline.filter((b) => b.p99Ms !== null);
    // a bucket with no answered call breaks the line
    const runs: string[][] = [[]];
    for (const b of timeline) {
      if (b.p99Ms === null) runs.push([]);
      else runs.at(-1)?.push(`${fixed(x(b.startMs + b.widthMs / 2))},${fixed(y(b.p99Ms))}`);
    }
    parts.push(
      `<g class="latency-series" data-client="${esc(client.label)}" data-points="${points.map((b) => `${b.startMs},${b.p99Ms}`).join(' ')}">`,
    );
    for (const run of runs.filter((r) => r.length > 0)) {
      parts.push(
        `<polyline points="${run.join(' ')}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"/>`,
      );
    }
    parts.push('</g>');
    const ly = top + 18 + ci * 20;
    parts.push(
      `<line x1="${LEFT + plotW + 16}" y1="${ly}" x2="${LEFT + plotW + 40}" y2="${ly}" stroke="${color}" stroke-width="3"/>` +
        `<text x="${LEFT + plotW + 46}" y="${ly + 4}">${esc(client.label)}</text>`,
    );
  });
  parts.push('</g>');
}

/** Renders the chart of `summary` as an SVG document. */
export function renderChart(summary: ChartInput): string {
  const servers = summary.servers.map((s) => s.name);
  const color = (s: string, i: number): string => COLORS[s] ?? FALLBACK[i % FALLBACK.length] ?? '#999';
  const perSec = 1000 / summary.bucketMs;
  const plotW = WIDTH - LEFT - RIGHT;
  const latencyTop = TOP + summary.clients.length * (PANEL + GAP) + 24;
  const height = latencyTop + LATENCY_PANEL + GAP - 14;
  const span = Math.max(summary.durationMs, summary.bucketMs);
  const x = (ms: number): number => LEFT + (Math.min(ms, span) / span) * plotW;
  let peak = 0;
  for (const c of summary.clients) {
    for (const b of c.timeline)
      for (const s of servers) peak = Math.max(peak, (b.perServer[s] ?? 0) * perSec);
  }
  const yMax = niceMax(Math.max(peak, summary.ratePerSec) * 1.05);

  const parts: string[] = [];
  const frame: Frame = { summary, parts, plotW, span, x };
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
  );
  parts.push(`<rect x="0" y="0" width="${WIDTH}" height="${height}" fill="#ffffff"/>`);
  parts.push(
    `<text x="${LEFT}" y="22" font-size="16" font-weight="bold">Calls answered per second, per server</text>`,
  );
  parts.push(
    `<text x="${LEFT}" y="40" fill="#555">${esc(`${summary.ratePerSec} calls/s per client; red bars: failed calls; dashed lines: phases; last panel: p99 latency`)}</text>`,
  );

  summary.clients.forEach((client, ci) => {
    const top = TOP + ci * (PANEL + GAP) + 24;
    const bottom = top + PANEL;
    const y = (v: number): number => bottom - (Math.min(v, yMax) / yMax) * PANEL;
    parts.push(`<g class="panel" data-client="${esc(client.label)}">`);
    parts.push(
      `<text x="${LEFT}" y="${top - 8}" font-size="14" font-weight="bold">${esc(client.label)}<tspan dx="8" font-weight="normal" fill="#555">${esc(`— ${client.description}`)}</tspan></text>`,
    );
    drawPhases(frame, top, bottom);
    drawAxes(frame, top, bottom, yMax, 'calls/s');
    const timeline = chartedTimeline(frame, client);
    // failures
    const maxErr = Math.max(1, ...timeline.map((b) => b.errors));
    for (const b of timeline) {
      if (b.errors === 0) continue;
      const h = 6 + (b.errors / maxErr) * 40;
      const bw = Math.max(2, x(b.startMs + summary.bucketMs) - x(b.startMs) - 1);
      parts.push(
        `<rect class="failures" x="${fixed(x(b.startMs))}" y="${fixed(bottom - h)}" width="${fixed(bw)}" height="${fixed(h)}" fill="#e15759" opacity="0.8"><title>${b.errors} failed calls at ${fixed(b.startMs / 1000)} s</title></rect>`,
      );
    }
    // one series per server
    servers.forEach((s, si) => {
      const points = timeline
        .map(
          (b) =>
            `${fixed(x(b.startMs + b.widthMs / 2))},${fixed(y(((b.perServer[s] ?? 0) * 1000) / b.widthMs))}`,
        )
        .join(' ');
      parts.push(
        `<g class="series" data-client="${esc(client.label)}" data-server="${esc(s)}"><polyline points="${points}" fill="none" stroke="${color(s, si)}" stroke-width="2" stroke-linejoin="round"/></g>`,
      );
    });
    // legend
    servers.forEach((s, si) => {
      const ly = top + 18 + si * 20;
      parts.push(
        `<line x1="${LEFT + plotW + 16}" y1="${ly}" x2="${LEFT + plotW + 40}" y2="${ly}" stroke="${color(s, si)}" stroke-width="3"/>` +
          `<text x="${LEFT + plotW + 46}" y="${ly + 4}">server ${esc(s)}</text>`,
      );
    });
    const ly = top + 18 + servers.length * 20;
    parts.push(
      `<rect x="${LEFT + plotW + 16}" y="${ly - 6}" width="24" height="10" fill="#e15759"/>` +
        `<text x="${LEFT + plotW + 46}" y="${ly + 4}">failed: ${client.totals.failed}</text>`,
    );
    parts.push('</g>');
  });
  drawLatency(frame, latencyTop);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
