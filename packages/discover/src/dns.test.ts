import { promises as dnsPromises } from 'node:dns';
import { connect as tcpConnect, createServer } from 'node:net';
import { ConfigError } from '@grpc-tower/core';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { formatAddress } from './address.js';
import { type DnsOptions, dns, dnsSrv } from './dns.js';
import { DnsResolveError, InvalidRecordError } from './errors.js';
import { type Dnsmasq, type SilentDnsServer, startDnsmasq, startSilentDnsServer } from './test/dnsmasq.js';
import { type Recording, record } from './test/record.js';

// A real dnsmasq on 127.0.0.1 answers every query; records change by
// rewriting its hosts file (SIGHUP) or its config (restart).
let server: Dnsmasq;
const hosts: Record<string, string[]> = {
  'dual.svc.test': ['127.0.0.11', 'fd00::11'],
  'v4.svc.test': ['127.0.0.12'],
  'v6.svc.test': ['fd00::12'],
  'moving.svc.test': ['127.0.0.31', '127.0.0.32'],
  'down.svc.test': ['127.0.0.41'],
  'a.srv.test': ['127.0.0.51', 'fd00::51'],
  'b.srv.test': ['127.0.0.52'],
  'backup.srv.test': ['127.0.0.53'],
  'ttl.svc.test': ['127.0.0.61'],
};

beforeAll(async () => {
  server = await startDnsmasq({
    hosts,
    ttl: 1,
    srv: [
      { name: '_grpc._tcp.svc.test', target: 'a.srv.test', port: 50051, priority: 0, weight: 10 },
      { name: '_grpc._tcp.svc.test', target: 'b.srv.test', port: 50052, priority: 0, weight: 30 },
      { name: '_grpc._tcp.svc.test', target: 'backup.srv.test', port: 50053, priority: 5, weight: 1 },
      { name: '_grpc._tcp.svc.test', target: 'zero.srv.test', port: 0, priority: 0, weight: 1 },
      { name: '_grpc._tcp.svc.test', target: 'bad_name.srv.test', port: 50054, priority: 0, weight: 1 },
      { name: '_grpc._tcp.svc.test', target: 'nothing.srv.test', port: 50055, priority: 0, weight: 1 },
      { name: '_grpc._tcp.backup.test', target: 'nothing.srv.test', port: 50056, priority: 0, weight: 1 },
      { name: '_grpc._tcp.backup.test', target: 'backup.srv.test', port: 50057, priority: 1, weight: 4 },
    ],
  });
});

afterAll(async () => {
  await server?.close();
});

const open: Recording<unknown>[] = [];
afterEach(() => {
  for (const r of open.splice(0)) r.stop();
});
function rec<V>(r: Recording<V>): Recording<V> {
  open.push(r as Recording<unknown>);
  return r;
}

const opts = (extra: DnsOptions = {}): DnsOptions => ({
  servers: [server.address],
  intervalMs: 200,
  jitter: 0.1,
  backoff: { initialMs: 100, maxMs: 400, jitter: 0 },
  ...extra,
});
const waitFor = (fn: () => void, timeout = 10_000) => vi.waitFor(fn, { timeout, interval: 10 });

describe('dns (A/AAAA)', () => {
  it('resolves A and AAAA together and writes IPv6 as grpc-js expects', async () => {
    const r = rec(record(dns('dual.svc.test', 50051, opts())));
    await waitFor(() => expect(r.of('resolved').length).toBeGreaterThan(0));
    expect(r.keys()).toEqual(['127.0.0.11:50051', '[fd00::11]:50051']);
    expect(r.set.get('[fd00::11]:50051')).toEqual({ address: '[fd00::11]:50051' });
    expect(r.of('resolved')[0]).toMatchObject({ source: 'dns:dual.svc.test:50051', count: 2 });
  });

  it('accepts a name that exists in one family only (NODATA on the other is no failure)', async () => {
    const v4 = rec(record(dns('v4.svc.test', 80, opts())));
    const v6 = rec(record(dns('v6.svc.test', 80, opts())));
    await waitFor(() =>
      expect(v4.of('resolved').length + v6.of('resolved').length).toBeGreaterThanOrEqual(4),
    );
    expect(v4.keys()).toEqual(['127.0.0.12:80']);
    expect(v6.keys()).toEqual(['[fd00::12]:80']);
    expect(v4.of('failed')).toEqual([]);
    expect(v6.of('failed')).toEqual([]);
  });

  it('queries only the family asked for', async () => {
    const r = rec(record(dns('dual.svc.test', 50051, opts({ family: 6 }))));
    await waitFor(() => expect(r.of('resolved').length).toBeGreaterThan(0));
    expect(r.keys()).toEqual(['[fd00::11]:50051']);
  });

  it('shows a new address by the first round after the change, and a removed one likewise', async () => {
    const r = rec(record(dns('moving.svc.test', 50051, opts())));
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.31:50051', '127.0.0.32:50051']));

    await server.setHosts({ ...hosts, 'moving.svc.test': ['127.0.0.31', '127.0.0.32', '127.0.0.33'] });
    const roundsAtAdd = r.of('resolved').length;
    let roundsWhenSeen = -1;
    await waitFor(() => {
      expect(r.set.has('127.0.0.33:50051')).toBe(true);
      if (roundsWhenSeen < 0) roundsWhenSeen = r.of('resolved').length;
    });
    // At most one round (the one in flight when the records changed) finished without it.
    expect(roundsWhenSeen - roundsAtAdd).toBeLessThanOrEqual(2);
    const insert = r.changes.findIndex((c) => c.key === '127.0.0.33:50051');
    expect(r.changes[insert]?.type).toBe('insert');

    await server.setHosts({ ...hosts, 'moving.svc.test': ['127.0.0.32', '127.0.0.33'] });
    const roundsAtRemove = r.of('resolved').length;
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.32:50051', '127.0.0.33:50051']));
    const removedAt = r.of('resolved').findIndex((e, i) => i >= roundsAtRemove && e.removed > 0);
    expect(removedAt - roundsAtRemove).toBeLessThanOrEqual(1);
    expect(r.changes.filter((c) => c.type === 'remove').map((c) => c.key)).toEqual(['127.0.0.31:50051']);
    expect(r.problems).toEqual([]);
    await server.setHosts(hosts);
  });

  it('keeps the last set while the DNS server is down, backs off, and recovers when it is back', async () => {
    const r = rec(record(dns('down.svc.test', 50051, opts())));
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.41:50051']));
    await server.stop();
    try {
      await waitFor(() => expect(r.of('backoff').length).toBeGreaterThanOrEqual(3));
      expect(r.keys()).toEqual(['127.0.0.41:50051']);
      expect(r.changes.filter((c) => c.type === 'remove')).toEqual([]);
      expect(
        r
          .of('backoff')
          .slice(0, 3)
          .map((e) => e.delayMs),
      ).toEqual([100, 200, 400]);
      const failure = r.of('failed')[0]?.error;
      expect(failure).toBeInstanceOf(DnsResolveError);
      expect((failure as DnsResolveError).dnsCode).toMatch(/ECONNREFUSED|ETIMEOUT|ECANCELLED/);
      expect((failure as DnsResolveError).hostname).toBe('down.svc.test');
      // The records change while the server is down; the change shows once it is back.
      await server.setHosts({ ...hosts, 'down.svc.test': ['127.0.0.42'] });
    } finally {
      await server.start();
    }
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.42:50051']));
    expect(r.changes.map((c) => `${c.type} ${c.key}`)).toEqual([
      'insert 127.0.0.41:50051',
      'insert 127.0.0.42:50051',
      'remove 127.0.0.41:50051',
    ]);
    expect(r.errored).toBeUndefined();
    await server.setHosts(hosts);
  });

  it('fails the round for a name with no records, keeping the set; keepLastOnEmpty: false trusts it', async () => {
    const kept = rec(record(dns('missing.svc.test', 50051, opts())));
    await waitFor(() => expect(kept.of('failed').length).toBeGreaterThan(0));
    const error = kept.of('failed')[0]?.error as DnsResolveError;
    expect(error).toBeInstanceOf(DnsResolveError);
    expect(error.dnsCode).toBe('ENOTFOUND');
    expect(error.message).toContain('missing.svc.test');

    const trusting = rec(record(dns('missing.svc.test', 50051, opts({ keepLastOnEmpty: false }))));
    await waitFor(() => expect(trusting.of('resolved').length).toBeGreaterThan(0));
    expect(trusting.of('resolved')[0]).toMatchObject({ count: 0 });
    expect(trusting.of('failed')).toEqual([]);
  });

  it('waits at least the record TTL between rounds when respectTtl is set', async () => {
    const ttl = rec(record(dns('ttl.svc.test', 50051, opts({ respectTtl: true }))));
    const plain = rec(record(dns('ttl.svc.test', 50051, opts())));
    await waitFor(() => {
      expect(ttl.of('resolved').length).toBeGreaterThan(0);
      expect(plain.of('resolved').length).toBeGreaterThan(0);
    });
    expect(ttl.of('resolved')[0]?.nextPollMs).toBeGreaterThanOrEqual(1000);
    expect(plain.of('resolved')[0]?.nextPollMs).toBeLessThanOrEqual(220);
  });

  it('returns an IP literal as is, without a query', () => {
    const r = rec(record(dns('::1', 50051, opts())));
    expect(r.keys()).toEqual(['[::1]:50051']);
  });

  it('stops querying when the last subscriber leaves', async () => {
    const src = dns('dual.svc.test', 50051, opts());
    const events: string[] = [];
    const eventsSub = src.events$.subscribe((e) => events.push(e.type));
    const r = record(src);
    await waitFor(() => expect(events.length).toBeGreaterThanOrEqual(2));
    r.stop();
    const count = events.length;
    await new Promise((resolve) => setTimeout(resolve, 600));
    eventsSub.unsubscribe();
    expect(events.length).toBe(count);
  });

  it('rejects an invalid host, port or server list at construction with ConfigError', () => {
    expect(() => dns('bad_host.example', 80)).toThrow(ConfigError);
    expect(() => dns('-x.example', 80)).toThrow(/host/);
    expect(() => dns('', 80)).toThrow(/host/);
    expect(() => dns('ok.example', 0)).toThrow(/port/);
    expect(() => dns('ok.example', 65536)).toThrow(/port/);
    expect(() => dns('ok.example', 80.5)).toThrow(/port/);
    expect(() => dns('ok.example', 80, { servers: ['not an ip'] })).toThrow(/servers/);
    expect(() => dns('ok.example', 80, { servers: [] })).toThrow(/servers/);
    expect(() => dns('ok.example', 80, { family: 5 as never })).toThrow(/family/);
    expect(() => dnsSrv('bad name')).toThrow(/name/);
  });

  it('takes DNS servers as ip, ip:port, [v6] or [v6]:port, and refuses what node:dns would misread', () => {
    const accepted = ['127.0.0.1', '127.0.0.1:5353', '::1', '[::1]', '[::1]:53', '[fd00::2]:65535'];
    expect(() => dns('ok.example', 80, { servers: accepted })).not.toThrow();
    // node:dns reads '[::1]x:65536' as ::1 port 65536, and (20.x) aborts the process on a port that wraps to 0
    for (const server of [
      '127.0.0.1:0',
      '[::1]:65536',
      '[::1]x:65536',
      '[127.0.0.1]:53',
      'host:53',
      '10.0.0.2:',
    ]) {
      expect(() => dns('ok.example', 80, { servers: [server] }), server).toThrow(ConfigError);
    }
    expect(() => dns('ok.example', 80, { servers: ['[::1]:65536'] })).toThrow(
      /servers with ports from 1 to 65535 \(not \[::1\]:65536\)/,
    );
    expect(() => dns('ok.example', 80, { servers: ['[::1]x:53'] })).toThrow(
      /"ip", "ip:port" or "\[v6\]:port"/,
    );
  });
});

describe('dnsSrv', () => {
  it('takes port and weight from each record and resolves each target, A and AAAA', async () => {
    const r = rec(record(dnsSrv('_grpc._tcp.svc.test', opts())));
    await waitFor(() => expect(r.of('resolved').length).toBeGreaterThan(0));
    expect(r.keys()).toEqual(['127.0.0.51:50051', '127.0.0.52:50052', '[fd00::51]:50051']);
    expect(r.set.get('127.0.0.52:50052')).toEqual({
      address: '127.0.0.52:50052',
      weight: 30,
      metadata: { target: 'b.srv.test', priority: 0 },
    });
    expect(r.set.get('[fd00::51]:50051')?.weight).toBe(10);
    // the backup at priority 5 is not used while priority 0 resolves
    expect(r.set.has('127.0.0.53:50053')).toBe(false);
  });

  it('skips malformed records and targets without addresses with an event naming each', async () => {
    const r = rec(record(dnsSrv('_grpc._tcp.svc.test', opts())));
    await waitFor(() => expect(r.of('resolved').length).toBeGreaterThan(0));
    const invalid = r.of('invalid');
    const inputs = invalid.map((e) => e.input).sort();
    expect(inputs).toEqual([
      '_grpc._tcp.svc.test SRV 0 1 0 zero.srv.test',
      '_grpc._tcp.svc.test SRV 0 1 50054 bad_name.srv.test',
      '_grpc._tcp.svc.test SRV 0 1 50055 nothing.srv.test',
    ]);
    for (const e of invalid) expect(e.error).toBeInstanceOf(InvalidRecordError);
    expect(invalid.find((e) => e.input.includes('zero'))?.error.message).toContain('port 0 is out of range');
    expect(r.of('failed')).toEqual([]);
  });

  it('falls back to the next priority when the lowest one has no address', async () => {
    const r = rec(record(dnsSrv('_grpc._tcp.backup.test', opts())));
    await waitFor(() => expect(r.of('resolved').length).toBeGreaterThan(0));
    expect(r.keys()).toEqual(['127.0.0.53:50057']);
    expect(r.set.get('127.0.0.53:50057')?.weight).toBe(4);
  });

  it('follows SRV changes (a restarted server) and fails the round for a missing name', async () => {
    const r = rec(record(dnsSrv('_grpc._tcp.svc.test', opts())));
    await waitFor(() => expect(r.set.size).toBe(3));
    await server.setSrv([{ name: '_grpc._tcp.svc.test', target: 'b.srv.test', port: 50060, weight: 2 }]);
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.52:50060']));
    expect(r.problems).toEqual([]);

    const missing = rec(record(dnsSrv('_grpc._tcp.missing.test', opts())));
    await waitFor(() => expect(missing.of('failed').length).toBeGreaterThan(0));
    const error = missing.of('failed')[0]?.error;
    expect(error).toBeInstanceOf(DnsResolveError);
    expect((error as DnsResolveError).rrtype).toBe('SRV');
  });
});

describe('dns: one address family fails while the other answers', () => {
  // dnsmasq serving a hosts file without --local refuses what the file does
  // not answer (here: AAAA of a name that has only A records), and one that
  // forwards those queries to a server that never answers lets them time out.
  let refusing: Dnsmasq;
  let silent: SilentDnsServer;
  let timingOut: Dnsmasq;
  const refusingHosts = { 'echo.test': ['127.0.0.71'], 'both.test': ['127.0.0.72', 'fd00::72'] };
  const timingOutHosts = { 'echo.test': ['127.0.0.81'], 'both.test': ['127.0.0.82', 'fd00::82'] };

  beforeAll(async () => {
    refusing = await startDnsmasq({
      hosts: refusingHosts,
      unanswered: 'refused',
      srv: [{ name: '_grpc._tcp.echo.test', target: 'echo.test', port: 50061, weight: 3 }],
    });
    silent = await startSilentDnsServer();
    timingOut = await startDnsmasq({ hosts: timingOutHosts, unanswered: { forwardTo: silent } });
  });
  afterAll(async () => {
    await refusing?.close();
    await timingOut?.close();
    await silent?.close();
  });

  const partialOf = (r: Recording<unknown>) => r.of('partial');

  it('a server that refuses AAAA: the A answer gives the endpoints at start-up, with a partial event', async () => {
    const r = rec(record(dns('echo.test', 50051, opts({ servers: [refusing.address] }))));
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.71:50051']));
    expect(r.of('failed')).toEqual([]);
    const partial = partialOf(r)[0];
    expect(partial).toMatchObject({
      source: 'dns:echo.test:50051',
      hostname: 'echo.test',
      family: 6,
      kept: 0,
    });
    expect(partial?.error).toBeInstanceOf(DnsResolveError);
    expect(partial?.error).toMatchObject({ rrtype: 'AAAA', dnsCode: 'EREFUSED', hostname: 'echo.test' });
    expect(partial?.error.message).toBe('dns:echo.test:50051: DNS AAAA query for echo.test failed: EREFUSED');
  });

  it('keeps the last AAAA set while only AAAA is refused, follows the A answers, and recovers', async () => {
    const r = rec(record(dns('both.test', 50051, opts({ servers: [refusing.address] }))));
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.72:50051', '[fd00::72]:50051']));
    expect(partialOf(r)).toEqual([]);
    try {
      // AAAA now refused; A changes meanwhile
      await refusing.setHosts({ ...refusingHosts, 'both.test': ['127.0.0.72', '127.0.0.73'] });
      await waitFor(() =>
        expect(r.keys()).toEqual(['127.0.0.72:50051', '127.0.0.73:50051', '[fd00::72]:50051']),
      );
      await waitFor(() => expect(partialOf(r).length).toBeGreaterThanOrEqual(2));
      expect(partialOf(r)[0]).toMatchObject({ family: 6, kept: 1, hostname: 'both.test' });
      expect(partialOf(r)[0]?.error.dnsCode).toBe('EREFUSED');
      expect(r.changes.filter((c) => c.type === 'remove')).toEqual([]);
      expect(r.of('failed')).toEqual([]);
      // AAAA answers again, with another address
      await refusing.setHosts({ ...refusingHosts, 'both.test': ['127.0.0.73', 'fd00::73'] });
      await waitFor(() => expect(r.keys()).toEqual(['127.0.0.73:50051', '[fd00::73]:50051']));
    } finally {
      await refusing.setHosts(refusingHosts);
    }
    expect(r.problems).toEqual([]);
  });

  it('a server whose AAAA queries time out: endpoints from A at start-up, the last AAAA set kept later', async () => {
    const timing = (extra: DnsOptions = {}) =>
      opts({
        servers: [timingOut.address],
        queryTimeoutMs: 100,
        tries: 1,
        resolveTimeoutMs: 5_000,
        ...extra,
      });
    const fresh = rec(record(dns('echo.test', 50051, timing())));
    await waitFor(() => expect(fresh.keys()).toEqual(['127.0.0.81:50051']));
    expect(partialOf(fresh)[0]).toMatchObject({ family: 6, kept: 0 });
    expect(partialOf(fresh)[0]?.error).toMatchObject({ rrtype: 'AAAA', dnsCode: 'ETIMEOUT' });
    expect(fresh.of('failed')).toEqual([]);
    expect(silent.queries).toBeGreaterThan(0);

    const r = rec(record(dns('both.test', 50051, timing())));
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.82:50051', '[fd00::82]:50051']));
    try {
      await timingOut.setHosts({ ...timingOutHosts, 'both.test': ['127.0.0.82'] });
      await waitFor(() => expect(partialOf(r).length).toBeGreaterThanOrEqual(2));
      expect(partialOf(r)[0]).toMatchObject({ family: 6, kept: 1 });
      expect(partialOf(r)[0]?.error.dnsCode).toBe('ETIMEOUT');
      expect(r.keys()).toEqual(['127.0.0.82:50051', '[fd00::82]:50051']);
      expect(r.changes.filter((c) => c.type === 'remove')).toEqual([]);
      expect(r.of('failed')).toEqual([]);
    } finally {
      await timingOut.setHosts(timingOutHosts);
    }
  });

  it('dnsSrv: a target whose AAAA is refused resolves from its A answer, with a partial event', async () => {
    const r = rec(record(dnsSrv('_grpc._tcp.echo.test', opts({ servers: [refusing.address] }))));
    await waitFor(() => expect(r.keys()).toEqual(['127.0.0.71:50061']));
    expect(r.set.get('127.0.0.71:50061')).toMatchObject({ weight: 3 });
    expect(r.of('failed')).toEqual([]);
    expect(partialOf(r)[0]).toMatchObject({
      source: 'dns-srv:_grpc._tcp.echo.test',
      hostname: 'echo.test',
      family: 6,
      kept: 0,
    });
    expect(partialOf(r)[0]?.error.dnsCode).toBe('EREFUSED');
  });
});

describe('dns: names the operating system resolves from its hosts file', () => {
  let server: ReturnType<typeof createServer>;
  let port: number;
  beforeAll(async () => {
    server = createServer((socket) => socket.end('hello'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** What the operating system gives for `localhost`, as this source writes it. */
  const systemAnswer = async (): Promise<string[]> =>
    [...new Set((await dnsPromises.lookup('localhost', { all: true })).map((a) => a.address))]
      .map((ip) => formatAddress(ip, port))
      .sort();

  const greeting = (address: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const [host, p] = [
        address.slice(0, address.lastIndexOf(':')),
        address.slice(address.lastIndexOf(':') + 1),
      ];
      const socket = tcpConnect({ host, port: Number(p) });
      let text = '';
      socket.on('data', (d) => {
        text += d.toString();
      });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });

  it("dns('localhost', port) without servers resolves as the OS does and finds the server on 127.0.0.1", async () => {
    const r = rec(record(dns('localhost', port, { intervalMs: 200 })));
    await waitFor(() => expect(r.of('resolved').length).toBeGreaterThan(0));
    expect(r.keys()).toEqual(await systemAnswer());
    expect(r.keys()).toContain(`127.0.0.1:${port}`);
    expect(await greeting(`127.0.0.1:${port}`)).toBe('hello');
    expect(r.of('failed')).toEqual([]);
  });

  it('with servers given, localhost still resolves through the OS (the DNS server has no such name)', async () => {
    const r = rec(record(dns('localhost', port, opts())));
    await waitFor(() => expect(r.of('resolved').length).toBeGreaterThan(0));
    expect(r.keys()).toEqual(await systemAnswer());
    expect(r.of('failed')).toEqual([]);
    expect(r.of('partial')).toEqual([]);
  });
});
