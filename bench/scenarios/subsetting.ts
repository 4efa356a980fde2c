/**
 * subsetting: how evenly clients that each keep a subset of the servers
 * spread over them, and how many clients change their subset when one
 * server leaves or joins. A simulation, no network: every client's subset
 * is computed as `subset` computes it, over synthetic addresses.
 *
 * Three ways of choosing, side by side: deterministic subsetting
 * (`clientIndex` of `clientCount`), rendezvous hashing (`clientId`, gRPC
 * A68), and plain random subsets (each client draws its servers
 * uniformly, keeps them while they last and replaces one that leaves).
 * Cases: 100 clients × 300 servers × 12, and 1,000 × 1,000 × 20.
 *
 * @module
 */
import {
  type SimulationResult,
  deterministicAlgorithm,
  randomAlgorithm,
  rendezvousAlgorithm,
  simulate,
  syntheticServers,
} from '../../packages/discover/src/test/subsetting.js';
import { subsetAssignment } from '@grpc-tower/discover';
import { seededRandom } from '@grpc-tower/testing';
import type { MetricSpec, ResultRow, ScenarioBody, ScenarioOptions, TargetResult } from '../lib/schema.js';
import { target } from '../lib/schema.js';
import { single, spread } from '../lib/stats.js';

const CASES = [
  { clients: 100, servers: 300, size: 12 },
  { clients: 1_000, servers: 1_000, size: 20 },
] as const;

const METRICS: readonly MetricSpec[] = [
  { key: 'maxOverMean', label: 'max/mean load', unit: '×', digits: 2, better: 'lower' },
  { key: 'maxLoad', label: 'most clients on a server', unit: '', digits: 0, better: 'lower' },
  { key: 'maxConnections', label: 'max connections per client', unit: '', digits: 0, better: 'lower' },
  { key: 'removalMax', label: 'clients moved, one removal (worst)', unit: '', digits: 0, better: 'lower' },
  { key: 'removalMean', label: 'clients moved, one removal (mean)', unit: '', digits: 1, better: 'lower' },
  { key: 'additionMax', label: 'clients moved, one addition (worst)', unit: '', digits: 0, better: 'lower' },
  { key: 'addedLoad', label: 'clients on the added server', unit: '', digits: 1 },
];

function rowOf(r: SimulationResult, baseline: boolean): ResultRow {
  return {
    name: r.name,
    ...(baseline ? { baseline } : {}),
    metrics: {
      maxOverMean: single(r.maxOverMean),
      maxLoad: single(r.maxLoad),
      maxConnections: single(r.maxConnections),
      removalMax: single(r.removal.max),
      removalMean: single(r.removal.mean),
      additionMax: single(r.addition.max),
      addedLoad: single(r.addedServerLoad),
    },
    ...(r.name === 'random subsets' ? { note: 'an added server gets no client until others leave' } : {}),
  };
}

/**
 * Runs the subsetting scenario.
 *
 * @example
 * ```ts
 * const body = await subsetting({ quick: true, log: console.error });
 * ```
 */
export async function subsetting({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  const changes = quick ? 5 : 30;
  const timingRuns = quick ? 3 : 9;
  const tables = [];
  const targets: TargetResult[] = [];
  const computeMs: number[][] = [];
  for (const c of CASES) {
    const label = `${c.clients.toLocaleString('en-US')} clients × ${c.servers.toLocaleString('en-US')} servers, subsets of ${c.size}`;
    const options = { servers: c.servers, changes, seed: 7 };
    const results = [
      simulate(deterministicAlgorithm(c.clients, c.size), options),
      simulate(rendezvousAlgorithm(c.clients, c.size), options),
      simulate(randomAlgorithm(c.clients, c.size, seededRandom(11)), options),
    ];
    tables.push({ title: label, metrics: METRICS, rows: results.map((r, i) => rowOf(r, i === 2)) });
    const addresses = syntheticServers(c.servers);
    const ms: number[] = [];
    for (let run = 0; run < timingRuns; run++) {
      const t = performance.now();
      subsetAssignment(addresses, { size: c.size, clientCount: c.clients, seed: `run-${run}` });
      ms.push(performance.now() - t);
    }
    computeMs.push(ms);
    if (c.clients === 100) {
      const det = results[0] as SimulationResult;
      targets.push(
        target({
          id: 'subsetting-even-load',
          description: 'deterministic subsetting: max/mean clients per server ≤ 1.15 (100 × 300 × 12)',
          row: det.name,
          metric: 'maxOverMean',
          op: '<=',
          target: 1.15,
          value: det.maxOverMean,
          unit: '×',
        }),
        target({
          id: 'subsetting-removal-moves',
          description: 'deterministic subsetting: one removal moves ≤ 2 × 12 clients (100 × 300 × 12, worst)',
          row: det.name,
          metric: 'removalMax',
          op: '<=',
          target: 24,
          value: det.removal.max,
          unit: '',
        }),
      );
    }
    log(`subsetting: ${label} done`);
  }
  return {
    title: 'subsets of servers per client: load spread and moves on a change',
    description:
      'A simulation (no network) of clients that each keep a subset of the servers, computed as the subset ' +
      'operator computes it over synthetic addresses. Load is the number of clients per server. A move is a ' +
      `client whose subset changed; each of ${changes} trials removes one server (seeded) or adds one new ` +
      'server, from the initial set. Deterministic: clientIndex of clientCount; rendezvous: clientId ' +
      '(gRPC A68); random subsets: each client draws its servers uniformly, keeps them while they last ' +
      'and replaces one that leaves.',
    rounds: 1,
    config: { changes, timingRuns, seed: 7 },
    tables: [
      ...tables,
      {
        title: 'time to compute every client’s deterministic subset',
        metrics: [{ key: 'ms', label: 'time', unit: 'ms', digits: 1, better: 'lower' }],
        rows: CASES.map((c, i) => ({
          name: `${c.clients.toLocaleString('en-US')} × ${c.servers.toLocaleString('en-US')} × ${c.size}`,
          metrics: { ms: spread(computeMs[i] ?? []) },
        })),
      },
    ],
    targets,
    notes: [
      'Each client computes the whole assignment (every client’s subset) to find its own, once per burst of ' +
        'discovery changes; the time table is that cost.',
      'With whole numbers of clients per server, max/mean 1.00 is even; one more client on a server ' +
        'shows as 1.25 at a mean of 4.',
    ],
  };
}
