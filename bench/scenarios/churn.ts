/**
 * churn, the crash-and-replace scenario: servers A and B behind the DNS
 * name `echo.test` on a real DNS server (dnsmasq), all servers on one port
 * on distinct 127.0.0.x hosts, as an A-record pool must be. Under steady
 * traffic, A is killed with SIGKILL and C replaces it in DNS. Measured per
 * client: calls that failed, and the time from the DNS change to C's first
 * answer.
 *
 * Clients, all resolving through the same dnsmasq, all sending at the same
 * time through the same crash (the start order alternates by round):
 * - grpc-tower, the full default stack over `dns('echo.test', port, {
 *   intervalMs: 1000 })`, with p2c + PeakEWMA (the default) and, to show
 *   what the load metric changes, with p2c + pending requests;
 * - grpc-js round_robin (baseline) on `dns://<dnsmasq>/echo.test:<port>`.
 *
 * Each round starts fresh servers, clients and DNS records. Targets, for
 * the default stack and over every round: no failed call, and C answering
 * within the DNS interval + 200 ms of the change.
 *
 * @module
 */
import { peakEwma, pendingRequests } from '@grpc-tower/balance';
import { dns } from '@grpc-tower/discover';
import type { ChildEchoServer } from '@grpc-tower/testing';
import { type Dnsmasq, startDnsmasq } from '../../packages/discover/src/test/index.js';
import { grpcJsHonoursDnsAuthority } from '../lib/grpc-env.js';
import {
  FirstCallTally,
  type Watch,
  describeFirst,
  endRound,
  reachAll,
  untilFirst,
  watchFor,
} from '../lib/first-call.js';
import { sleep } from '../lib/rounds.js';
import { type ScenarioBody, type ScenarioOptions, target } from '../lib/schema.js';
import { HOSTS, spawnOnSharedPort } from '../lib/servers.js';
import { fullStack, plainClient } from '../lib/stacks.js';
import { RoundRecorder } from '../lib/stats.js';

const NAME = 'echo.test';
const INTERVAL_MS = 1_000;
const BASE = 'grpc-js round_robin';
const TOWER = 'grpc-tower (p2c + PeakEWMA)';
const TOWER_PENDING = 'grpc-tower (p2c + pending)';

/**
 * Runs the churn scenario.
 *
 * @example
 * ```ts
 * const body = await churn({ quick: true, log: console.error });
 * ```
 */
export async function churn({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  if (!grpcJsHonoursDnsAuthority) {
    throw new Error(
      'GRPC_NODE_USE_ALTERNATIVE_RESOLVER is not "true": grpc-js would ignore the DNS server in its dns:// target',
    );
  }
  const rounds = quick ? 1 : 3;
  const warmupMs = quick ? 1_000 : 3_000;
  const capMs = quick ? 3_000 : 35_000;
  const ratePerSecond = 200;
  const afterMs = 300;

  const rec = new RoundRecorder();
  const notes: string[] = [];
  const tally = new FirstCallTally();
  const dnsmasq: Dnsmasq = await startDnsmasq({ hosts: {} });
  let port = 0;
  try {
    for (let r = 0; r < rounds; r++) {
      const servers: ChildEchoServer[] = await spawnOnSharedPort(
        ['A', 'B', 'C'].map((name, i) => ({ host: HOSTS.churn[i] as string, name, health: true })),
      );
      const [a, b, c] = servers as [ChildEchoServer, ChildEchoServer, ChildEchoServer];
      port = a.port;
      let watches: Watch[] = [];
      try {
        await dnsmasq.setHosts({ [NAME]: [a.host, b.host] });
        const source = () => dns(NAME, port, { servers: [dnsmasq.address], intervalMs: INTERVAL_MS });
        const contenders = [
          fullStack(TOWER, source(), { target: `dns:${NAME}:${port}`, load: peakEwma() }),
          fullStack(TOWER_PENDING, source(), { target: `dns:${NAME}:${port}`, load: pendingRequests() }),
          plainClient(BASE, `dns://${dnsmasq.address}/${NAME}:${port}`, { roundRobin: true }),
        ];
        watches = watchFor(contenders, r, ratePerSecond, 'C');

        // every client reaches both A and B, then steady traffic for the warm-up
        for (const w of await reachAll(watches, ['A', 'B'])) {
          notes.push(`round ${r + 1}: ${w.contender.name} did not reach both A and B before the crash`);
        }
        await sleep(warmupMs);

        await a.kill('SIGKILL');
        const killedAt = performance.now();
        await dnsmasq.setHosts({ [NAME]: [b.host, c.host] });
        const dnsAt = performance.now();
        log(`churn: round ${r + 1}: A killed, C in DNS ${(dnsAt - killedAt).toFixed(0)} ms later`);
        await untilFirst(watches, dnsAt, capMs);
        await sleep(afterMs);
        for (const { watch, records } of await tally.record(rec, watches, dnsAt, capMs)) {
          const toA = records.filter((x) => x.server === 'A' && x.ended > killedAt).length;
          rec.add(watch.contender.name, 'callsToA', toA);
        }
        log(`churn: round ${r + 1}/${rounds}: ${describeFirst(watches, dnsAt, 'C')}`);
      } finally {
        await endRound(watches, servers);
      }
    }
  } finally {
    await dnsmasq.close();
  }

  const names = [TOWER, TOWER_PENDING, BASE];
  const censored = tally.censored;
  notes.push(
    ...tally.notes(
      (n) =>
        `C answered no call within ${capMs / 1000} s of the DNS change in ${n} of ${rounds} round(s); ` +
        `its time to C is recorded as ${capMs / 1000} s (a lower bound)`,
    ),
  );
  const metrics = ['failedCalls', 'timeToCMs', 'callsToA', 'calls'];
  return {
    title: 'crash and replace behind DNS',
    description:
      `Servers A and B behind the DNS name ${NAME} on a real DNS server (dnsmasq, TTL 1 s), all on one port on ` +
      `distinct loopback hosts. Each client sends ${ratePerSecond} calls/s (open loop, 5 s deadline). After ` +
      `every client has reached A and B and ${warmupMs / 1000} s more, A is killed with SIGKILL and the DNS ` +
      'records become B and C. Failed calls count every call of the round that failed; time to C is from ' +
      "the moment dnsmasq has re-read its records to C's first answer to that client (at most " +
      `${capMs / 1000} s are watched). grpc-tower runs the full default stack over dns() polled every ` +
      `${INTERVAL_MS / 1000} s (±10 % jitter), with PeakEWMA (the default) and with pending-requests ` +
      'load; grpc-js runs round_robin over a dns:// target naming the same DNS server, with its defaults ' +
      '(it re-resolves after a connection drops, at most once every 30 s). All clients go through the same ' +
      'crash at the same time; each round starts fresh servers and clients.',
    rounds,
    config: {
      dnsIntervalMs: INTERVAL_MS,
      ratePerSecond,
      warmupMs,
      watchMs: capMs,
      hosts: HOSTS.churn.join(' '),
      port,
    },
    tables: [
      {
        title: 'A killed, C replaces it in DNS',
        metrics: [
          { key: 'failedCalls', label: 'failed calls', unit: '', digits: 0, better: 'lower' },
          { key: 'timeToCMs', label: 'time to C', unit: 'ms', digits: 0, better: 'lower' },
          { key: 'callsToA', label: 'calls A answered after kill', unit: '', digits: 0 },
          { key: 'calls', label: 'calls/round', unit: '', digits: 0 },
        ],
        rows: names.map((name) => ({
          name,
          ...(name === BASE ? { baseline: true } : {}),
          ...(censored.has(name)
            ? { note: `C not seen within ${capMs / 1000} s in ${censored.get(name)} round(s)` }
            : {}),
          metrics: Object.fromEntries(metrics.map((m) => [m, rec.spread(name, m)])),
        })),
      },
    ],
    targets: [
      target({
        id: 'churn-failed-calls',
        description: 'grpc-tower (default stack) failed calls, worst round',
        row: TOWER,
        metric: 'failedCalls',
        op: '<=',
        target: 0,
        value: rec.spread(TOWER, 'failedCalls').max,
        unit: 'calls',
      }),
      target({
        id: 'churn-time-to-c',
        description: 'grpc-tower (default stack) time from the DNS change to C in use, worst round',
        row: TOWER,
        metric: 'timeToCMs',
        op: '<=',
        target: INTERVAL_MS + 200,
        value: rec.spread(TOWER, 'timeToCMs').max,
        unit: 'ms',
      }),
    ],
    notes,
  };
}
