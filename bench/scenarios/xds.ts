/**
 * xds, the time from an EDS update to the first call on the new endpoint:
 * servers A and B in the ClusterLoadAssignment of a stand-in xDS
 * management server (the test support's, checked against
 * `@grpc/grpc-js-xds`), each on its own loopback host. Under steady
 * traffic, C is published HEALTHY; measured per client: the milliseconds
 * from the update to C's first answer, the calls started in between, and
 * the calls that failed.
 *
 * Clients, both following the same management server at the same time
 * (the start order alternates by round):
 * - grpc-tower, the full default stack over `xds({ target })`;
 * - `@grpc/grpc-js-xds` (baseline): a grpc-js channel on `xds:///name`,
 *   its own resolver and balancer (the bootstrap is read once per process,
 *   so one management server serves every round).
 *
 * Each round starts fresh servers and clients under a new name. Targets,
 * for grpc-tower and over every round: no failed call, and C answering
 * within 200 ms of the update.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { xds } from '@grpc-tower/discover/xds';
import type { ChildEchoServer } from '@grpc-tower/testing';
import { type XdsServer, startXdsServer } from '../../packages/discover/src/test/index.js';
import * as first from '../lib/first-call.js';
import { sleep } from '../lib/rounds.js';
import { type ScenarioBody, type ScenarioOptions, target } from '../lib/schema.js';
import { HOSTS, spawnServers } from '../lib/servers.js';
import { fullStack, plainClient } from '../lib/stacks.js';
import { RoundRecorder } from '../lib/stats.js';

const BASE = '@grpc/grpc-js-xds';
const TOWER = 'grpc-tower (xds())';
const TARGET_MS = 200;

let control: XdsServer | undefined;

/** The one management server of the process: @grpc/grpc-js-xds reads its bootstrap once. */
async function managementServer(): Promise<XdsServer> {
  if (control !== undefined) return control;
  control = await startXdsServer({ host: HOSTS.xds[3] });
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = control.bootstrap({ id: 'grpc-tower-bench', zone: 'a' });
  (createRequire(import.meta.url)('@grpc/grpc-js-xds') as { register(): void }).register();
  return control;
}

/**
 * Runs the xds scenario.
 *
 * @example
 * ```ts
 * const body = await xdsScenario({ quick: true, log: console.error });
 * ```
 */
export async function xdsScenario({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  const rounds = quick ? 1 : 3;
  const warmupMs = quick ? 1_000 : 3_000;
  const capMs = quick ? 3_000 : 10_000;
  const ratePerSecond = 200;
  const afterMs = 300;
  const rec = new RoundRecorder();
  const tally = new first.FirstCallTally();
  const server = await managementServer();
  for (let r = 0; r < rounds; r++) {
    const servers: ChildEchoServer[] = await spawnServers(
      ['A', 'B', 'C'].map((name, i) => ({ host: HOSTS.xds[i] as string, name })),
    );
    const [a, b, c] = servers as [ChildEchoServer, ChildEchoServer, ChildEchoServer];
    const name = `bench-${r}-${Date.now()}`;
    const publish = (members: readonly ChildEchoServer[]) =>
      server.serve(name, [{ zone: 'a', endpoints: members.map((s) => ({ address: s.address })) }]);
    publish([a, b]);
    let watches: first.Watch[] = [];
    try {
      const contenders = [
        fullStack(TOWER, xds({ target: name }), { target: `xds:///${name}` }),
        plainClient(BASE, `xds:///${name}`),
      ];
      watches = first.watchFor(contenders, r, ratePerSecond, 'C');
      for (const w of await first.reachAll(watches, ['A', 'B'])) {
        log(`xds: round ${r + 1}: ${w.contender.name} did not reach both A and B before the update`);
      }
      await sleep(warmupMs);
      const updateAt = performance.now();
      publish([a, b, c]);
      await first.untilFirst(watches, updateAt, capMs);
      await sleep(afterMs);
      for (const { watch, records } of await tally.record(rec, watches, updateAt, capMs)) {
        const firstC = watch.first;
        if (firstC === undefined) continue;
        const between = records.filter((x) => x.started >= updateAt && x.ended < firstC).length;
        rec.add(watch.contender.name, 'callsBeforeC', between);
      }
      log(`xds: round ${r + 1}/${rounds}: ${first.describeFirst(watches, updateAt, 'C')}`);
    } finally {
      await first.endRound(watches, servers);
    }
  }
  const notes = tally.notes(
    (n) => `C answered no call within ${capMs / 1000} s of the update in ${n} of ${rounds} round(s)`,
  );
  const metrics = ['timeToCMs', 'callsBeforeC', 'failedCalls', 'calls'];
  return {
    title: 'an EDS update to the first call on the new endpoint',
    description:
      'Servers A and B in the ClusterLoadAssignment of a stand-in xDS management server, each on its own ' +
      `loopback host. Each client sends ${ratePerSecond} calls/s (open loop, 5 s deadline). After every client ` +
      `has reached A and B and ${warmupMs / 1000} s more, C is published HEALTHY. Time to C is from the update ` +
      "to C's first answer to that client; calls before C are the calls started after the update that ended " +
      `before it. grpc-tower runs the full default stack over xds(); @grpc/grpc-js-xds runs grpc-js's own xDS ` +
      'resolver and balancer on xds:///. Both follow the same management server at the same time.',
    rounds,
    config: { ratePerSecond, warmupMs, watchMs: capMs, hosts: HOSTS.xds.join(' ') },
    tables: [
      {
        title: 'C published HEALTHY in EDS',
        metrics: [
          { key: 'timeToCMs', label: 'time to C', unit: 'ms', digits: 0, better: 'lower' },
          { key: 'callsBeforeC', label: 'calls before C', unit: '', digits: 0, better: 'lower' },
          { key: 'failedCalls', label: 'failed calls', unit: '', digits: 0, better: 'lower' },
          { key: 'calls', label: 'calls/round', unit: '', digits: 0 },
        ],
        rows: [TOWER, BASE].map((who) => ({
          name: who,
          ...(who === BASE ? { baseline: true } : {}),
          metrics: Object.fromEntries(metrics.map((m) => [m, rec.spread(who, m)])),
        })),
      },
    ],
    targets: [
      target({
        id: 'xds-time-to-c',
        description: 'grpc-tower time from the EDS update to C in use, worst round',
        row: TOWER,
        metric: 'timeToCMs',
        op: '<=',
        target: TARGET_MS,
        value: rec.spread(TOWER, 'timeToCMs').max,
        unit: 'ms',
      }),
      target({
        id: 'xds-failed-calls',
        description: 'grpc-tower failed calls, worst round',
        row: TOWER,
        metric: 'failedCalls',
        op: '<=',
        target: 0,
        value: rec.spread(TOWER, 'failedCalls').max,
        unit: 'calls',
      }),
    ],
    notes,
  };
}
