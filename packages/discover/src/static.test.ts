import { ConfigError } from '@grpc-tower/core';
import { take } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import type { DiscoveryEvent } from './events.js';
import { merge } from './merge.js';
import { type SourceContext, sharedSource } from './source.js';
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

describe('staticList', () => {
  it('inserts each address once per subscriber and never completes', () => {
    const src = staticList(['127.0.0.2:50051', { address: '[0::1]:50051', weight: 3 }]);
    const a = rec(record(src));
    expect(a.changes).toEqual([
      { type: 'insert', key: '127.0.0.2:50051', endpoint: { address: '127.0.0.2:50051' } },
      { type: 'insert', key: '[::1]:50051', endpoint: { address: '[::1]:50051', weight: 3 } },
    ]);
    expect(a.of('resolved')).toEqual([
      { type: 'resolved', source: 'static', count: 2, inserted: 2, removed: 0 },
    ]);
    const b = rec(record(src));
    expect(b.keys()).toEqual(a.keys());
    expect(a.completed || b.completed).toBe(false);
    expect(src.name).toBe('static');
  });

  it('starts afresh after the last subscriber left', () => {
    const src = staticList(['127.0.0.2:50051']);
    const a = record(src);
    a.stop();
    const b = rec(record(src));
    expect(b.changes).toHaveLength(1);
    expect(b.of('resolved')).toHaveLength(1);
  });

  it('rejects an invalid or repeated address with a ConfigError naming the entry', () => {
    expect(() => staticList(['127.0.0.2:50051', 'nope'])).toThrow(ConfigError);
    expect(() => staticList(['127.0.0.2:50051', 'nope'])).toThrow(/addresses\[1\].*"nope"/);
    expect(() => staticList(['127.0.0.2:70000'])).toThrow(/out of range/);
    expect(() => staticList(['127.0.0.2:1', '127.0.0.2:1'])).toThrow(/addresses\[1\].*not already listed/);
    expect(() => staticList('127.0.0.2:1' as never)).toThrow(/must be a list of addresses/);
  });
});

describe('sharedSource', () => {
  it('reports a driver that throws on start as a failed event and keeps the stream open', () => {
    const src = sharedSource('broken', () => {
      throw new Error('driver bug');
    });
    const r = rec(record(src));
    expect(r.of('failed')[0]?.error.message).toBe('driver bug');
    expect(r.errored).toBeUndefined();
  });

  it('stops a driver whose only subscriber left while it was starting', () => {
    let stopped = 0;
    const src = sharedSource('sync', (ctx) => {
      ctx.replace(new Map([['127.0.0.2:1', { address: '127.0.0.2:1' }]]));
      return () => {
        stopped++;
      };
    });
    const seen: string[] = [];
    src.pipe(take(1)).subscribe((c) => seen.push(c.key));
    expect(seen).toEqual(['127.0.0.2:1']);
    expect(stopped).toBe(1);
  });

  it('builds an event only while somebody subscribes to events$, its own and those merge forwards', () => {
    let builds = 0;
    const resolved = (): DiscoveryEvent => {
      builds++;
      return { type: 'resolved', source: 'counted', count: 0, inserted: 0, removed: 0 };
    };
    let ctxRef: SourceContext | undefined;
    const src = sharedSource('counted', (ctx) => {
      ctxRef = ctx;
      return () => {};
    });
    const merged = merge([src], { name: 'merged' });
    const changes = merged.subscribe(() => {}); // runs both drivers; nobody listens to events
    const ctx = ctxRef!;
    ctx.emit(resolved);
    ctx.emit(resolved);
    expect(builds).toBe(0);

    const seen: DiscoveryEvent[] = [];
    const own: DiscoveryEvent[] = [];
    const listening = merged.events$.subscribe((e) => seen.push(e));
    ctx.emit(resolved);
    expect(builds).toBe(1);
    expect(seen).toEqual([{ type: 'resolved', source: 'counted', count: 0, inserted: 0, removed: 0 }]);
    const listeningToSource = src.events$.subscribe((e) => own.push(e));
    ctx.emit(resolved); // one build for both listeners
    expect(builds).toBe(2);
    expect([seen.length, own.length]).toEqual([2, 1]);

    listening.unsubscribe();
    listeningToSource.unsubscribe();
    ctx.emit(resolved);
    expect(builds).toBe(2);
    changes.unsubscribe();
    expect(ctx.stopped).toBe(true);
  });

  it('ignores inserts of equal values and removes of unknown keys', () => {
    let ctxRef: Parameters<Parameters<typeof sharedSource>[1]>[0] | undefined;
    const src = sharedSource('manual', (ctx) => {
      ctxRef = ctx;
      return () => {};
    });
    const r = rec(record(src));
    const ctx = ctxRef!;
    expect(ctx.apply([{ type: 'insert', key: 'a:1', endpoint: { address: 'a:1' } }])).toEqual({
      inserted: 1,
      removed: 0,
    });
    expect(ctx.apply([{ type: 'insert', key: 'a:1', endpoint: { address: 'a:1' } }])).toEqual({
      inserted: 0,
      removed: 0,
    });
    expect(ctx.apply([{ type: 'remove', key: 'b:1' }])).toEqual({ inserted: 0, removed: 0 });
    expect(r.changes).toHaveLength(1);
    r.stop();
    expect(ctx.stopped).toBe(true);
    expect(ctx.apply([{ type: 'insert', key: 'c:1', endpoint: { address: 'c:1' } }])).toEqual({
      inserted: 0,
      removed: 0,
    });
  });
});
