import { ConfigError } from '@grpc-tower/core';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import type { DiscoveredAddress } from './address.js';
import type { Change } from './change.js';
import { merge } from './merge.js';
import { staticList } from './static.js';
import { type Recording, record } from './test/record.js';

const open: Recording<unknown>[] = [];
afterEach(() => {
  for (const r of open.splice(0)) r.stop();
});
function rec<V>(r: Recording<V>): Recording<V> {
  open.push(r as Recording<unknown>);
  return r;
}

type C = Change<string, DiscoveredAddress>;
const ins = (address: string, weight?: number): C => ({
  type: 'insert',
  key: address,
  endpoint: weight === undefined ? { address } : { address, weight },
});
const rem = (address: string): C => ({ type: 'remove', key: address });

describe('merge', () => {
  it('emits the union, and the earlier input wins for an address both name', () => {
    const src = merge([
      staticList([{ address: '10.0.0.1:80', weight: 1 }, '10.0.0.2:80'], { name: 'a' }),
      staticList([{ address: '10.0.0.1:80', weight: 9 }, '10.0.0.3:80'], { name: 'b' }),
    ]);
    const r = rec(record(src));
    expect(r.keys()).toEqual(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']);
    expect(r.set.get('10.0.0.1:80')).toEqual({ address: '10.0.0.1:80', weight: 1 });
    expect(r.of('duplicate')).toEqual([
      { type: 'duplicate', source: 'merge', key: '10.0.0.1:80', inputs: ['a', 'b'] },
    ]);
    // the inputs' own events are forwarded
    expect(r.of('resolved').map((e) => e.source)).toEqual(['a', 'b']);
  });

  it('hands an address over to the other input when one drops it and removes it when none has it', () => {
    const a = new Subject<C>();
    const b = new Subject<C>();
    const r = rec(record(merge([a, b])));
    a.next(ins('10.0.0.1:80', 1));
    b.next(ins('10.0.0.1:80', 9));
    expect(r.changes).toEqual([ins('10.0.0.1:80', 1)]);
    a.next(rem('10.0.0.1:80'));
    expect(r.changes).toEqual([ins('10.0.0.1:80', 1), ins('10.0.0.1:80', 9)]);
    a.next(ins('10.0.0.1:80', 1));
    expect(r.set.get('10.0.0.1:80')?.weight).toBe(1);
    b.next(rem('10.0.0.1:80'));
    expect(r.changes).toHaveLength(3);
    a.next(rem('10.0.0.1:80'));
    expect(r.changes.at(-1)).toEqual(rem('10.0.0.1:80'));
    b.next(rem('10.0.0.9:80'));
    expect(r.problems).toEqual([]);
  });

  it("keeps an input's set when it errors or completes and reports the error", () => {
    const a = new Subject<C>();
    const b = new Subject<C>();
    const r = rec(record(merge([a, b], { name: 'both' })));
    a.next(ins('10.0.0.1:80'));
    b.next(ins('10.0.0.2:80'));
    a.error(new Error('input broke'));
    b.complete();
    expect(r.keys()).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(r.of('failed')[0]?.error.message).toContain('input #0 failed');
    expect(r.errored).toBeUndefined();
    expect(r.completed).toBe(false);
  });

  it('rejects inputs that are not Observables', () => {
    expect(() => merge([{} as never])).toThrow(ConfigError);
    expect(() => merge('x' as never)).toThrow(/sources/);
  });
});
