/**
 * The demo's metrics page: an OpenTelemetry `MeterProvider` whose reader is
 * the Prometheus exporter, served at `http://127.0.0.1:<port>/metrics`
 * while the demo runs, so that Prometheus (or `curl`) can read what the
 * grpc-tower client records with gRPC's metric names. At the end the demo
 * reads the page back over HTTP and quotes a few figures from it.
 *
 * The exporter's own server takes a fixed port (0 means its default,
 * 9464), so the page is a `node:http` server of the demo's on port 0 (a
 * free port the kernel picks, no race) that hands `GET /metrics` to the
 * exporter's request handler.
 *
 * Also here: a parser of the Prometheus text format (version 0.0.4, plus
 * the `# UNIT` lines of OpenMetrics that the exporter writes), and readers
 * of counters and histograms over what it parsed.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CallMetricsProducer, callMetricsProducer } from '@grpc-tower/telemetry';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';

/**
 * A running metrics page.
 *
 * @example
 * ```ts
 * const page = await startMetricsPage();
 * const t = telemetry({ meterProvider: page.meterProvider, callMetrics: page.callMetrics, tracing: false });
 * // … calls …
 * const text = await page.scrape();
 * await page.close();
 * ```
 */
export interface MetricsPage {
  /** Where the page is, `http://127.0.0.1:<port>/metrics`. */
  readonly url: string;
  /** The provider whose metrics the page shows: give it to `telemetry({ meterProvider })`. */
  readonly meterProvider: MeterProvider;
  /** The producer of the per-call metrics the page shows too: give it to `telemetry({ callMetrics })`. */
  readonly callMetrics: CallMetricsProducer;
  /** Reads the page with an HTTP GET, as Prometheus would; rejects on anything but a 200 with metrics. */
  scrape(): Promise<string>;
  /** Stops the server (closing its connections) and shuts the provider down. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link startMetricsPage}. */
export interface MetricsPageOptions {
  /** The address to listen on; default `127.0.0.1` (the page is for this machine only). */
  readonly host?: string;
  /** The port; default 0, a free one. */
  readonly port?: number;
  /** How long {@link MetricsPage.scrape} waits for the page, ms; default 5000. */
  readonly scrapeTimeoutMs?: number;
}

/** The path of the page. */
export const METRICS_PATH = '/metrics';

/** What the exporter writes instead of metrics when collecting failed. */
const EXPORT_FAILED = '# failed to export metrics';

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void =>
      reject(new Error(`metrics page: cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** An HTTP GET of `url` without keep-alive: resolves with the status, the content type and the body. */
function httpGet(url: string, timeoutMs: number): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, headers: { accept: 'text/plain' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type'] ?? ''),
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) =>
      reject(new Error(`metrics page: GET ${url} failed: ${err.message}`, { cause: err })),
    );
  });
}

/**
 * Starts a `MeterProvider` with the Prometheus exporter as its reader and
 * serves the exporter's page at `/metrics` on `127.0.0.1` and a free port.
 * Other paths answer 404, other methods 405.
 *
 * @throws Error naming the address when the server cannot listen.
 *
 * @example
 * ```ts
 * const page = await startMetricsPage();
 * console.log(`metrics: ${page.url}`); // metrics: http://127.0.0.1:39123/metrics
 * ```
 */
export async function startMetricsPage(options: MetricsPageOptions = {}): Promise<MetricsPage> {
  const host = options.host ?? '127.0.0.1';
  const scrapeTimeoutMs = options.scrapeTimeoutMs ?? 5_000;
  // the per-call metrics, aggregated by grpc-tower's producer, are on the same page
  const callMetrics = callMetricsProducer();
  // the exporter serves nothing itself: this process's server below hands it the requests
  const exporter = new PrometheusExporter({ preventServerStart: true, metricProducers: [callMetrics] });
  const meterProvider = new MeterProvider({ readers: [exporter] });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== METRICS_PATH) {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end(`not found; the metrics are at ${METRICS_PATH}\n`);
    } else if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('GET only\n');
    } else {
      exporter.getMetricsRequestHandler(req, res);
    }
  });
  let address: AddressInfo;
  try {
    address = await listen(server, host, options.port ?? 0);
  } catch (err) {
    await meterProvider.shutdown().catch(() => undefined);
    throw err;
  }
  const url = `http://${host}:${address.port}${METRICS_PATH}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    meterProvider,
    callMetrics,
    async scrape() {
      const { status, type, body } = await httpGet(url, scrapeTimeoutMs);
      if (status !== 200)
        throw new Error(`metrics page: GET ${url} answered HTTP ${status}: ${body.slice(0, 200)}`);
      if (!type.startsWith('text/plain'))
        throw new Error(`metrics page: GET ${url} answered ${type || 'no content type'}, not text/plain`);
      if (body.startsWith(EXPORT_FAILED)) throw new Error(`metrics page: ${body.trim()}`);
      return body;
    },
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          // a scraper holding a keep-alive connection must not keep the server open
          server.closeAllConnections();
        });
        await meterProvider.shutdown();
      })();
      return closing;
    },
  };
}

// ─── the Prometheus text format ───────────────────────────────────────────

/** A metric family's type, as its `# TYPE` line gives it. */
export type PrometheusType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** One sample line: `name{label="value",…} value [timestamp]`. */
export interface PrometheusSample {
  /** The sample's name as written, such as `grpc_client_call_duration_bucket`. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The value; `+Inf`, `-Inf` and `NaN` included. */
  readonly value: number;
  /** The timestamp, ms since the epoch, when the line has one. */
  readonly timestampMs?: number;
  /** The family it belongs to: the name, without `_bucket`, `_sum` or `_count` for a histogram's (or summary's) samples. */
  readonly family: string;
  /** Its line number (from 1). */
  readonly line: number;
}

/** What the `# HELP`, `# TYPE` and `# UNIT` lines say about one metric family. */
export interface PrometheusFamily {
  readonly name: string;
  /** `untyped` when no `# TYPE` line names it. */
  readonly type: PrometheusType;
  readonly help?: string;
  readonly unit?: string;
}

/** A parsed page. */
export interface PrometheusText {
  /** Every sample, in the order of the page. */
  readonly samples: readonly PrometheusSample[];
  /** Every family with a `# HELP`, `# TYPE` or `# UNIT` line, by name. */
  readonly families: ReadonlyMap<string, PrometheusFamily>;
}

/**
 * A line that is not the Prometheus text format; the message names the
 * line, what is wrong with it, and quotes it.
 *
 * @example
 * ```ts
 * try { parsePrometheus('up 1 2 3'); } catch (e) { if (e instanceof PrometheusFormatError) console.log(e.line); }
 * ```
 */
export class PrometheusFormatError extends Error {
  /** The line number, from 1. */
  readonly line: number;
  /** The line as written. */
  readonly text: string;

  constructor(line: number, text: string, problem: string) {
    super(
      `Prometheus text, line ${line}: ${problem}: ${JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text)}`,
    );
    this.name = 'PrometheusFormatError';
    this.line = line;
    this.text = text;
  }
}

const METRIC_NAME = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;
const LABEL_NAME = /[a-zA-Z_][a-zA-Z0-9_]*/y;
const FULL_METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

/** A float as the format writes it: decimal, `+Inf`, `-Inf`, `Inf` or `NaN` (the last three in any case). */
function parseFloatToken(token: string): number | undefined {
  const lower = token.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Number.POSITIVE_INFINITY;
  if (lower === '-inf') return Number.NEGATIVE_INFINITY;
  if (lower === 'nan') return Number.NaN;
  return DECIMAL.test(token) ? Number(token) : undefined;
}

/** Undoes the escapes of a `# HELP` text: `\\` and `\n`. */
function unescapeHelp(raw: string, fail: (problem: string) => never): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = raw[++i];
    if (next === '\\') out += '\\';
    else if (next === 'n') out += '\n';
    else
      fail(
        next === undefined
          ? 'a help text ends in a lone backslash'
          : `invalid escape \\${next} in a help text`,
      );
  }
  return out;
}

/** Reads one sample line (leading blanks already skipped). */
function parseSample(
  text: string,
  fail: (problem: string) => never,
): Omit<PrometheusSample, 'family' | 'line'> {
  let i = 0;
  const blanks = (): void => {
    while (text[i] === ' ' || text[i] === '\t') i++;
  };
  const token = (re: RegExp): string | undefined => {
    re.lastIndex = i;
    const m = re.exec(text);
    if (m === null) return undefined;
    i += m[0].length;
    return m[0];
  };
  const name = token(METRIC_NAME);
  if (name === undefined) fail('expected a metric name');
  const afterName = i;
  blanks();
  const labels: Record<string, string> = {};
  if (text[i] !== '{') {
    // no labels: the value must be a token of its own
    i = afterName;
    if (i < text.length && text[i] !== ' ' && text[i] !== '\t') {
      fail(`expected a blank or { after the name ${name}, found ${JSON.stringify(text[i])}`);
    }
  } else {
    i++;
    for (;;) {
      blanks();
      if (text[i] === '}') break;
      const label = token(LABEL_NAME);
      if (label === undefined) fail(`expected a label name or } at column ${i + 1}`);
      if (Object.hasOwn(labels, label)) fail(`label ${label} appears twice`);
      blanks();
      if (text[i] !== '=') fail(`expected = after label ${label}`);
      i++;
      blanks();
      if (text[i] !== '"') fail(`expected " to open the value of label ${label}`);
      i++;
      let value = '';
      for (;;) {
        const c = text[i++];
        if (c === undefined) fail(`the value of label ${label} is not closed with "`);
        if (c === '"') break;
        if (c !== '\\') {
          value += c;
          continue;
        }
        const e = text[i++];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else
          fail(
            e === undefined
              ? `the value of label ${label} ends in a lone backslash`
              : `invalid escape \\${e} in the value of label ${label}`,
          );
      }
      labels[label] = value;
      blanks();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') break;
      fail(`expected , or } after the value of label ${label}`);
    }
    i++;
  }
  const fields = text
    .slice(i)
    .split(/[ \t]+/)
    .filter((f) => f !== '');
  if (fields.length === 0) fail(`sample ${name} has no value`);
  if (fields.length > 2) fail(`sample ${name} has more than a value and a timestamp`);
  const [valueToken, stampToken] = fields as [string, string | undefined];
  const value = parseFloatToken(valueToken);
  if (value === undefined) fail(`sample ${name} has value ${JSON.stringify(valueToken)}, not a number`);
  if (stampToken === undefined) return { name, labels, value };
  if (!INTEGER.test(stampToken))
    fail(`sample ${name} has timestamp ${JSON.stringify(stampToken)}, not an integer of ms`);
  return { name, labels, value, timestampMs: Number(stampToken) };
}

/**
 * Parses the Prometheus text format (version 0.0.4): `# HELP`, `# TYPE`
 * (and OpenMetrics' `# UNIT`) lines, other comments (ignored), blank lines
 * (ignored) and samples, whose label values may escape `\\`, `\"` and
 * `\n`, whose values may be `+Inf`, `-Inf` or `NaN`, and which may end in
 * a timestamp. A histogram's `_bucket`, `_sum` and `_count` samples (a
 * summary's `_sum` and `_count`) belong to its family.
 *
 * @throws PrometheusFormatError naming the first line that is not the
 * format: a bad name, label or escape, a value that is not a number, a
 * second `# TYPE` for a family, a `# TYPE` after the family's samples, a
 * histogram bucket without a numeric `le`.
 *
 * @example
 * ```ts
 * const page = parsePrometheus('# TYPE up gauge\nup{job="demo"} 1\n');
 * page.samples[0]; // { name: 'up', labels: { job: 'demo' }, value: 1, family: 'up', line: 2 }
 * page.families.get('up')?.type; // 'gauge'
 * ```
 */
export function parsePrometheus(text: string): PrometheusText {
  const samples: PrometheusSample[] = [];
  const families = new Map<string, { name: string; type?: PrometheusType; help?: string; unit?: string }>();
  const sampled = new Set<string>();
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const lineNo = index + 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const fail: (problem: string) => never = (problem) => {
      throw new PrometheusFormatError(lineNo, line, problem);
    };
    const body = line.replace(/^[ \t]+/, '');
    if (body.replace(/[ \t]+$/, '') === '') continue;
    if (body.startsWith('#')) {
      const m = /^#[ \t]*(HELP|TYPE|UNIT)(?:[ \t]+(\S+))?(?:[ \t](.*))?$/.exec(body);
      if (m === null) continue; // a plain comment
      const [, keyword, name, rest = ''] = m as unknown as [
        string,
        'HELP' | 'TYPE' | 'UNIT',
        string | undefined,
        string | undefined,
      ];
      if (name === undefined || !FULL_METRIC_NAME.test(name)) fail(`# ${keyword} needs a metric name`);
      const family = families.get(name) ?? { name };
      families.set(name, family);
      if (keyword === 'HELP') {
        if (family.help !== undefined) fail(`a second # HELP for ${name}`);
        family.help = unescapeHelp(rest, fail);
      } else if (keyword === 'UNIT') {
        if (family.unit !== undefined) fail(`a second # UNIT for ${name}`);
        family.unit = rest.trim();
      } else {
        const type = rest.trim();
        if (!TYPES.has(type))
          fail(`# TYPE ${name} has type ${JSON.stringify(type)}, not one of ${[...TYPES].join(', ')}`);
        if (family.type !== undefined) fail(`a second # TYPE for ${name}`);
        if (sampled.has(name)) fail(`# TYPE for ${name} after its samples`);
        family.type = type as PrometheusType;
      }
      continue;
    }
    const sample = parseSample(body, fail);
    const familyName = familyOf(sample.name, families);
    const type = families.get(familyName)?.type;
    if (type === 'histogram' && sample.name === `${familyName}_bucket`) {
      const le = sample.labels.le;
      if (le === undefined) fail(`histogram bucket ${sample.name} has no le label`);
      if (parseFloatToken(le) === undefined)
        fail(`histogram bucket ${sample.name} has le=${JSON.stringify(le)}, not a number`);
    }
    sampled.add(familyName);
    samples.push({ ...sample, family: familyName, line: lineNo });
  }
  const out = new Map<string, PrometheusFamily>();
  for (const [name, f] of families) out.set(name, { ...f, type: f.type ?? 'untyped' });
  return { samples, families: out };
}

/** The family of a sample name: a typed histogram's or summary's for its suffixed samples, else the name itself. */
function familyOf(name: string, families: ReadonlyMap<string, { type?: PrometheusType }>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const type = families.get(base)?.type;
    if (type === 'histogram' || (type === 'summary' && suffix !== '_bucket')) return base;
  }
  return name;
}

// ─── reading a parsed page ────────────────────────────────────────────────

/** Labels a sample must have (every other label may be anything). */
export type LabelMatch = Readonly<Record<string, string>>;

const matches = (labels: Readonly<Record<string, string>>, match: LabelMatch): boolean =>
  Object.entries(match).every(([k, v]) => labels[k] === v);

/**
 * The samples named `name` whose labels include `match`.
 *
 * @example
 * ```ts
 * samplesOf(page, 'grpc_client_attempt_started_total', { grpc_target: 'dns:echo.demo:50051' });
 * ```
 */
export function samplesOf(page: PrometheusText, name: string, match: LabelMatch = {}): PrometheusSample[] {
  return page.samples.filter((s) => s.name === name && matches(s.labels, match));
}

/**
 * The sum of the samples named `name` whose labels include `match` (0 when there are none).
 *
 * @example
 * ```ts
 * const attempts = sumOf(page, 'grpc_client_attempt_started_total');
 * ```
 */
export function sumOf(page: PrometheusText, name: string, match: LabelMatch = {}): number {
  return samplesOf(page, name, match).reduce((a, s) => a + s.value, 0);
}

/**
 * {@link sumOf} per value of the label `by` (samples without it are left out).
 *
 * @example
 * ```ts
 * sumBy(page, 'grpc_client_call_duration_count', 'grpc_status'); // { OK: 2480, UNAVAILABLE: 3 }
 * ```
 */
export function sumBy(
  page: PrometheusText,
  name: string,
  by: string,
  match: LabelMatch = {},
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samplesOf(page, name, match)) {
    const key = s.labels[by];
    if (key !== undefined) out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}

/** A histogram's series added up: cumulative bucket counts by upper bound, the count and the sum. */
export interface HistogramTotals {
  /** Cumulative counts, by upper bound, ascending; the last is `+Inf`. */
  readonly buckets: readonly { readonly le: number; readonly count: number }[];
  readonly count: number;
  readonly sum: number;
}

/**
 * Adds up the series of histogram family `family` whose labels include
 * `match` (such as every `grpc_status` of one method).
 *
 * @example
 * ```ts
 * const h = histogramOf(page, 'grpc_client_call_duration', { grpc_status: 'OK' });
 * h.sum / h.count; // the mean, in the histogram's unit
 * ```
 */
export function histogramOf(page: PrometheusText, family: string, match: LabelMatch = {}): HistogramTotals {
  const byLe = new Map<number, number>();
  for (const s of samplesOf(page, `${family}_bucket`, match)) {
    const le = parseFloatToken(s.labels.le ?? '');
    if (le !== undefined) byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  const buckets = [...byLe].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count }));
  return { buckets, count: sumOf(page, `${family}_count`, match), sum: sumOf(page, `${family}_sum`, match) };
}

/**
 * The `q` quantile (0 to 1) of a histogram, estimated as Prometheus'
 * `histogram_quantile` does: linear within the bucket it falls in (the
 * lowest bucket from 0); the highest finite bound when it falls in `+Inf`.
 * Undefined for an empty histogram.
 *
 * @example
 * ```ts
 * histogramQuantile(histogramOf(page, 'grpc_client_call_duration'), 0.99); // seconds
 * ```
 */
export function histogramQuantile(h: HistogramTotals, q: number): number | undefined {
  const total = h.buckets.at(-1)?.count ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of h.buckets) {
    if (b.count >= rank && b.count > 0) {
      if (b.le === Number.POSITIVE_INFINITY) return lower;
      const inBucket = b.count - below;
      return inBucket === 0 ? b.le : lower + ((b.le - lower) * (rank - below)) / inBucket;
    }
    lower = b.le;
    below = b.count;
  }
  return lower;
}
