/**
 * Prints results as text tables and writes the markdown report. Every
 * cell is the median over rounds, followed by the min–max range when there
 * was more than one round.
 *
 * @module
 */
import type {
  BenchResults,
  MetricSpec,
  ResultTable,
  ScenarioError,
  ScenarioResult,
  Spread,
  TargetResult,
} from './schema.js';

const fmt = (v: number, digits: number): string => {
  if (Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '-∞';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
};

/**
 * A cell: `median (min–max)`, or `median` for one round, `–` for none.
 *
 * @example
 * ```ts
 * cell({ median: 2, min: 1, max: 3, runs: 3 }, 1); // '2.0 (1.0–3.0)'
 * ```
 */
export function cell(s: Spread | undefined, digits: number): string {
  if (s === undefined || s.runs === 0) return '–';
  if (s.runs === 1 || s.min === s.max) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

const heading = (m: MetricSpec): string => (m.unit === '' ? m.label : `${m.label} ${m.unit}`);

function rowsOf(table: ResultTable): string[][] {
  const head = ['', ...table.metrics.map(heading)];
  const body = table.rows.map((r) => [
    `${r.name}${r.baseline === true ? ' (baseline)' : ''}${r.note === undefined ? '' : ` [${r.note}]`}`,
    ...table.metrics.map((m) => cell(r.metrics[m.key], m.digits)),
  ]);
  return [head, ...body];
}

/**
 * A table as aligned text (for the terminal).
 *
 * @example
 * ```ts
 * console.log(textTable(result.tables[0]));
 * ```
 */
export function textTable(table: ResultTable): string {
  const rows = rowsOf(table);
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  const [head, ...body] = rows;
  return [table.title, line(head ?? []), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join(
    '\n',
  );
}

const targetLine = (t: TargetResult): string =>
  `${t.met ? 'met    ' : 'NOT met'}  ${t.description}: ${fmt(t.value, targetDigits(t))}${t.unit === '×' ? '×' : ` ${t.unit}`} (target ${t.op} ${t.target}${t.unit === '×' ? '×' : ` ${t.unit}`})`;

/**
 * One scenario as text: title, tables, targets, notes.
 *
 * @example
 * ```ts
 * console.log(scenarioText(result));
 * ```
 */
export function scenarioText(result: ScenarioResult | ScenarioError): string {
  if (result.status === 'error') return `\n== ${result.name}: FAILED\n${result.error}`;
  const parts = [
    `\n== ${result.name}: ${result.title} (${result.rounds} round${result.rounds === 1 ? '' : 's'}, ${(result.durationMs / 1000).toFixed(0)} s)`,
    ...result.tables.map(textTable),
  ];
  if (result.targets.length > 0) parts.push(result.targets.map(targetLine).join('\n'));
  if (result.notes.length > 0) parts.push(result.notes.map((n) => `note: ${n}`).join('\n'));
  return parts.join('\n\n');
}

const mdEscape = (s: string): string => s.replace(/\|/g, '\\|');

function markdownTable(table: ResultTable): string {
  const rows = rowsOf(table).map((r) => r.map(mdEscape));
  const [head, ...body] = rows;
  const align = (head ?? []).map((_, i) => (i === 0 ? ':--' : '--:'));
  return [
    `**${mdEscape(table.title)}**`,
    '',
    `| ${(head ?? []).join(' | ')} |`,
    `| ${align.join(' | ')} |`,
    ...body.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** Decimals for a target's figures: enough to tell a sub-unit target (0.025 ms) from zero. */
const targetDigits = (t: TargetResult): number =>
  t.unit === '×' ? 3 : t.unit === 'calls' ? 0 : Math.abs(t.target) < 1 ? 3 : 1;

const targetValue = (t: TargetResult, v: number): string =>
  t.unit === '×' ? `${fmt(v, 3)}×` : `${fmt(v, targetDigits(t))} ${t.unit}`;

/**
 * The markdown report of a whole run: machine, a summary of every target,
 * then each scenario's description, settings, tables and notes.
 *
 * @example
 * ```ts
 * writeFileSync('bench/results/latest.md', markdownReport(results));
 * ```
 */
export function markdownReport(results: BenchResults): string {
  const m = results.machine;
  const out: string[] = [
    `# grpc-tower benchmarks${results.quick ? ' (quick run)' : ''}`,
    '',
    `Measured ${results.date} with \`${results.command}\` in ${(results.durationMs / 1000).toFixed(0)} s.`,
    '',
    `Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryMiB} MiB, ${m.os}, Linux ${m.kernel} ${m.arch}; ` +
      `Node ${m.node} (V8 ${m.v8}), @grpc/grpc-js ${m.grpcJs}, nginx ${m.nginx ?? 'not installed'}, ` +
      `dnsmasq ${m.dnsmasq ?? 'not installed'}. Load average at start: ${m.loadAverage.join(' / ')}.`,
    '',
    'Every scenario measures its contenders in the same run, in alternating order, round after round. ' +
      'Each cell is the median over rounds with the min–max range in parentheses. Servers run in ' +
      'separate processes on 127.0.0.x loopback addresses on the same machine, so clients, servers ' +
      'and proxies share its cores: read the numbers side by side, not as absolute capacities.',
    '',
    '## Targets',
    '',
    '| scenario | target | measured | met |',
    '| :-- | :-- | --: | :-: |',
  ];
  const summaryStart = out.length;
  for (const [name, r] of Object.entries(results.scenarios)) {
    if (r === undefined) continue;
    if (r.status === 'error') {
      out.push(`| ${name} | (scenario failed) | – | ✗ |`);
      continue;
    }
    for (const t of r.targets) {
      out.push(
        `| ${name} | ${mdEscape(t.description)} (${t.op} ${targetValue(t, t.target)}) | ${targetValue(t, t.value)} | ${t.met ? '✓' : '✗'} |`,
      );
    }
  }
  if (out.length === summaryStart) out.push('| – | no scenario of this run has a target | – | – |');
  for (const [name, r] of Object.entries(results.scenarios)) {
    if (r === undefined) continue;
    out.push('', `## ${name}${r.status === 'ok' ? `: ${r.title}` : ''}`, '');
    if (r.status === 'error') {
      out.push('The scenario failed:', '', '```', r.error, '```');
      continue;
    }
    out.push(
      r.description,
      '',
      `Rounds: ${r.rounds}. Duration: ${(r.durationMs / 1000).toFixed(0)} s. ` +
        `Load average before / after: ${r.load.before.join(' / ')} → ${r.load.after.join(' / ')}.`,
      '',
      `Settings: ${Object.entries(r.config)
        .map(([k, v]) => `${k} = ${String(v)}`)
        .join(', ')}.`,
    );
    for (const t of r.tables) out.push('', markdownTable(t));
    if (r.notes.length > 0) out.push('', ...r.notes.map((n) => `- ${mdEscape(n)}`));
  }
  out.push('');
  return out.join('\n');
}
