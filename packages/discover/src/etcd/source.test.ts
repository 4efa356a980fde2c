import { ConfigError } from '@grpc-tower/core';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { InvalidRecordError } from '../errors.js';
import { type EtcdSourceOptions, etcd } from './source.js';
import { type EtcdServer, startEtcd } from '../test/etcd.js';
import { type Recording, record } from '../test/record.js';
import { type TcpProxy, startTcpProxy } from '../test/tcp-proxy.js';

// A real single-member etcd on loopback. Clients reach it through a TCP
// relay when a test needs to cut the connection while etcd keeps running.
let server: EtcdServer;
let proxy: TcpProxy;

beforeAll(async () => {
  server = await startEtcd();
  proxy = await startTcpProxy(server.clientPort);
});

afterAll(async () => {
  await proxy?.close();
  await server?.close();
});

const open: Recording<unknown>[] = [];
afterEach(async () => {
  for (const r of open.splice(0)) r.stop();
  await proxy.resume();
});
function rec<V>(r: Recording<V>): Recording<V> {
  open.push(r as Recording<unknown>);
  return r;
}

const opts: EtcdSourceOptions = {
  requestTimeoutMs: 2000,
  backoff: { initialMs: 100, maxMs: 400, jitter: 0 },
  watchBackoff: { initialMs: 50, maxMs: 300 },
};
const waitFor = (fn: () => void, timeout = 15_000) => vi.waitFor(fn, { timeout, interval: 10 });
const viaProxy = () => `http://${proxy.address}`;

describe('etcd', () => {
  it('reads the prefix first: plain addresses, JSON with weight and metadata; skips bad values by name', async () => {
    await server.put('/read/a', '127.0.0.2:50051');
    await server.put('/read/b', '{"address":"[fd00::0:2]:50051","weight":3,"metadata":{"zone":"b"}}');
    await server.put('/read/c', 'not an address');
    await server.put('/read/d', '{"address": 42}');
    await server.put('/read/e', '{broken json');
    await server.put('/readx/outside', '127.0.0.9:1');
    const r = rec(record(etcd(server.url, '/read/', opts)));
    await waitFor(() => expect(r.of('resync').length).toBe(1));
    expect(r.keys()).toEqual(['127.0.0.2:50051', '[fd00::2]:50051']);
    expect(r.set.get('[fd00::2]:50051')).toEqual({
      address: '[fd00::2]:50051',
      weight: 3,
      metadata: { zone: 'b' },
    });
    expect(r.of('resync')[0]).toMatchObject({ reason: 'start', source: 'etcd:/read/' });
    const invalid = r.of('invalid');
    expect(invalid.map((e) => e.input)).toEqual([
      '/read/c = "not an address"',
      '/read/d = "{\\"address\\": 42}"',
      '/read/e = "{broken json"',
    ]);
    for (const e of invalid) expect(e.error).toBeInstanceOf(InvalidRecordError);
  });

  it('follows puts and deletes through the watch', async () => {
    await server.put('/watch/a', '127.0.0.2:1');
    const r = rec(record(etcd(server.url, '/watch/', opts)));
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.2:1']));
    await server.put('/watch/b', '127.0.0.3:1');
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.2:1', '127.0.0.3:1']));
    await server.put('/watch/b', '{"address":"127.0.0.3:1","weight":5}');
    await waitFor(() => expect(r.set.get('127.0.0.3:1')?.weight).toBe(5));
    await server.put('/watch/a', '127.0.0.4:1');
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.3:1', '127.0.0.4:1']));
    await server.del('/watch/b');
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.4:1']));
    // a key whose value turns invalid stops naming its old address
    await server.put('/watch/a', 'garbage');
    await waitFor(() => expect(r.keys()).toEqual([]));
    expect(r.of('invalid').map((e) => e.input)).toEqual(['/watch/a = "garbage"']);
    expect(r.changes.map((c) => `${c.type} ${c.key}`)).toEqual([
      'insert 127.0.0.2:1',
      'insert 127.0.0.3:1',
      'insert 127.0.0.3:1',
      'insert 127.0.0.4:1',
      'remove 127.0.0.2:1',
      'remove 127.0.0.3:1',
      'remove 127.0.0.4:1',
    ]);
    expect(r.problems).toEqual([]);
  });

  it('reports two keys naming one address and keeps the address until both are gone', async () => {
    await server.put('/dup/a', '{"address":"127.0.0.5:1","weight":1}');
    await server.put('/dup/b', '{"address":"127.0.0.5:1","weight":2}');
    const r = rec(record(etcd(server.url, '/dup/', opts)));
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.5:1']));
    expect(r.set.get('127.0.0.5:1')?.weight).toBe(1);
    expect(r.of('duplicate')[0]).toMatchObject({ key: '127.0.0.5:1', inputs: ['/dup/a', '/dup/b'] });
    await server.del('/dup/a');
    await waitFor(() => expect(r.set.get('127.0.0.5:1')?.weight).toBe(2));
    await server.del('/dup/b');
    await waitFor(() => expect(r.keys()).toEqual([]));
    expect(r.changes.map((c) => c.type)).toEqual(['insert', 'insert', 'remove']);
  });

  it('resumes the watch after a restart of etcd and loses no change made while it was cut off', async () => {
    await server.put('/restart/a', '127.0.0.6:1');
    await server.put('/restart/b', '127.0.0.7:1');
    const r = rec(record(etcd(viaProxy(), '/restart/', opts)));
    await waitFor(() => expect(r.set.size).toBe(2));
    await proxy.pause();
    await waitFor(() => expect(r.of('disconnected').length).toBe(1));
    await server.restart();
    // Changes made while this client cannot reach etcd:
    await server.put('/restart/c', '127.0.0.8:1');
    await server.del('/restart/a');
    await proxy.resume();
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.7:1', '127.0.0.8:1']));
    await waitFor(() => expect(r.of('reconnected').length).toBe(1));
    // They came from the resumed watch, not from reading everything again.
    expect(r.of('resync')).toHaveLength(1);
    expect(r.changes.map((c) => `${c.type} ${c.key}`)).toEqual([
      'insert 127.0.0.6:1',
      'insert 127.0.0.7:1',
      'insert 127.0.0.8:1',
      'remove 127.0.0.6:1',
    ]);
  });

  it('resumes after a plain restart of etcd (direct connection)', async () => {
    const r = rec(record(etcd(server.url, '/plain/', opts)));
    await waitFor(() => expect(r.of('resync').length).toBe(1));
    await server.restart();
    await server.put('/plain/a', '127.0.0.9:1');
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.9:1']));
    expect(r.errored).toBeUndefined();
  });

  it('reads everything again when its revision was compacted, emitting only the difference', async () => {
    await server.put('/compact/a', '127.0.0.10:1');
    await server.put('/compact/b', '127.0.0.11:1');
    const r = rec(record(etcd(viaProxy(), '/compact/', opts)));
    await waitFor(() => expect(r.set.size).toBe(2));
    await proxy.pause();
    await server.put('/compact/c', '127.0.0.12:1');
    await server.del('/compact/a');
    await server.put('/compact/c', '127.0.0.13:1');
    await server.compact();
    await proxy.resume();
    await waitFor(() => expect(r.of('resync').length).toBe(2));
    expect(r.of('resync')[1]).toMatchObject({ reason: 'watch-cancelled' });
    expect(r.keys()).toEqual(['127.0.0.11:1', '127.0.0.13:1']);
    expect(r.changes.slice(2).map((c) => `${c.type} ${c.key}`)).toEqual([
      'insert 127.0.0.13:1',
      'remove 127.0.0.10:1',
    ]);
    // and the new watch works
    await server.put('/compact/d', '127.0.0.14:1');
    await waitFor(() => expect(r.set.has('127.0.0.14:1')).toBe(true));
  });

  it('keeps trying with backoff while etcd cannot be reached at start', async () => {
    await server.put('/late/a', '127.0.0.15:1');
    await proxy.pause();
    const r = rec(record(etcd(viaProxy(), '/late/', opts)));
    await waitFor(() => expect(r.of('backoff').length).toBeGreaterThanOrEqual(2));
    expect(r.of('failed')[0]?.error.message).toContain('reading /late/ failed');
    expect(
      r
        .of('backoff')
        .slice(0, 2)
        .map((e) => e.delayMs),
    ).toEqual([100, 200]);
    await proxy.resume();
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.15:1']));
    expect(r.of('resync').at(-1)?.reason).toBe('retry');
  });

  it('uses a client it is given without closing it, and shares one watch among subscribers', async () => {
    const client = new Etcd3({ hosts: server.url });
    try {
      await client.put('/shared/a').value('127.0.0.16:1');
      const src = etcd(client, '/shared/', opts);
      const a = rec(record(src));
      await waitFor(() => expect(a.set.size).toBe(1));
      const b = rec(record(src));
      expect(b.keys()).toEqual(['127.0.0.16:1']);
      a.stop();
      b.stop();
      // the client still works after the source stopped
      expect(await client.get('/shared/a').string()).toBe('127.0.0.16:1');
      expect(a.of('resync')).toHaveLength(1);
    } finally {
      client.close();
    }
  });

  it('rejects bad endpoints and prefixes at construction with ConfigError', () => {
    expect(() => etcd('not a url', '/x/')).toThrow(ConfigError);
    expect(() => etcd([], '/x/')).toThrow(/clientOrEndpoints/);
    expect(() => etcd(server.url, '')).toThrow(/prefix/);
    expect(() => etcd(server.url, '/x/', { requestTimeoutMs: 0 })).toThrow(/requestTimeoutMs/);
  });
});
