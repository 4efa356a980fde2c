import { ConfigError } from '@grpc-tower/core';
import { Observable, Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { DiscoveredAddress } from '../address.js';
import type { Change } from '../change.js';
import { staticList } from '../static.js';
import { insertOf, record, removeOf } from '../test/record.js';
import { stoppedAfterEach } from '../test/stopped.js';
import { syntheticServers } from '../test/subsetting.js';
import { type SubsetOptions, selectSubset, subset } from './subset.js';

const rec = stoppedAfterEach();
type C = Change<string, DiscoveredAddress>;
const ins = insertOf;
const rem = removeOf;
/** Lets the operator apply what arrived (it does so one microtask later). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A Subject-driven input that counts its subscriptions. */
function counted(): {
  input: Subject<C>;
  source: Observable<C>;
  subscribed: () => number;
  active: () => number;
} {
  const input = new Subject<C>();
  let subscribed = 0;
  let active = 0;
  const source = new Observable<C>((subscriber) => {
    subscribed++;
    active++;
    const s = input.subscribe(subscriber);
    return () => {
      active--;
      s.unsubscribe();
    };
  });
  return { input, source, subscribed: () => subscribed, active: () => active };
}

const servers = syntheticServers(20);
const even: SubsetOptions = { size: 4, clientIndex: 2, clientCount: 5, seed: 'orders' };

describe('subset', () => {
  it('refuses bad options with a ConfigError that names the option', () => {
    const src = new Subject<C>();
    const bad: [unknown, RegExp][] = [
      [{ size: 0 }, /"size" must be an integer >= 1, got 0/],
      [{ size: 2.5 }, /"size" must be an integer >= 1/],
      [{ size: '12' }, /"size"/],
      [{}, /"size"/],
      [{ size: 3, clientIndex: 1 }, /"clientCount"/],
      [{ size: 3, clientIndex: 5, clientCount: 5 }, /"clientIndex" must be an integer from 0 to 4, got 5/],
      [{ size: 3, clientIndex: -1, clientCount: 5 }, /"clientIndex"/],
      [{ size: 3, clientIndex: 0.5, clientCount: 5 }, /"clientIndex"/],
      [{ size: 3, clientCount: 0 }, /"clientCount"/],
      [{ size: 3, clientIndex: 0, clientCount: 2, clientId: 'web-1' }, /"clientId"/],
      [{ size: 3, clientId: '' }, /"clientId"/],
      [{ size: 3, seed: { s: 1 } }, /"seed"/],
      [{ size: 3, seed: 1.5 }, /"seed"/],
      [{ size: 3, name: '' }, /"name"/],
      [null, /"options"/],
    ];
    for (const [options, message] of bad) {
      expect(() => subset(src, options as SubsetOptions)).toThrow(ConfigError);
      expect(() => subset(src, options as SubsetOptions)).toThrow(message);
      expect(() => selectSubset([], options as SubsetOptions)).toThrow(ConfigError);
    }
    expect(() => subset({} as Observable<C>, { size: 3 })).toThrow(/subset: option "source"/);
  });

  it('passes every server through while there are no more than size', async () => {
    const src = new Subject<C>();
    const r = rec(record(subset(src, even)));
    src.next(ins(servers[0] as string));
    src.next(ins(servers[1] as string));
    src.next(ins(servers[2] as string, 5));
    expect(r.changes).toEqual([]); // applied together, a microtask later
    await settle();
    expect(r.keys()).toEqual(servers.slice(0, 3).sort());
    // a new value of a member passes as an insert; an equal one does not
    src.next(ins(servers[2] as string, 7));
    src.next(ins(servers[1] as string));
    await settle();
    expect(r.changes.at(-1)).toEqual(ins(servers[2] as string, 7));
    expect(r.changes).toHaveLength(4);
    src.next(rem(servers[0] as string));
    src.next(rem('10.9.9.9:50051')); // unknown: ignored
    await settle();
    expect(r.keys()).toEqual([servers[1], servers[2]].sort());
    expect(r.problems).toEqual([]);
  });

  it('keeps this client’s subset of size, leaves a removed server out and refills from the rest', async () => {
    const src = new Subject<C>();
    const r = rec(record(subset(src, even)));
    for (const s of servers) src.next(ins(s));
    await settle();
    const first = selectSubset(servers, even);
    expect(first).toHaveLength(4);
    expect(r.keys()).toEqual(first);
    expect(r.changes.every((c) => c.type === 'insert')).toBe(true);

    const gone = first[1] as string;
    const rest = servers.filter((s) => s !== gone);
    src.next(rem(gone));
    await settle();
    expect(r.keys()).toEqual(selectSubset(rest, even));
    expect(r.keys()).toHaveLength(4);
    expect(r.keys()).not.toContain(gone);
    // the replacement is inserted before the removed server is removed
    const last = r.changes.slice(4);
    expect(last.findIndex((c) => c.type === 'remove')).toBeGreaterThan(0);
    expect(last.some((c) => c.type === 'remove' && c.key === gone)).toBe(true);
    expect(r.problems).toEqual([]);
    expect(r.of('resolved').at(-1)).toMatchObject({ source: 'subset', count: 4 });
  });

  it('with a client id, moves only when a member leaves; others come and go unseen', async () => {
    const options: SubsetOptions = { size: 3, clientId: 'web-7', seed: 'orders' };
    const src = new Subject<C>();
    const r = rec(record(subset(src, options)));
    for (const s of servers) src.next(ins(s));
    await settle();
    const members = r.keys();
    expect(members).toEqual(selectSubset(servers, options));
    const outsider = servers.find((s) => !members.includes(s)) as string;
    const count = r.changes.length;
    src.next(rem(outsider));
    src.next(ins('10.9.0.1:50051', 3));
    src.next(ins(servers.find((s) => !members.includes(s) && s !== outsider) as string, 9));
    await settle();
    // unless the new server outranks a member, nothing changes
    const now = selectSubset([...servers.filter((s) => s !== outsider), '10.9.0.1:50051'], options);
    expect(r.keys()).toEqual(now);
    if (now.join() === members.join()) expect(r.changes).toHaveLength(count);
    // a second operator with the same id (a restart) picks the same servers
    const again = rec(record(subset(staticList(servers), options)));
    await settle();
    expect(again.keys()).toEqual(members);
    // without an id, each operator draws its own
    const drawn = [0, 1, 2, 3].map(() => selectSubset(servers, { size: 3 }).join());
    expect(new Set(drawn).size).toBeGreaterThan(1);
  });

  it('is lazy and shared, and unsubscribes its input when the last subscriber leaves', async () => {
    const { input, source, subscribed, active } = counted();
    const out = subset(source, even);
    expect(subscribed()).toBe(0);
    const a = record(out);
    expect(active()).toBe(1);
    for (const s of servers) input.next(ins(s));
    await settle();
    const b = record(out);
    expect(subscribed()).toBe(1);
    expect(b.keys()).toEqual(a.keys()); // the current subset at once
    a.stop();
    expect(active()).toBe(1);
    b.stop();
    expect(active()).toBe(0);
    // a change that arrives while nobody listens is not applied; nothing runs later
    const c = record(out);
    expect(active()).toBe(1);
    input.next(ins(servers[0] as string));
    c.stop();
    await settle();
    expect(c.changes).toEqual([]);
    expect(active()).toBe(0);
  });

  it('forwards the input’s events, reports an input error as failed and keeps the set', async () => {
    const r = rec(
      record(subset(staticList(servers.slice(0, 6), { name: 'fixed' }), { ...even, name: 'orders' })),
    );
    await settle();
    expect(r.keys()).toHaveLength(4);
    // the input's own events, then the subset's
    expect(r.of('resolved').map((e) => e.source)).toEqual(['fixed', 'orders']);

    const src = new Subject<C>();
    const s = rec(record(subset(src, even)));
    for (const a of servers.slice(0, 6)) src.next(ins(a));
    await settle();
    src.error(new Error('registry gone'));
    await settle();
    expect(s.keys()).toHaveLength(4);
    expect(s.errored).toBeUndefined();
    expect(s.completed).toBe(false);
    const failed = s.of('failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.error.message).toMatch(/subset: the input failed; its last set is kept/);
  });
});
