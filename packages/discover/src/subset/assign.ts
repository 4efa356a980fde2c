/**
 * Which servers each client keeps: the two subsetting algorithms behind
 * {@link subset}, as pure functions of the set of keys.
 *
 * - **Deterministic, with a client index** ({@link subsetAssignment}):
 *   every client computes the same assignment of all `clientCount` clients
 *   and keeps its own row. Each (client, server) pair gets a rendezvous
 *   score, a hash of the two; pairs are taken in order of score, and a pair
 *   is accepted while its client has fewer than `size` servers and its
 *   server fewer than its cap. The caps add up to `clientCount × size`:
 *   each server takes `⌊clientCount × size / servers⌋` clients, and the
 *   remainder goes one each to the servers first in a seeded order. This
 *   is consistent hashing with bounded loads (Mirrokni, Thorup and
 *   Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018) with the
 *   bound at its tightest, so that connections per server are as even as
 *   whole numbers allow, the property Google's deterministic subsetting
 *   (the SRE book, "Load Balancing in the Datacenter") and Finagle's
 *   deterministic aperture are built for. Unlike the SRE book's rounds of
 *   shuffled lists, or a ring of evenly spaced servers (Finagle's aperture,
 *   Google's Ringsteady), it keeps no position that a server's departure
 *   shifts: a pair's score does not depend on the other servers, so a
 *   change of one server moves only the clients that held it and the
 *   short chain of clients whose slot those take (simulated with 100
 *   clients, 300 servers and subsets of 12: one removal moves 14 clients
 *   on average, 4 of which held the server; see `simulation.test.ts`).
 * - **Random identity** ({@link rendezvousSubset}): gRPC's
 *   `random_subsetting` proposal (A68): the `size` servers with the lowest
 *   rendezvous score for this client's id. Clients need no coordination,
 *   and a change of one server moves only the clients that held it (or
 *   now take it), but the number of clients per server follows a binomial
 *   law: with few clients per server, some servers have twice the mean.
 *
 * Both are deterministic: the same keys, options and identity give the same
 * subset in any order and on any machine, so a restarted client finds its
 * old servers again. Scores are 32-bit hashes (FNV-1a of the key, then
 * MurmurHash3's finalizer), ties broken by client and key order.
 *
 * @module
 */

/** MurmurHash3's 32-bit finalizer: a bijection that mixes every input bit into every output bit. */
function mix32(h: number): number {
  let x = h >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** FNV-1a over the UTF-16 code units of `text`, started from `seed`, then mixed. */
function hashText(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return mix32(h);
}

/** A salt that makes the order of the servers that take the remainder independent of their scores. */
const CAP_SALT = 0x5bd1e995;
/** 2^32: the range of a score. */
const SCORE_RANGE = 4_294_967_296;

/**
 * The hash of a seed: each service (or each purpose) gets its own
 * assignment, so that two services' clients do not pick the same servers.
 */
function seedHash(seed: string | number): number {
  return hashText(`${typeof seed}:${seed}`, 0x9747b28c);
}

/** The distinct keys, sorted: the canonical order that makes the result independent of arrival order. */
function canonical(keys: Iterable<string>): string[] {
  return [...new Set(keys)].sort();
}

/**
 * Options of {@link subsetAssignment}.
 *
 * @example
 * ```ts
 * const opts: SubsetAssignmentOptions = { size: 12, clientCount: 100, seed: 'orders' };
 * ```
 */
export interface SubsetAssignmentOptions {
  /** Servers per client. */
  readonly size: number;
  /** How many clients share the servers; client indices run from 0 to `clientCount - 1`. */
  readonly clientCount: number;
  /** Gives another assignment for the same servers (use the service's name); default `''`. */
  readonly seed?: string | number;
}

/**
 * Every client's subset under deterministic subsetting: row `i` is the
 * subset of the client with index `i`, its keys sorted. Each row has
 * `min(size, keys)` distinct keys; each key is in
 * `⌊clientCount × size / keys⌋` or one more rows. With no more keys than
 * `size`, every row is every key.
 *
 * It costs O(clientCount × keys) hashes: about 30 ms for 1,000 clients
 * and 1,000 servers. Options are not checked here; {@link subset} checks
 * them.
 *
 * @example
 * ```ts
 * const rows = subsetAssignment(addresses, { size: 12, clientCount: 100 });
 * rows[7]; // the 12 addresses client 7 connects to
 * ```
 */
export function subsetAssignment(keys: Iterable<string>, options: SubsetAssignmentOptions): string[][] {
  const all = canonical(keys);
  const clients = options.clientCount;
  const n = all.length;
  if (n <= options.size) return Array.from({ length: clients }, () => [...all]);
  const size = options.size;
  const seed = seedHash(options.seed ?? '');
  const serverHash = new Uint32Array(n);
  for (let k = 0; k < n; k++) serverHash[k] = hashText(all[k] as string, seed);
  const clientHash = new Uint32Array(clients);
  for (let i = 0; i < clients; i++) clientHash[i] = mix32(Math.imul(i + 1, 0x9e3779b9) ^ seed);
  const score = (i: number, k: number): number =>
    mix32((serverHash[k] as number) ^ (clientHash[i] as number));

  // caps: as even as whole numbers allow, adding up to the demand
  const demand = clients * size;
  const base = Math.floor(demand / n);
  const cap = new Uint32Array(n).fill(base);
  const extra = demand - base * n;
  if (extra > 0) {
    const capRank = Array.from(serverHash, (h) => mix32(h ^ CAP_SALT));
    const order = Array.from({ length: n }, (_, k) => k).sort(
      (a, b) => (capRank[a] as number) - (capRank[b] as number) || a - b,
    );
    for (let r = 0; r < extra; r++) {
      const k = order[r] as number;
      cap[k] = (cap[k] as number) + 1;
    }
  }

  const load = new Uint32Array(n);
  const rows: number[][] = Array.from({ length: clients }, () => []);
  let unfilled = clients;
  // Pairs in order of score, one band of scores at a time: most clients fill
  // up from the lowest few percent of their scores, so the first band holds
  // nearly all accepted pairs and only those are sorted.
  let low = 0;
  let width = Math.min(1, (2 * size) / n) * SCORE_RANGE;
  while (unfilled > 0 && low < SCORE_RANGE) {
    const high = Math.min(SCORE_RANGE, low + width);
    const open: number[] = [];
    for (let k = 0; k < n; k++) if ((load[k] as number) < (cap[k] as number)) open.push(k);
    const pairClient: number[] = [];
    const pairServer: number[] = [];
    const pairScore: number[] = [];
    for (let i = 0; i < clients; i++) {
      if ((rows[i] as number[]).length >= size) continue;
      for (const k of open) {
        const s = score(i, k);
        if (s >= low && s < high) {
          pairClient.push(i);
          pairServer.push(k);
          pairScore.push(s);
        }
      }
    }
    const order = Array.from(pairScore, (_, p) => p).sort(
      (a, b) =>
        (pairScore[a] as number) - (pairScore[b] as number) ||
        (pairClient[a] as number) - (pairClient[b] as number) ||
        (pairServer[a] as number) - (pairServer[b] as number),
    );
    for (const p of order) {
      const i = pairClient[p] as number;
      const k = pairServer[p] as number;
      const row = rows[i] as number[];
      if (row.length >= size || (load[k] as number) >= (cap[k] as number)) continue;
      row.push(k);
      load[k] = (load[k] as number) + 1;
      if (row.length === size) unfilled--;
    }
    low = high;
    width *= 2;
  }
  if (unfilled > 0) fillShortRows(rows, load, cap, size, score);
  return rows.map((row) => row.map((k) => all[k] as string).sort());
}

/**
 * After the greedy pass a client can be short while the only servers with
 * room are already in its subset. Each missing slot is filled by a swap
 * that keeps every server within its cap: another client hands this one a
 * server it lacks and takes the server with room instead. Without such a
 * swap (a degenerate set), the client takes its best-scored other server
 * one over that server's cap.
 */
function fillShortRows(
  rows: number[][],
  load: Uint32Array,
  cap: Uint32Array,
  size: number,
  score: (i: number, k: number) => number,
): void {
  const members = rows.map((row) => new Set(row));
  const n = load.length;
  for (let c = 0; c < rows.length; c++) {
    const row = rows[c] as number[];
    const mine = members[c] as Set<number>;
    while (row.length < size) {
      if (!swapInto(c, rows, members, load, cap)) {
        let best = -1;
        for (let k = 0; k < n; k++) {
          if (!mine.has(k) && (best < 0 || score(c, k) < score(c, best))) best = k;
        }
        if (best < 0) break;
        row.push(best);
        mine.add(best);
        load[best] = (load[best] as number) + 1;
      }
    }
  }
}

/** One swap for the short client `c`: true when it took place. */
function swapInto(
  c: number,
  rows: number[][],
  members: Set<number>[],
  load: Uint32Array,
  cap: Uint32Array,
): boolean {
  const mine = members[c] as Set<number>;
  for (let k = 0; k < load.length; k++) {
    if ((load[k] as number) >= (cap[k] as number)) continue;
    // k has room but c holds it already: find d holding some m that c lacks, d lacking k
    for (let d = 0; d < rows.length; d++) {
      const theirs = members[d] as Set<number>;
      if (d === c || theirs.has(k)) continue;
      const row = rows[d] as number[];
      const at = row.findIndex((m) => !mine.has(m));
      if (at < 0) continue;
      const m = row[at] as number;
      row[at] = k;
      theirs.delete(m);
      theirs.add(k);
      load[k] = (load[k] as number) + 1;
      (rows[c] as number[]).push(m);
      mine.add(m);
      return true;
    }
  }
  return false;
}

/**
 * Options of {@link rendezvousSubset}.
 *
 * @example
 * ```ts
 * const opts: RendezvousSubsetOptions = { size: 12, clientId: 'orders-7f9c', seed: 'orders' };
 * ```
 */
export interface RendezvousSubsetOptions {
  /** Servers per client. */
  readonly size: number;
  /** This client's identity: the same id keeps the same subset. */
  readonly clientId: string;
  /** Gives another subset for the same id and servers; default `''`. */
  readonly seed?: string | number;
}

/**
 * One client's subset under random subsetting with rendezvous hashing
 * (gRPC A68): the `size` keys with the lowest hash of (client id, key),
 * sorted. With no more keys than `size`, every key. O(keys × log keys).
 *
 * @example
 * ```ts
 * rendezvousSubset(addresses, { size: 12, clientId: hostname() });
 * ```
 */
export function rendezvousSubset(keys: Iterable<string>, options: RendezvousSubsetOptions): string[] {
  const all = canonical(keys);
  if (all.length <= options.size) return all;
  const seed = seedHash(options.seed ?? '');
  const client = hashText(options.clientId, seed);
  const scored = all.map((key, k) => ({ k, s: mix32(hashText(key, seed) ^ client) }));
  scored.sort((a, b) => a.s - b.s || a.k - b.k);
  return scored
    .slice(0, options.size)
    .map((e) => all[e.k] as string)
    .sort();
}
