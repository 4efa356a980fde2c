// Closing towerDispatcher against real node:http2 servers on their own
// loopback addresses: undici's contract (close() waits for the requests in
// flight, destroy() aborts them) with a grace time after which close()
// aborts what is left with GraceExpiredError.
import { GraceExpiredError, type Layer, type Change } from '@grpc-tower/core';
import type { Http2Request, Http2Response } from '@grpc-tower/core/http2';
import { type DiscoveredAddress, staticList } from '@grpc-tower/discover';
import { activeHandles, expectNoLeaks, pickHosts } from '@grpc-tower/testing';
import { Subject } from 'rxjs';
import { request } from 'undici';
import { afterEach, describe, expect, test } from 'vitest';
import { type TowerDispatcher, type TowerDispatcherOptions, towerDispatcher } from './index.js';
import { runCloseChild } from '../test/run-close-child.js';
import { type Handler, type TestServer, answer, startServer } from './test/servers.js';

const ORIGIN = 'http://orders.test:8080';

const servers: TestServer[] = [];
const dispatchers: TowerDispatcher[] = [];
afterEach(async () => {
  await Promise.all(dispatchers.splice(0).map((d) => d.destroy()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(handler: Handler = answer, latencyMs = 0): Promise<TestServer> {
  const [host] = pickHosts(1);
  const server = await startServer({ host: host as string, name: 's1', handler, latencyMs });
  servers.push(server);
  return server;
}

function dispatcher(options: TowerDispatcherOptions): TowerDispatcher {
  const d = towerDispatcher(ORIGIN, options);
  dispatchers.push(d);
  return d;
}

/** A handler that sends `chunks` body chunks `gapMs` apart. */
const chunked =
  (chunks: number, gapMs: number): Handler =>
  (stream) => {
    stream.respond({ ':status': 200 });
    let sent = 0;
    const timer = setInterval(() => {
      if (stream.destroyed) {
        clearInterval(timer);
        return;
      }
      stream.write(`chunk${sent} `);
      if (++sent === chunks) {
        clearInterval(timer);
        stream.end();
      }
    }, gapMs);
  };

const body = async (path: string, d: TowerDispatcher): Promise<string> => {
  const res = await request(`${ORIGIN}${path}`, { dispatcher: d });
  return `${res.statusCode} ${await res.body.text()}`;
};

describe('towerDispatcher close()', () => {
  test('requests in flight, a streamed body, a request waiting for a server and a retry between attempts finish; new ones are refused', async () => {
    const before = activeHandles();
    let failFirst = true;
    const server = await serve((stream, seen, s) => {
      if (seen.path === '/stream') return chunked(4, 60)(stream, seen, s);
      if (seen.path === '/retried' && failFirst) {
        failFirst = false;
        stream.respond({ ':status': 503 });
        stream.end();
        return;
      }
      answer(stream, seen, s);
    }, 250);
    const discovery = new Subject<Change<string, DiscoveredAddress>>();
    const seen: string[] = [];
    let closeNow: (() => void) | undefined;
    // one run per attempt: closes the dispatcher when the first attempt of /retried is answered 503
    const attempts: Layer<Http2Request, Http2Response> = (inner) => ({
      call: async (req, ctx) => {
        const res = await inner.call(req, ctx);
        if (req.path === '/retried') {
          seen.push(`${res.status}`);
          closeNow?.();
          closeNow = undefined;
        }
        return res;
      },
    });
    const d = dispatcher({
      discovery,
      balancer: { failFastMs: 20_000 },
      retry: { initialBackoffMs: 300, maxBackoffMs: 300 },
      layers: { inner: [attempts] },
    });
    // waiting for a server: discovery has given none yet
    const waiting = body('/waiting', d);
    await expect.poll(() => d.stats().balancer.waiting).toBe(1);
    discovery.next({ type: 'insert', key: server.address, endpoint: { address: server.address } });
    const inFlight = body('/slow', d);
    const streamed = body('/stream', d);
    closeNow = () => {
      void d.close();
      seen.push('closed');
    };
    const retried = body('/retried', d);
    await expect.poll(() => seen).toEqual(['503', 'closed']);
    expect(d.closed).toBe(true);
    await expect(body('/refused', d)).rejects.toMatchObject({ code: 'UND_ERR_CLOSED' });
    expect(await inFlight).toMatch(/^200 .*"path":"\/slow"/);
    expect(await streamed).toBe('200 chunk0 chunk1 chunk2 chunk3 ');
    expect(await retried).toMatch(/^200 .*"path":"\/retried"/);
    expect(await waiting).toMatch(/^200 .*"path":"\/waiting"/);
    expect(seen).toEqual(['503', 'closed', '200']);
    await d.close();
    expect(d.readiness).toBe('closed');
    await server.close();
    await expectNoLeaks(before, { settleMs: 3_000 });
  });

  test('after the grace time, what is left is aborted with GraceExpiredError; close({ graceMs }) overrides the option', async () => {
    const before = activeHandles();
    const server = await serve((stream, seen, s) => {
      if (seen.path === '/stream') return chunked(100, 50)(stream, seen, s);
      answer(stream, seen, s);
    });
    server.latencyMs = 10_000;
    const target = dispatcher({ discovery: staticList([server.address]), closeGraceMs: 60_000 });
    const slow = request(`${ORIGIN}/slow`, { dispatcher: target }).catch((e: unknown) => e);
    const res = await request(`${ORIGIN}/stream`, { dispatcher: target });
    const text = res.body.text().catch((e: unknown) => e);
    await expect.poll(() => target.stats().inFlight).toBe(2);
    await target.close({ graceMs: 200 });
    const err = await slow;
    expect(err).toBeInstanceOf(GraceExpiredError);
    expect((err as Error).message).toBe(
      `towerDispatcher for ${ORIGIN} closed: the 200 ms grace time ran out`,
    );
    expect(await text).toBeInstanceOf(GraceExpiredError);
    expect(target.stats().inFlight).toBe(0);
    expect(target.readiness).toBe('closed');
    await server.close();
    await expectNoLeaks(before, { settleMs: 3_000 });
  });
});

describe('a process that closes its dispatcher', () => {
  test('exits by itself once its slow request has ended, the request OK', async () => {
    const server = await serve(answer, 600);
    const { exit, events, stderr } = await runCloseChild('undici', server.address, 600);
    expect(exit, stderr).toEqual({ code: 0, signal: null });
    expect(events.map((e) => e.event)).toEqual(['closed', 'call', 'exit']);
    expect(events[0]).toMatchObject({ activeCalls: 1 });
    expect(events[1]).toMatchObject({ ok: true, message: '/slow' });
    expect(server.seen.map((s) => s.path)).toEqual(['/slow']);
  });
});
