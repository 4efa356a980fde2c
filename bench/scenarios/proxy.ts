/**
 * proxy: grpc-tower in process against a layer-7 gRPC proxy in front of
 * the same three servers. The proxy is Debian's nginx (`grpc_pass` to a
 * `least_conn` upstream with keepalive connections, one worker, HTTP/2 on
 * the listening side), reached by a plain grpc-js client. For reference, a
 * plain grpc-js client with round_robin straight to the servers, and the
 * full stack over grpc-js endpoints (`transport: 'grpc-js'`), are measured
 * too.
 *
 * Per round and client: throughput of a closed loop (32 calls in flight),
 * CPU per call during it — the client process's, plus nginx's master and
 * worker from /proc for the proxied client — and p50/p99 of sequential
 * calls after it. Ratios are to the nginx client, round by round. Target:
 * the full stack in process (native endpoints, the default) spends at most
 * 0.6× the total CPU per call of grpc-js + nginx.
 *
 * @module
 */
import { staticList } from '@grpc-tower/discover';
import { closedLoop, sequential } from '../lib/load.js';
import { type Nginx, checkNginx, startNginx } from '../lib/nginx.js';
import { roundOrder } from '../lib/rounds.js';
import { type ScenarioBody, type ScenarioOptions, target } from '../lib/schema.js';
import { HOSTS, spawnServers, stopServers } from '../lib/servers.js';
import { type Contender, FULL_STACK, closeAll, fullStack, plainClient } from '../lib/stacks.js';
import { RoundRecorder, percentile, sortedSamples } from '../lib/stats.js';

const BASE = 'grpc-js → nginx (least_conn)';
const TOWER = 'grpc-tower (full stack, in process)';
const TOWER_GRPC_JS = 'grpc-tower (full stack, grpc-js endpoints)';
const DIRECT = 'grpc-js round_robin (direct)';

/**
 * Runs the proxy scenario.
 *
 * @example
 * ```ts
 * const body = await proxy({ quick: true, log: console.error });
 * ```
 */
export async function proxy({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  const version = checkNginx();
  const rounds = quick ? 2 : 5;
  const throughputMs = quick ? 1_000 : 2_500;
  const sequentialCalls = quick ? 300 : 1_500;
  const warmupMs = quick ? 500 : 1_000;
  const concurrency = 32;

  const servers = await spawnServers(HOSTS.proxy.map((host, i) => ({ host, name: `s${i}`, health: true })));
  const contenders: Contender[] = [];
  let nginx: Nginx | undefined;
  try {
    const addresses = servers.map((s) => s.address);
    nginx = await startNginx({ host: HOSTS.nginx, upstreams: addresses });
    const proxyCpu = nginx.cpuUs;
    contenders.push(
      plainClient(BASE, nginx.address),
      fullStack(TOWER, staticList(addresses)),
      // the same stack over the transport that was the default before the native one, for comparison
      fullStack(TOWER_GRPC_JS, staticList(addresses), { transport: 'grpc-js' }),
      plainClient(DIRECT, `ipv4:${addresses.join(',')}`, { roundRobin: true }),
    );
    for (const c of contenders) await closedLoop(c.client, { concurrency, durationMs: warmupMs });

    const rec = new RoundRecorder();
    let failures = 0;
    for (let r = 0; r < rounds; r++) {
      for (const c of roundOrder(contenders, r)) {
        const p0 = proxyCpu();
        const loop = await closedLoop(c.client, { concurrency, durationMs: throughputMs });
        const proxyUs = c.name === BASE ? proxyCpu() - p0 : 0;
        const seq = await sequential(c.client, sequentialCalls);
        failures += loop.failures + seq.failures;
        const calls = Math.max(1, loop.calls + loop.failures);
        const unloaded = sortedSamples(seq.latencies);
        rec.add(c.name, 'rps', (loop.calls / loop.elapsedMs) * 1000);
        rec.add(c.name, 'p50Ms', percentile(unloaded, 0.5));
        rec.add(c.name, 'p99Ms', percentile(unloaded, 0.99));
        rec.add(c.name, 'loadedP99Ms', percentile(sortedSamples(loop.latencies), 0.99));
        rec.add(c.name, 'clientCpuUs', loop.cpuUs / calls);
        rec.add(c.name, 'proxyCpuUs', proxyUs / calls);
        rec.add(c.name, 'totalCpuUs', (loop.cpuUs + proxyUs) / calls);
      }
      log(`proxy: round ${r + 1}/${rounds} done`);
    }
    for (const c of contenders) {
      rec.ratio(c.name, BASE, 'rps', 'rpsRatio');
      rec.ratio(c.name, BASE, 'totalCpuUs', 'cpuRatio');
    }
    const metrics = [
      'rps',
      'rpsRatio',
      'p50Ms',
      'p99Ms',
      'loadedP99Ms',
      'clientCpuUs',
      'proxyCpuUs',
      'totalCpuUs',
      'cpuRatio',
    ];
    return {
      title: 'in-process balancing vs an nginx gRPC proxy',
      description:
        `Three echo servers in child processes. nginx (${version}, \`grpc_pass\`, \`least_conn\` upstream with ` +
        'keepalive connections, one worker process, HTTP/2 on 127.0.0.x) in front of them, reached by a plain ' +
        `grpc-js client; grpc-tower's full default stack (${FULL_STACK.description}) over the same servers in ` +
        'process, over native endpoints (the default) and over grpc-js endpoints; and a plain grpc-js client ' +
        'with round_robin straight to the servers for reference. Per ' +
        `round: a closed loop with ${concurrency} calls in flight for ${throughputMs} ms (throughput, CPU, loaded ` +
        `p99), then ${sequentialCalls} sequential calls (p50/p99). CPU per call is user + system time of the ` +
        'client process, plus that of the nginx master and worker (read from /proc, 10 ms ticks) for the ' +
        "proxied client; the servers' CPU is the same for all and not counted. Ratios are to the nginx client.",
      rounds,
      config: {
        concurrency,
        throughputMs,
        sequentialCalls,
        warmupMs,
        nginx: version,
        nginxWorkers: 1,
        upstreamKeepalive: 64,
      },
      tables: [
        {
          title: `unary calls through nginx vs in process, ${concurrency} in flight`,
          metrics: [
            { key: 'rps', label: 'calls/s', unit: '', digits: 0, better: 'higher' },
            { key: 'rpsRatio', label: 'ratio', unit: '×', digits: 2, better: 'higher' },
            { key: 'p50Ms', label: 'p50', unit: 'ms', digits: 3, better: 'lower' },
            { key: 'p99Ms', label: 'p99', unit: 'ms', digits: 3, better: 'lower' },
            { key: 'loadedP99Ms', label: 'p99 loaded', unit: 'ms', digits: 2, better: 'lower' },
            { key: 'clientCpuUs', label: 'client CPU', unit: 'µs/call', digits: 1, better: 'lower' },
            { key: 'proxyCpuUs', label: 'proxy CPU', unit: 'µs/call', digits: 1, better: 'lower' },
            { key: 'totalCpuUs', label: 'total CPU', unit: 'µs/call', digits: 1, better: 'lower' },
            { key: 'cpuRatio', label: 'CPU ratio', unit: '×', digits: 2, better: 'lower' },
          ],
          rows: contenders.map((c) => ({
            name: c.name,
            ...(c.name === BASE ? { baseline: true } : {}),
            metrics: Object.fromEntries(metrics.map((m) => [m, rec.spread(c.name, m)])),
          })),
        },
      ],
      targets: [
        target({
          id: 'proxy-full-cpu',
          description: 'full stack in process: total CPU per call vs grpc-js + nginx',
          row: TOWER,
          metric: 'cpuRatio',
          op: '<=',
          target: 0.6,
          value: rec.spread(TOWER, 'cpuRatio').median,
          unit: '×',
        }),
      ],
      notes: failures > 0 ? [`${failures} calls failed during the measurement`] : [],
    };
  } finally {
    await closeAll(contenders);
    await nginx?.stop();
    await stopServers(servers);
  }
}
