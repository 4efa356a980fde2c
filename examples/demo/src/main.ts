// npm run demo [-- --quick] [-- --compare] [-- --discovery dns|kubernetes] [-- --json <path>] [-- --out <dir>]
//
// Three echo servers in child processes on 127.0.0.251-253, one DNS name
// served by a DNS server the demo starts (with --discovery kubernetes, also
// one EndpointSlice served by a stand-in Kubernetes API server, which the
// grpc-tower client watches instead), and a grpc-tower client (plus a
// plain grpc-js round_robin client with --compare) under steady traffic
// while servers crash, appear, slow down and restart. Prints a live view,
// then a summary table, and writes an SVG chart and a JSON summary. While it
// runs, the grpc-tower client's metrics (OpenTelemetry, gRPC's names) are at
// http://127.0.0.1:<port>/metrics, the URL printed at the start.
import './grpc-env.js';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runDemo } from './demo.js';

const usage = `usage: npm run demo -- [--quick] [--compare] [--discovery <dns|kubernetes|xds>] [--json <path>] [--out <dir>] [--plain]

  --quick        the short story (about 25 s instead of about a minute)
  --compare      also run a plain grpc-js round_robin client through the same story
  --discovery    how the grpc-tower client finds the servers (default dns):
                   dns         the demo's DNS server, resolved every second
                   kubernetes  the EndpointSlices of a Kubernetes Service, watched; the demo
                               starts a stand-in Kubernetes API server on loopback, which
                               needs the openssl CLI (the round_robin client still reads DNS)
                   xds         the endpoints of an xDS cluster over one ADS stream; the demo
                               starts a stand-in xDS management server on loopback
  --json <path>  where to write the JSON summary (default: next to the chart)
  --out <dir>    where to write the chart (default: examples/demo/out)
  --plain        print plain lines instead of redrawing the terminal
`;

/** Ctrl-C: the demo stops, cleans up, and exits without a stack trace. */
class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      compare: { type: 'boolean', default: false },
      discovery: { type: 'string', default: 'dns' },
      json: { type: 'string' },
      out: { type: 'string' },
      plain: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(usage);
    return;
  }
  const discovery = values.discovery;
  if (discovery !== 'dns' && discovery !== 'kubernetes' && discovery !== 'xds') {
    process.stderr.write(
      `--discovery must be dns, kubernetes or xds, not ${JSON.stringify(discovery)}\n\n${usage}`,
    );
    process.exitCode = 2;
    return;
  }
  // npm runs the script in examples/demo; paths given on the command line are relative to where npm was run
  const base = process.env.INIT_CWD ?? process.cwd();
  const stop = new AbortController();
  const onSigint = (): void => stop.abort(new Interrupted());
  process.once('SIGINT', onSigint);
  try {
    await runDemo({
      quick: values.quick,
      compare: values.compare,
      discovery,
      signal: stop.signal,
      ...(values.plain ? { view: 'lines' as const } : {}),
      ...(values.json === undefined ? {} : { jsonPath: resolve(base, values.json) }),
      ...(values.out === undefined ? {} : { outDir: resolve(base, values.out) }),
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
}

main().catch((err: unknown) => {
  if (err instanceof Interrupted) {
    process.stderr.write('\ninterrupted; servers stopped\n');
    process.exitCode = 130;
    return;
  }
  if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`${err.message}\n\n${usage}`);
  } else {
    console.error(err);
  }
  process.exitCode = 1;
});
