// Subsetting simulated without a network, seeded: 100 clients, 300 servers, subsets of 12.
import { seededRandom } from '@grpc-tower/testing';
import { describe, expect, it } from 'vitest';
import {
  deterministicAlgorithm,
  loadOf,
  randomAlgorithm,
  rendezvousAlgorithm,
  simulate,
  syntheticServers,
} from '../test/subsetting.js';
import { rendezvousSubset, subsetAssignment } from './assign.js';
import { selectSubset } from './subset.js';

const CLIENTS = 100;
const SERVERS = 300;
const SIZE = 12;
const CHANGES = 30;

const format = (r: ReturnType<typeof simulate>): string =>
  `${r.name}: max/mean ${r.maxOverMean.toFixed(2)} (max ${r.maxLoad}, mean ${r.meanLoad.toFixed(1)}), ` +
  `≤ ${r.maxConnections} connections per client, one removal moves ≤ ${r.removal.max} ` +
  `(mean ${r.removal.mean.toFixed(1)}) clients, one addition ≤ ${r.addition.max} ` +
  `(mean ${r.addition.mean.toFixed(1)}); the added server gets ${r.addedServerLoad.toFixed(1)} clients`;

describe(`subsetting, ${CLIENTS} clients × ${SERVERS} servers, subsets of ${SIZE}`, () => {
  const deterministic = simulate(deterministicAlgorithm(CLIENTS, SIZE), {
    servers: SERVERS,
    changes: CHANGES,
    seed: 7,
  });
  const rendezvous = simulate(rendezvousAlgorithm(CLIENTS, SIZE), {
    servers: SERVERS,
    changes: CHANGES,
    seed: 7,
  });
  const random = simulate(randomAlgorithm(CLIENTS, SIZE, seededRandom(11)), {
    servers: SERVERS,
    changes: CHANGES,
    seed: 7,
  });

  it('deterministic subsetting: even load, 12 connections each, and a removal moves at most 2 × 12 clients', () => {
    console.info([deterministic, rendezvous, random].map(format).join('\n'));
    expect(deterministic.maxOverMean).toBeLessThanOrEqual(1.15);
    expect(deterministic.maxConnections).toBe(SIZE);
    expect(deterministic.removal.max).toBeLessThanOrEqual(2 * SIZE);
    expect(deterministic.addition.max).toBeLessThanOrEqual(2 * SIZE);
    // the 4 clients that held a removed server must move; a few more follow them
    expect(deterministic.removal.mean).toBeGreaterThanOrEqual((CLIENTS * SIZE) / SERVERS);
    // an added server takes its share at once
    expect(deterministic.addedServerLoad).toBeGreaterThanOrEqual(3);
  });

  it('random subsets and rendezvous hashing spread the same connections far less evenly', () => {
    expect(random.maxConnections).toBe(SIZE);
    expect(rendezvous.maxConnections).toBe(SIZE);
    expect(random.maxOverMean).toBeGreaterThan(1.5);
    expect(rendezvous.maxOverMean).toBeGreaterThan(1.5);
    expect(random.maxOverMean).toBeGreaterThan(deterministic.maxOverMean);
    expect(rendezvous.maxOverMean).toBeGreaterThan(deterministic.maxOverMean);
    // rendezvous hashing moves only the clients that held the server, or take the new one
    expect(rendezvous.removal.max).toBeLessThanOrEqual(deterministic.removal.max);
  });

  it('keeps load within one of the mean when the numbers do not divide', () => {
    for (const [clients, servers, size] of [
      [100, 299, 12],
      [37, 101, 5],
      [1000, 1000, 20],
      [10, 300, 12],
    ] as const) {
      const s = syntheticServers(servers);
      const rows = subsetAssignment(s, { size, clientCount: clients, seed: 'odd' });
      const load = loadOf(rows, s);
      expect(load.maxConnections).toBe(size);
      expect(rows.every((row) => new Set(row).size === size)).toBe(true);
      expect(load.max).toBeLessThanOrEqual(Math.ceil((clients * size) / servers));
      expect(load.min).toBeGreaterThanOrEqual(Math.floor((clients * size) / servers));
    }
  });

  it('is a function of the set, its seed and the client: not of the order keys arrive in', () => {
    const servers = syntheticServers(SERVERS);
    const random = seededRandom(3);
    const shuffled = [...servers];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j] as string, shuffled[i] as string];
    }
    const a = subsetAssignment(servers, { size: SIZE, clientCount: CLIENTS, seed: 'orders' });
    expect(subsetAssignment(shuffled, { size: SIZE, clientCount: CLIENTS, seed: 'orders' })).toEqual(a);
    expect(subsetAssignment(servers, { size: SIZE, clientCount: CLIENTS, seed: 'billing' })).not.toEqual(a);
    expect(
      selectSubset(shuffled, { size: SIZE, clientIndex: 42, clientCount: CLIENTS, seed: 'orders' }),
    ).toEqual(a[42]);
    const r = rendezvousSubset(servers, { size: SIZE, clientId: 'web-1' });
    expect(rendezvousSubset(shuffled, { size: SIZE, clientId: 'web-1' })).toEqual(r);
    expect(rendezvousSubset(servers, { size: SIZE, clientId: 'web-2' })).not.toEqual(r);
  });
});
