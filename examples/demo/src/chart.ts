/**
 * The chart, written by hand as SVG (no dependency): one panel per client,
 * one line per server with its calls answered per second over time, red
 * bars where calls failed, and the phases of the story marked across.
 */
import type { DemoSummary } from './summary.js';

const COLORS: Readonly<Record<string, string>> = { A: '#4e79a7', B: '#f28e2b', C: '#59a14f' };
const FALLBACK = ['#76b7b2', '#edc948', '#b07aa1', '#ff9da7'];
const WIDTH = 980;
const LEFT = 64;
const RIGHT = 150;
const TOP = 56;
const PANEL = 230;
const GAP = 64;

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

/** Renders the chart of `summary` as an SVG document. */
export function renderChart(
  summary: Pick<DemoSummary, 'clients' | 'phases' | 'bucketMs' | 'durationMs' | 'servers' | 'ratePerSec'>,
): string {
  const servers = summary.servers.map((s) => s.name);
  const color = (s: string, i: number): string => COLORS[s] ?? FALLBACK[i % FALLBACK.length] ?? '#999';
  const perSec = 1000 / summary.bucketMs;
  const plotW = WIDTH - LEFT - RIGHT;
  const height = TOP + summary.clients.length * (PANEL + GAP) + 10;
  const span = Math.max(summary.durationMs, summary.bucketMs);
  const x = (ms: number): number => LEFT + (Math.min(ms, span) / span) * plotW;
  let peak = 0;
  for (const c of summary.clients) {
    for (const b of c.timeline)
      for (const s of servers) peak = Math.max(peak, (b.perServer[s] ?? 0) * perSec);
  }
  const yMax = niceMax(Math.max(peak, summary.ratePerSec) * 1.05);
  const tickStep = span > 60_000 ? 10_000 : 5_000;

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
  );
  parts.push(`<rect x="0" y="0" width="${WIDTH}" height="${height}" fill="#ffffff"/>`);
  parts.push(
    `<text x="${LEFT}" y="22" font-size="16" font-weight="bold">Calls answered per second, per server</text>`,
  );
  parts.push(
    `<text x="${LEFT}" y="40" fill="#555">${esc(`${summary.ratePerSec} calls/s per client; red bars: failed calls; dashed lines: phases`)}</text>`,
  );

  summary.clients.forEach((client, ci) => {
    const top = TOP + ci * (PANEL + GAP) + 24;
    const bottom = top + PANEL;
    const y = (v: number): number => bottom - (Math.min(v, yMax) / yMax) * PANEL;
    parts.push(`<g class="panel" data-client="${esc(client.label)}">`);
    parts.push(
      `<text x="${LEFT}" y="${top - 8}" font-size="14" font-weight="bold">${esc(client.label)}<tspan dx="8" font-weight="normal" fill="#555">${esc(`— ${client.description}`)}</tspan></text>`,
    );
    // phases
    summary.phases.forEach((p, pi) => {
      if (pi % 2 === 1) {
        parts.push(
          `<rect x="${fixed(x(p.startMs))}" y="${top}" width="${fixed(Math.max(0, x(p.endMs) - x(p.startMs)))}" height="${PANEL}" fill="#f3f3f3"/>`,
        );
      }
      parts.push(
        `<line x1="${fixed(x(p.startMs))}" y1="${top}" x2="${fixed(x(p.startMs))}" y2="${bottom}" stroke="#999" stroke-dasharray="4 3"/>`,
      );
      parts.push(
        `<text x="${fixed(x(p.startMs) + 3)}" y="${top + 12 + (pi % 2) * 13}" fill="#444" font-size="11">${esc(`${pi + 1}. ${p.label}`)}</text>`,
      );
    });
    // axes
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
      `<text x="16" y="${fixed((top + bottom) / 2)}" transform="rotate(-90 16 ${fixed((top + bottom) / 2)})" text-anchor="middle">calls/s</text>`,
    );
    // buckets that end after the run are partial: scale them to their length, drop one shorter than half
    const timeline = client.timeline
      .map((b) => ({ ...b, widthMs: Math.min(summary.bucketMs, span - b.startMs) }))
      .filter((b) => b.widthMs >= summary.bucketMs / 2);
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
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
