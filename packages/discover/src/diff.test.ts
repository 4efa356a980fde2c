import fc from 'fast-check';
import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { Change } from './change.js';
import { applyChanges, diff, diffSnapshots } from './diff.js';
import { valueEquals } from './equals.js';

type Value = { readonly address: string; readonly weight?: number };

// Few keys and few values, so that snapshots overlap, values change and keys come back.
const keyArb = fc.constantFrom(...Array.from({ length: 12 }, (_, i) => `10.0.0.${i}:50051`));
const valueArb = fc.record(
  { address: fc.constant('x'), weight: fc.integer({ min: 0, max: 2 }) },
  { requiredKeys: ['address'] },
);
const snapshotArb = fc
  .array(fc.tuple(keyArb, valueArb), { maxLength: 12 })
  .map((entries) => new Map<string, Value>(entries));

function sameSnapshot(a: ReadonlyMap<string, Value>, b: ReadonlyMap<string, Value>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (!b.has(k) || !valueEquals(b.get(k), v)) return false;
  return true;
}

describe('diffSnapshots', () => {
  it('turns the previous set into the new snapshot when applied', () => {
    fc.assert(
      fc.property(snapshotArb, snapshotArb, (prev, next) => {
        const changes = diffSnapshots(prev, next);
        expect(sameSnapshot(applyChanges(new Map(prev), changes), next)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('never inserts a key twice, never removes an unknown key, puts inserts before removes', () => {
    fc.assert(
      fc.property(snapshotArb, snapshotArb, (prev, next) => {
        const changes = diffSnapshots(prev, next);
        const inserted = changes.filter((c) => c.type === 'insert').map((c) => c.key);
        const removed = changes.filter((c) => c.type === 'remove').map((c) => c.key);
        expect(new Set(inserted).size).toBe(inserted.length);
        expect(new Set(removed).size).toBe(removed.length);
        for (const key of removed) expect(prev.has(key)).toBe(true);
        for (const key of removed) expect(next.has(key)).toBe(false);
        const firstRemove = changes.findIndex((c) => c.type === 'remove');
        const lastInsert = changes.map((c) => c.type).lastIndexOf('insert');
        if (firstRemove >= 0) expect(lastInsert).toBeLessThan(firstRemove);
      }),
      { numRuns: 500 },
    );
  });

  it('is minimal: one change per added, changed or removed key and nothing for unchanged ones', () => {
    fc.assert(
      fc.property(snapshotArb, snapshotArb, (prev, next) => {
        const changes = diffSnapshots(prev, next);
        let expected = 0;
        for (const [k, v] of next) if (!prev.has(k) || !valueEquals(prev.get(k), v)) expected++;
        for (const k of prev.keys()) if (!next.has(k)) expected++;
        expect(changes).toHaveLength(expected);
        // A value equal by structure but a different object is not a change.
        const copy = new Map([...prev].map(([k, v]) => [k, { ...v }]));
        expect(diffSnapshots(prev, copy)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('emits a replaced value as an insert of the known key', () => {
    const changes = diffSnapshots(
      new Map([
        ['a', 1],
        ['b', 2],
      ]),
      new Map([
        ['b', 3],
        ['c', 4],
      ]),
    );
    expect(changes).toEqual([
      { type: 'insert', key: 'b', endpoint: 3 },
      { type: 'insert', key: 'c', endpoint: 4 },
      { type: 'remove', key: 'a' },
    ]);
  });
});

describe('diff operator', () => {
  it('over any sequence of snapshots, the running set always equals the last snapshot', () => {
    fc.assert(
      fc.property(fc.array(snapshotArb, { minLength: 1, maxLength: 15 }), (snapshots) => {
        const input = new Subject<ReadonlyMap<string, Value>>();
        const running = new Map<string, Value>();
        const problems: string[] = [];
        const sub = input.pipe(diff<string, Value>()).subscribe((change: Change<string, Value>) => {
          if (change.type === 'remove' && !running.has(change.key))
            problems.push(`unknown remove ${change.key}`);
          applyChanges(running, [change]);
        });
        for (const snapshot of snapshots) {
          input.next(snapshot);
          expect(sameSnapshot(running, snapshot)).toBe(true);
        }
        sub.unsubscribe();
        expect(problems).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('copies each snapshot, so a producer may mutate and re-send its map', () => {
    const input = new Subject<ReadonlyMap<string, number>>();
    const seen: Change<string, number>[] = [];
    const sub = input.pipe(diff<string, number>()).subscribe((c) => seen.push(c));
    const map = new Map([['a', 1]]);
    input.next(map);
    map.set('b', 2);
    input.next(map);
    sub.unsubscribe();
    expect(seen).toEqual([
      { type: 'insert', key: 'a', endpoint: 1 },
      { type: 'insert', key: 'b', endpoint: 2 },
    ]);
  });

  it('passes errors and completion through and uses a custom equality', () => {
    const input = new Subject<ReadonlyMap<string, { v: number; seen: number }>>();
    const seen: string[] = [];
    let error: unknown;
    input.pipe(diff({ equals: (a, b) => a.v === b.v })).subscribe({
      next: (c) => seen.push(`${c.type}:${c.key}`),
      error: (e: unknown) => {
        error = e;
      },
    });
    input.next(new Map([['a', { v: 1, seen: 1 }]]));
    input.next(new Map([['a', { v: 1, seen: 2 }]]));
    input.error(new Error('upstream'));
    expect(seen).toEqual(['insert:a']);
    expect((error as Error).message).toBe('upstream');
  });
});
