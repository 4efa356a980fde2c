/**
 * A simulation of subsetting without a network: clients choose subsets of
 * synthetic server addresses, and the figures that matter are measured:
 * the spread of clients over servers, the connections per client, and how
 * many clients change their subset when one server leaves or joins. The
 * subsetting tests and the `subsetting` benchmark share it.
 *
 * @module
 */
import { seededRandom } from '@grpc-tower/testing';
import { rendezvousSubset, subsetAssignment } from '../subset/assign.js';

/**
 * A way of choosing every client's subset: `initial` for a set of servers,
 * `update` for the next set given the subsets before (pure algorithms
 * ignore them).
 *
 * @example
 * ```ts
 * const algo: SubsetAlgorithm = deterministicAlgorithm(100, 12);
 * const rows = algo.initial(syntheticServers(300));
 * ```
 */
export interface SubsetAlgorithm {
  readonly name: string;
  initial(servers: readonly string[]): string[][];
  update(before: readonly (readonly string[])[], servers: readonly string[]): string[][];
}

/**
 * `n` distinct addresses, `10.x.y.z:50051`, starting from number `from`.
 *
 * @example
 * ```ts
 * syntheticServers(2); // ['10.0.0.0:50051', '10.0.0.1:50051']
 * ```
 */
export function syntheticServers(n: number, from = 0): string[] {
  return Array.from({ length: n }, (_, i) => {
    const v = i + from;
    return `10.${(v >> 16) & 255}.${(v >> 8) & 255}.${v & 255}:50051`;
  });
}

/**
 * Deterministic subsetting: client `i` is `clientIndex: i` of `clients`.
 *
 * @example
 * ```ts
 * deterministicAlgorithm(100, 12).initial(syntheticServers(300)).length; // 100
 * ```
 */
export function deterministicAlgorithm(clients: number, size: number, seed = 'sim'): SubsetAlgorithm {
  const rows = (servers: readonly string[]): string[][] =>
    subsetAssignment(servers, { size, clientCount: clients, seed });
  return { name: 'deterministic (clientIndex of clientCount)', initial: rows, update: (_, s) => rows(s) };
}

/**
 * Rendezvous hashing (gRPC A68): client `i` has the id `client-i`.
 *
 * @example
 * ```ts
 * rendezvousAlgorithm(100, 12).initial(syntheticServers(300))[0]?.length; // 12
 * ```
 */
export function rendezvousAlgorithm(clients: number, size: number, seed = 'sim'): SubsetAlgorithm {
  const rows = (servers: readonly string[]): string[][] =>
    Array.from({ length: clients }, (_, i) =>
      rendezvousSubset(servers, { size, clientId: `client-${i}`, seed }),
    );
  return { name: 'rendezvous (clientId, gRPC A68)', initial: rows, update: (_, s) => rows(s) };
}

/**
 * Plain random subsets: each client draws `size` distinct servers
 * uniformly. On a change it keeps the members that remain and draws a
 * replacement for each one that left; a new server is taken by nobody.
 *
 * @example
 * ```ts
 * randomAlgorithm(100, 12, Math.random).initial(syntheticServers(300));
 * ```
 */
export function randomAlgorithm(clients: number, size: number, random: () => number): SubsetAlgorithm {
  const fill = (row: string[], servers: readonly string[]): string[] => {
    const members = new Set(row);
    const want = Math.min(size, servers.length);
    while (members.size < want) members.add(servers[Math.floor(random() * servers.length)] as string);
    return [...members].sort();
  };
  return {
    name: 'random subsets',
    initial: (servers) => Array.from({ length: clients }, () => fill([], servers)),
    update: (before, servers) => {
      const live = new Set(servers);
      return before.map((row) =>
        fill(
          row.filter((s) => live.has(s)),
          servers,
        ),
      );
    },
  };
}

/**
 * How clients spread over servers: the most and fewest clients a server
 * has, their mean, max/mean, and the most servers a client has.
 *
 * @example
 * ```ts
 * loadOf([['a', 'b'], ['b', 'c']], ['a', 'b', 'c']).maxOverMean; // 2 / (4 / 3) = 1.5
 * ```
 */
export function loadOf(
  rows: readonly (readonly string[])[],
  servers: readonly string[],
): { max: number; min: number; mean: number; maxOverMean: number; maxConnections: number } {
  const load = new Map<string, number>(servers.map((s) => [s, 0]));
  let maxConnections = 0;
  for (const row of rows) {
    maxConnections = Math.max(maxConnections, row.length);
    for (const s of row) load.set(s, (load.get(s) ?? 0) + 1);
  }
  const values = [...load.values()];
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const max = Math.max(...values);
  return { max, min: Math.min(...values), mean, maxOverMean: max / mean, maxConnections };
}

/**
 * How many clients' subsets differ between `before` and `after`.
 *
 * @example
 * ```ts
 * movedClients([['a'], ['b']], [['a'], ['c']]); // 1
 * ```
 */
export function movedClients(
  before: readonly (readonly string[])[],
  after: readonly (readonly string[])[],
): number {
  let moved = 0;
  before.forEach((row, i) => {
    const next = new Set(after[i] ?? []);
    if (next.size !== row.length || row.some((s) => !next.has(s))) moved++;
  });
  return moved;
}

/**
 * What {@link simulate} measured for one algorithm.
 *
 * @example
 * ```ts
 * const r: SimulationResult = simulate(deterministicAlgorithm(100, 12), { servers: 300, changes: 10, seed: 1 });
 * r.removal.max; // the most clients one removal moved
 * ```
 */
export interface SimulationResult {
  readonly name: string;
  readonly maxOverMean: number;
  readonly maxLoad: number;
  readonly meanLoad: number;
  readonly maxConnections: number;
  /** Clients whose subset changed when one server was removed: the worst and the mean over the trials. */
  readonly removal: { readonly max: number; readonly mean: number };
  /** The same when one server was added. */
  readonly addition: { readonly max: number; readonly mean: number };
  /** Clients that took the added server, on average. */
  readonly addedServerLoad: number;
}

/**
 * Runs `algorithm` over `servers` synthetic servers, then `changes` times
 * removes one server (chosen with the seeded random source) and, apart,
 * adds one new server, each time from the initial set.
 *
 * @example
 * ```ts
 * simulate(rendezvousAlgorithm(100, 12), { servers: 300, changes: 10, seed: 1 }).maxOverMean;
 * ```
 */
export function simulate(
  algorithm: SubsetAlgorithm,
  options: { readonly servers: number; readonly changes: number; readonly seed: number },
): SimulationResult {
  const servers = syntheticServers(options.servers);
  const rows = algorithm.initial(servers);
  const load = loadOf(rows, servers);
  const random = seededRandom(options.seed);
  const removals: number[] = [];
  const additions: number[] = [];
  const addedLoads: number[] = [];
  for (let t = 0; t < options.changes; t++) {
    const gone = Math.floor(random() * servers.length);
    removals.push(
      movedClients(
        rows,
        algorithm.update(
          rows,
          servers.filter((_, k) => k !== gone),
        ),
      ),
    );
    const added = syntheticServers(1, 1_000_000 + t)[0] as string;
    const grown = algorithm.update(rows, [...servers, added]);
    additions.push(movedClients(rows, grown));
    addedLoads.push(grown.filter((row) => row.includes(added)).length);
  }
  const summary = (xs: readonly number[]) => ({
    max: Math.max(...xs),
    mean: xs.reduce((a, b) => a + b, 0) / xs.length,
  });
  return {
    name: algorithm.name,
    maxOverMean: load.maxOverMean,
    maxLoad: load.max,
    meanLoad: load.mean,
    maxConnections: load.maxConnections,
    removal: summary(removals),
    addition: summary(additions),
    addedServerLoad: addedLoads.reduce((a, b) => a + b, 0) / addedLoads.length,
  };
}
