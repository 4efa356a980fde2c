// towerTransport (grpc-tower/connect) with Connect-ES generated code against
// real servers on 127.0.0.x: connect-node's HTTP/2 server and grpc-js
// servers (in process, and in child processes that are SIGKILLed), with
// Connect-ES's own createGrpcTransport against the same servers for
// comparison.
import { Code, ConnectError, type Interceptor, type Transport, createClient } from '@connectrpc/connect';
import { compressionGzip, createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { create } from '@bufbuild/protobuf';
import { ConfigError } from '@grpc-tower/core';
import { pickHosts, selfSigned, spawnEchoServer, startEchoServer } from '@grpc-tower/testing';
import { Echo, type EchoReply, EchoReplySchema, EchoRequestSchema } from '@grpc-tower/testing/echo-es';
import { describe, expect, test } from 'vitest';
import { trackCleanups } from '../../../balance/src/test/grpc-calls.js';
import { type TowerTransportOptions, towerTransport } from './index.js';
import {
  type ConnectEchoServer,
  spawnConnectEchoServer,
  startConnectEchoServer,
} from './test/connect-echo.js';

const cleanups = trackCleanups();

/** A towerTransport over `addresses` (plaintext), closed after the test. */
function tower(addresses: readonly string[], options: Partial<TowerTransportOptions> = {}) {
  const transport = towerTransport(`ipv4:${addresses.join(',')}`, {
    tls: false,
    ...(options.protocol === 'connect'
      ? {}
      : {
          channelOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 },
        }),
    ...options,
  });
  cleanups.push(() => transport.close({ graceMs: 0 }));
  return transport;
}

type Protocol = 'grpc' | 'connect';

/** Connect-ES's own transport of `protocol` to one address. */
function own(
  address: string,
  options: { interceptors?: Interceptor[]; protocol?: Protocol } = {},
): Transport {
  const { protocol = 'grpc', ...rest } = options;
  const create = protocol === 'grpc' ? createGrpcTransport : createConnectTransport;
  return create({ baseUrl: `http://${address}`, httpVersion: '2', ...rest });
}

async function connectServers(count: number, latencyMs = 0): Promise<ConnectEchoServer[]> {
  const servers = await Promise.all(
    pickHosts(count).map((host, i) => startConnectEchoServer({ host, name: `connect-${i}`, latencyMs })),
  );
  cleanups.push(() => Promise.all(servers.map((s) => s.close())));
  return servers;
}

async function* requests(texts: readonly string[], extra: { delayMs?: number } = {}) {
  for (const message of texts) yield create(EchoRequestSchema, { message, ...extra });
}

/** Copies the entries of `from` into `to`. */
function copy(from: Headers, to: Headers): void {
  from.forEach((value, key) => {
    to.set(key, value);
  });
}

/** What a call ended with, comparable across transports. */
async function outcome(call: () => Promise<unknown>) {
  try {
    await call();
    return { code: undefined };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: Code[e.code], rawMessage: e.rawMessage };
  }
}

/** Calls `count` unary echoes, `concurrency` at a time; counts replies per server and failures. */
async function load(transport: Transport, count: number, concurrency: number, onDone?: (n: number) => void) {
  const client = createClient(Echo, transport);
  const byServer = new Map<string, number>();
  const failures: string[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      try {
        const reply = await client.unary({ message: 'load' }, { timeoutMs: 10_000 });
        byServer.set(reply.server, (byServer.get(reply.server) ?? 0) + 1);
      } catch (err) {
        failures.push(ConnectError.from(err).message);
      }
      onDone?.(++done);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { byServer, failures };
}

/**
 * 600 calls through `viaTower` (12 at a time) and 300 through `viaOwn` (6 at
 * a time) while `victim` is SIGKILLed after the 150th; what each lost is
 * printed and returned.
 */
async function killUnderLoad(
  viaTower: Transport,
  viaOwn: Transport,
  victim: { kill(): Promise<unknown> },
  label: string,
) {
  // warm both up, so that the kill meets connections in use
  await load(viaTower, 30, 6);
  await load(viaOwn, 6, 6);
  let killed: Promise<unknown> | undefined;
  const kill = (n: number) => {
    if (n === 150 && killed === undefined) killed = victim.kill();
  };
  const [towerResult, ownResult] = await Promise.all([load(viaTower, 600, 12, kill), load(viaOwn, 300, 6)]);
  await killed;
  console.log(
    `${label}, SIGKILL under load: towerTransport lost ${towerResult.failures.length} of 600 calls ` +
      `(${JSON.stringify(Object.fromEntries(towerResult.byServer))}); ` +
      `Connect-ES's own transport to the killed server lost ${ownResult.failures.length} of 300`,
  );
  expect(killed).toBeDefined();
  return { tower: towerResult.failures, own: ownResult.failures };
}

/** The calls of 600 (2 at a time, after 60 to warm up) that went to the server named `slow`. */
/**
 * The calls of 600 that reach `slow`: the median of three rounds of 600, so
 * that one burst of CPU contention on a shared test machine (which makes the
 * fast servers answer late for a moment, and PeakEWMA rightly turn to the
 * slow one) does not decide the result alone. Every round is printed, and
 * no call of any round may fail.
 */
async function slowShare(transport: Transport, slow: string, label: string): Promise<number> {
  // warm-up: PeakEWMA learns each server's latency from its first answers
  await load(transport, 60, 2);
  const counts: number[] = [];
  for (let round = 0; round < 3; round++) {
    const { byServer, failures } = await load(transport, 600, 2);
    console.log(`${label}, ${slow} 50 ms slower, round ${round + 1}:`, Object.fromEntries(byServer));
    expect(failures).toEqual([]);
    counts.push(byServer.get(slow) ?? 0);
  }
  return [...counts].sort((a, b) => a - b)[1] as number;
}

describe.each(['grpc', 'connect'] as const)(
  'towerTransport, protocol %s: Connect-ES semantics',
  (protocol) => {
    test('every streaming shape through the stack, against connect-node (and grpc-js for gRPC) servers', async () => {
      const [connectServer] = await connectServers(1);
      const servers: { address: string; name: string }[] = [connectServer as ConnectEchoServer];
      if (protocol === 'grpc') {
        const [host] = pickHosts(1);
        const grpcServer = await startEchoServer({ host: host as string, name: 'grpc-js' });
        cleanups.push(() => grpcServer.stop(0));
        servers.push(grpcServer);
      }
      for (const server of servers) {
        for (const transport of [tower([server.address], { protocol }), own(server.address, { protocol })]) {
          const client = createClient(Echo, transport);
          const unary = await client.unary({ message: 'one', payload: new Uint8Array([1, 2, 3]) });
          expect(unary.message).toBe('one');
          expect([...unary.payload]).toEqual([1, 2, 3]);
          expect(unary.server).toBe(server.name);
          const streamed: EchoReply[] = [];
          for await (const r of client.serverStream({ message: 's', count: 5 })) streamed.push(r);
          expect(streamed.map((r) => r.index)).toEqual([0, 1, 2, 3, 4]);
          const joined = await client.clientStream(requests(['a', 'b', 'c']));
          expect([joined.message, joined.received]).toEqual(['a,b,c', 3]);
          const echoed: string[] = [];
          for await (const r of client.bidi(requests(['x', 'y', 'z']))) echoed.push(r.message);
          expect(echoed).toEqual(['x', 'y', 'z']);
        }
      }
    });

    test("deadlines, cancellation, metadata, trailers and error details match Connect-ES's own transport", async () => {
      const [server] = (await connectServers(1)) as [ConnectEchoServer];
      const results = [];
      for (const transport of [tower([server.address], { protocol }), own(server.address, { protocol })]) {
        const client = createClient(Echo, transport);
        const deadline = await outcome(() =>
          client.unary({ message: 'slow', delayMs: 2_000 }, { timeoutMs: 50 }),
        );
        const streamDeadline = await outcome(async () => {
          for await (const _ of client.serverStream(
            { message: 's', count: 50, delayMs: 20 },
            { timeoutMs: 100 },
          )) {
          }
        });
        const abort = new AbortController();
        setTimeout(() => abort.abort(), 30);
        const cancelled = await outcome(() =>
          client.unary({ message: 'slow', delayMs: 2_000 }, { signal: abort.signal }),
        );
        const header = new Headers();
        const trailer = new Headers();
        const bin = Buffer.from([0, 1, 2, 254, 255]).toString('base64');
        await client.unary(
          { message: 'meta', echoMetadata: true },
          {
            headers: { 'x-plain': 'hello', 'x-bytes-bin': bin },
            onHeader: (h) => copy(h, header),
            onTrailer: (t) => copy(t, trailer),
          },
        );
        const streamTrailer = new Headers();
        for await (const _ of client.serverStream(
          { message: 's', count: 2, echoMetadata: true },
          { headers: { 'x-plain': 'stream' }, onTrailer: (t) => copy(t, streamTrailer) },
        )) {
        }
        let failed: ConnectError | undefined;
        try {
          await client.unary(
            { message: 'no', failCode: Code.NotFound, failDetails: 'no such order', echoMetadata: true },
            {
              headers: { 'x-order': '7' },
            },
          );
        } catch (err) {
          failed = ConnectError.from(err);
        }
        const details = failed?.findDetails(EchoReplySchema) ?? [];
        const bidiFailure = await outcome(async () => {
          const failing = (async function* () {
            yield create(EchoRequestSchema, { message: 'ok' });
            yield create(EchoRequestSchema, {
              message: 'bad',
              failCode: Code.PermissionDenied,
              failDetails: 'denied',
            });
          })();
          for await (const _ of client.bidi(failing)) {
          }
        });
        results.push({
          deadline,
          streamDeadline: streamDeadline.code,
          cancelled: cancelled.code,
          header: { plain: header.get('x-plain'), bytes: header.get('x-bytes-bin') },
          trailer: {
            plain: trailer.get('x-plain-trailer'),
            bytes: Buffer.from(trailer.get('x-bytes-trailer-bin') ?? '', 'base64').toString('hex'),
            status: protocol === 'grpc' ? trailer.get('grpc-status') : null,
          },
          streamTrailer: streamTrailer.get('x-plain-trailer'),
          error: {
            code: failed === undefined ? undefined : Code[failed.code],
            rawMessage: failed?.rawMessage,
            order: failed?.metadata.get('x-order-trailer'),
            details: details.map((d) => [d.message, d.server]),
          },
          bidiFailure,
        });
      }
      const [viaTower, viaOwn] = results as [(typeof results)[0], (typeof results)[0]];
      console.log(`towerTransport (${protocol}):`, JSON.stringify(viaTower));
      console.log(`Connect-ES's own (${protocol}):`, JSON.stringify(viaOwn));
      // the deadline's message is each transport's own wording; its code is the contract
      expect(viaTower.deadline.code).toBe('DeadlineExceeded');
      expect(viaOwn.deadline.code).toBe('DeadlineExceeded');
      expect({ ...viaTower, deadline: undefined }).toEqual({ ...viaOwn, deadline: undefined });
      expect(viaTower.error).toEqual({
        code: 'NotFound',
        rawMessage: 'no such order',
        order: '7',
        details: [['no such order', 'connect-0']],
      });
      expect(viaTower.trailer.bytes).toBe('000102feff');
      expect(viaTower.streamDeadline).toBe('DeadlineExceeded');
      expect(viaTower.cancelled).toBe('Canceled');
    });

    test('interceptors run as Connect-ES runs them: headers they add reach the server, responses pass back through them', async () => {
      const [server] = (await connectServers(1)) as [ConnectEchoServer];
      const seen: string[][] = [];
      for (const make of [
        (interceptors: Interceptor[]) => tower([server.address], { interceptors, protocol }),
        (interceptors: Interceptor[]) => own(server.address, { interceptors, protocol }),
      ]) {
        const log: string[] = [];
        const outer: Interceptor = (next) => async (req) => {
          log.push(`outer ${req.method.name} ${req.stream} ${new URL(req.url).pathname}`);
          req.header.set('x-added', 'by-interceptor');
          const res = await next(req);
          log.push(`outer got ${res.header.get('x-added')}`);
          return res;
        };
        const inner: Interceptor = (next) => async (req) => {
          log.push(`inner ${req.header.get('x-added')}`);
          const res = await next(req);
          if (res.stream) {
            return {
              ...res,
              message: (async function* () {
                for await (const m of res.message) {
                  log.push('inner message');
                  yield m;
                }
              })(),
            };
          }
          log.push(`inner message ${(res.message as EchoReply).message}`);
          return res;
        };
        const client = createClient(Echo, make([outer, inner]));
        await client.unary({ message: 'u', echoMetadata: true });
        for await (const _ of client.serverStream({ message: 's', count: 2, echoMetadata: true })) {
        }
        seen.push(log);
      }
      expect(seen[0]).toEqual(seen[1]);
      expect(seen[0]).toContain('outer got by-interceptor');
    });

    test('close() lets a call in flight finish, then refuses new calls UNAVAILABLE', async () => {
      const [server] = (await connectServers(1)) as [ConnectEchoServer];
      const transport = tower([server.address], { protocol });
      const client = createClient(Echo, transport);
      await client.unary({ message: 'warm' });
      const inFlight = client.unary({ message: 'late', delayMs: 200 });
      const closed = transport.close({ graceMs: 5_000 });
      const refused = await outcome(() => client.unary({ message: 'after close' }));
      expect((await inFlight).message).toBe('late');
      await closed;
      expect(refused.code).toBe('Unavailable');
      console.log(`after close (${protocol}):`, refused.rawMessage);
    });

    test("the telemetry option instruments the stack with the protocol's method", async () => {
      const [server] = (await connectServers(1)) as [ConnectEchoServer];
      const seen: string[] = [];
      const instrumentation = (method: string) => (target: string) => {
        seen.push(`${method} ${target}`);
        return {
          calls: (inner: { call(req: unknown, ctx: unknown): unknown }) => ({
            call: (req: unknown, ctx: unknown) => {
              seen.push('call');
              return inner.call(req, ctx);
            },
          }),
          attempts: (inner: unknown) => inner,
          endpoint: (ep: { address: string }) => {
            seen.push(`endpoint ${ep.address}`);
            return ep;
          },
          observe: () => {},
          close: () => seen.push('closed'),
        };
      };
      const telemetry = {
        instrument: instrumentation('instrument'),
        instrumentHttp: instrumentation('instrumentHttp'),
      };
      const transport = tower([server.address], { protocol, telemetry: telemetry as never });
      const client = createClient(Echo, transport);
      for (let i = 0; i < 3; i++) await client.unary({ message: `t${i}` });
      await transport.close();
      const method = protocol === 'grpc' ? 'instrument' : 'instrumentHttp';
      expect(seen).toEqual([
        `${method} ipv4:${server.address}`,
        `endpoint ${server.address}`,
        'call',
        'call',
        'call',
        'closed',
      ]);
    });

    test('retries as the gRPC channel does: UNAVAILABLE before the response began is re-sent, a committed stream is not', async () => {
      const [failing, healthy] = (await connectServers(2)) as [ConnectEchoServer, ConnectEchoServer];
      failing.failNext(1_000, Code.Unavailable);
      const transport = tower([failing.address, healthy.address], { protocol, outlierDetection: false });
      const client = createClient(Echo, transport);
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) => client.unary({ message: `r${i}` })),
      );
      expect(new Set(replies.map((r) => r.server))).toEqual(new Set(['connect-1']));
      // the failing server was picked and refused some of them: each was re-sent to the other
      expect(failing.calls()).toBeGreaterThan(0);
      // a stream that failed after its first messages had committed: the caller gets the failure, once
      failing.failNext(0, Code.Unavailable);
      const before = failing.calls() + healthy.calls();
      const got: number[] = [];
      const streamed = await outcome(async () => {
        for await (const r of client.serverStream({
          message: 's',
          count: 2,
          headersThenFail: Code.Unavailable,
        })) {
          got.push(r.index);
        }
      });
      expect(streamed.code).toBe('Unavailable');
      expect(got).toEqual([0, 1]);
      expect(failing.calls() + healthy.calls() - before).toBe(1);
    });

    test('three servers behind one name share the calls evenly', async () => {
      const servers = await connectServers(3);
      const { byServer, failures } = await load(
        tower(
          servers.map((s) => s.address),
          { protocol },
        ),
        600,
        12,
      );
      console.log('share of 600 calls:', Object.fromEntries(byServer));
      expect(failures).toEqual([]);
      expect([...byServer.keys()].sort()).toEqual(['connect-0', 'connect-1', 'connect-2']);
      for (const n of byServer.values()) {
        expect(n).toBeGreaterThan(120);
        expect(n).toBeLessThan(280);
      }
    });

    if (protocol === 'connect') {
      test('the JSON codec and gzip compression, as createConnectTransport sends them', async () => {
        const [server] = (await connectServers(1)) as [ConnectEchoServer];
        const options = {
          useBinaryFormat: false,
          acceptCompression: [compressionGzip],
          sendCompression: compressionGzip,
          compressMinBytes: 0,
        };
        const results = [];
        for (const make of [
          (interceptors: Interceptor[]) => tower([server.address], { protocol, ...options, interceptors }),
          (interceptors: Interceptor[]) =>
            createConnectTransport({
              baseUrl: `http://${server.address}`,
              httpVersion: '2',
              ...options,
              interceptors,
            }),
        ]) {
          // the server answers in the codec it was sent and compresses as the request accepts:
          // the response headers show what reached it
          const seen: string[] = [];
          const spy: Interceptor = (next) => async (req) => {
            const res = await next(req);
            const encoding = res.header.get('content-encoding') ?? res.header.get('connect-content-encoding');
            seen.push(`${req.method.name}: ${res.header.get('content-type')} ${encoding}`);
            return res;
          };
          const client = createClient(Echo, make([spy]));
          const reply = await client.unary({ message: 'x'.repeat(2_000) });
          const streamed: string[] = [];
          for await (const r of client.serverStream({ message: 'j', count: 2 }))
            streamed.push(`${r.message}${r.index}`);
          results.push({ reply: reply.message.length, streamed, seen });
        }
        console.log('JSON and gzip:', JSON.stringify(results[0]));
        expect(results[0]).toEqual(results[1]);
        expect(results[0]?.seen).toEqual([
          'Unary: application/json gzip',
          'ServerStream: application/connect+json gzip',
        ]);
      });
    }
  },
);

describe('towerTransport, protocol connect: failures', () => {
  test('a server 50 ms slower than two at 1 ms gets under 5 % of the calls', async () => {
    const children = await Promise.all(
      pickHosts(3).map((host, i) =>
        spawnConnectEchoServer({ host, name: `child-${i}`, latencyMs: i === 2 ? 51 : 1 }),
      ),
    );
    cleanups.push(() => Promise.all(children.map((c) => c.kill())));
    const slow = await slowShare(
      tower(
        children.map((c) => c.address),
        { protocol: 'connect' },
      ),
      'child-2',
      'connect protocol',
    );
    expect(slow).toBeLessThan(600 * 0.05);
  });

  test('one of three connect-node servers SIGKILLed under load costs towerTransport no call; createConnectTransport to it loses calls', async () => {
    const children = await Promise.all(
      pickHosts(3).map((host, i) => spawnConnectEchoServer({ host, name: `child-${i}`, latencyMs: 5 })),
    );
    cleanups.push(() => Promise.all(children.map((c) => c.kill())));
    const victim = children[0] as (typeof children)[0];
    const viaTower = tower(
      children.map((c) => c.address),
      { protocol: 'connect' },
    );
    const lost = await killUnderLoad(
      viaTower,
      own(victim.address, { protocol: 'connect' }),
      victim,
      'connect protocol',
    );
    expect(lost.tower).toEqual([]);
    expect(lost.own.length).toBeGreaterThan(0);
  });
});

describe('towerTransport: balancing and failures', () => {
  test('a server 50 ms slower than two at 1 ms gets under 5 % of the calls', async () => {
    // servers in child processes: in this one, their work would slow the client's own calls
    const children = await Promise.all(
      pickHosts(3).map((host, i) =>
        spawnEchoServer({ host, name: `child-${i}`, latencyMs: i === 2 ? 51 : 1 }),
      ),
    );
    cleanups.push(() => Promise.all(children.map((c) => c.kill())));
    const slow = await slowShare(tower(children.map((c) => c.address)), 'child-2', 'gRPC protocol');
    expect(slow).toBeLessThan(600 * 0.05);
  });

  test('one of three grpc-js servers SIGKILLed under load costs towerTransport no call; createGrpcTransport to it loses calls', async () => {
    const hosts = pickHosts(3);
    const children = await Promise.all(
      hosts.map((host, i) => spawnEchoServer({ host, name: `child-${i}`, latencyMs: 5 })),
    );
    cleanups.push(() => Promise.all(children.map((c) => c.kill())));
    const victim = children[0] as (typeof children)[0];
    const viaTower = tower(children.map((c) => c.address));
    const lost = await killUnderLoad(viaTower, own(victim.address), victim, 'gRPC protocol');
    expect(lost.tower).toEqual([]);
    expect(lost.own.length).toBeGreaterThan(0);
  });

  test.each(['grpc', 'connect'] as const)(
    'TLS as connect-node users configure it (%s): the CA and the server name',
    async (protocol) => {
      const { key, cert } = selfSigned('echo.test');
      const [host] = pickHosts(1);
      const server = await startConnectEchoServer({ host: host as string, name: 'tls', tls: { key, cert } });
      cleanups.push(() => server.close());
      const secure = tower([server.address], { protocol, tls: { ca: cert, servername: 'echo.test' } });
      const reply = await createClient(Echo, secure).unary({ message: 'over tls' });
      expect(reply.server).toBe('tls');
      // without the CA the certificate is not trusted: the call fails UNAVAILABLE, saying why
      const untrusted = tower([server.address], {
        protocol,
        tls: { servername: 'echo.test' },
        retry: false,
        balancer: { failFastMs: 2_000 },
      });
      const failed = await outcome(() =>
        createClient(Echo, untrusted).unary({ message: 'x' }, { timeoutMs: 5_000 }),
      );
      console.log(`untrusted certificate (${protocol}):`, failed.rawMessage);
      expect(failed.code).toBe('Unavailable');
      expect(failed.rawMessage).toMatch(/certificate/i);
    },
  );

  test('bad options are refused by name', () => {
    expect(() => towerTransport('ipv4:127.0.0.1:1', {} as TowerTransportOptions)).toThrow(/tls/);
    expect(() => towerTransport('ipv4:127.0.0.1:1', { tls: false, protocol: 'grpc-web' as 'grpc' })).toThrow(
      ConfigError,
    );
    expect(() => towerTransport('ipv4:127.0.0.1:1', { tls: { rejectUnauthorized: false } as never })).toThrow(
      /rejectUnauthorized/,
    );
    expect(() => towerTransport('ipv4:127.0.0.1:1', { tls: false, interceptors: [1 as never] })).toThrow(
      /interceptors/,
    );
    expect(() => towerTransport('nope:///x', { tls: false })).toThrow(/target/);
  });
});
