// Server faults under load, through the full stack (discovery → health →
// outlier detection → p2c → retry with a budget → timeout → channel), with
// every call written in a ledger that checks it ended exactly once, with a
// status, within its deadline plus a slack, and that every OK is a real
// answer from a known server. Servers run in child processes so that they
// can be crashed (SIGKILL), frozen (SIGSTOP) and stopped gracefully (GOAWAY)
// like real ones. Each over both transports: what a caller sees of a
// server's fault is meant to be the same whichever carries its calls.
import { type Server, type Socket, createServer } from 'node:net';
import { Status } from '@grpc-tower/core';
import { staticList } from '@grpc-tower/discover';
import { type TestTransport, TRANSPORTS, insecure, pickHosts } from '@grpc-tower/testing';
import { afterEach, describe, expect, test } from 'vitest';
import { Ledger } from './ledger.js';
import { Fleet, Registry } from './support/fleet.js';
import { startLoad } from './support/load.js';
import { type FullStack, fullStack } from './support/stack.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** Plaintext endpoints over `transport`. */
const over = (transport: TestTransport) => ({ credentials: insecure, transport });

async function setup(
  transport: TestTransport,
  count: number,
  options: Omit<Parameters<typeof fullStack>[0], 'source' | 'ledger'> = {},
): Promise<{ fleet: Fleet; registry: Registry; ledger: Ledger; stack: FullStack }> {
  const fleet = await Fleet.start(count);
  cleanup.push(() => fleet.close());
  const registry = new Registry(fleet.addresses());
  const ledger = new Ledger();
  const stack = fullStack({ source: registry.source(100), ledger, endpoint: over(transport), ...options });
  cleanup.push(() => stack.close());
  await expect.poll(() => stack.balancer.counts().ready, { timeout: 15_000 }).toBe(count);
  return { fleet, registry, ledger, stack };
}

/** Answers `name` gave so far. */
const answers = (ledger: Ledger, name: string): number => ledger.report().byServer[name] ?? 0;

describe.each(TRANSPORTS)('over the %s transport', (transport) => {
  describe('a crashed server (SIGKILL)', () => {
    test('mid-stream: every unary call succeeds, only streams open on the dead server fail, and it returns after a restart', async () => {
      const { fleet, ledger, stack } = await setup(transport, 3, { outlier: { baseEjectionTimeMs: 1_000 } });
      const load = startLoad(ledger, stack.client, {
        concurrency: 12,
        streamEvery: 4,
        streamCount: 10,
        streamDelayMs: 10,
      });
      await load.more(300);
      // long streams spread over the three servers; s0 dies once some of them are under way there
      const onS0 = new Set<string>();
      const long = Array.from({ length: 24 }, (_, i) =>
        ledger.serverStream(stack.client, `long${i}`, 50, {
          request: { delayMs: 20 },
          label: 'LongStream',
          onReply: (r) => r.server === 's0' && onS0.add(r.message),
        }),
      );
      await expect.poll(() => onS0.size, { timeout: 5_000 }).toBeGreaterThan(0);
      await fleet.kill('s0');
      await load.more(400);
      const before = answers(ledger, 's0');
      await fleet.restart('s0');
      await expect.poll(() => answers(ledger, 's0'), { timeout: 20_000 }).toBeGreaterThan(before);
      await load.stop();

      const longOutcomes = await Promise.all(long);
      const report = await ledger.check({ allowed: ['OK', 'UNAVAILABLE'], servers: fleet.names() });
      expect(Object.keys(report.byLabel.Unary ?? {})).toEqual(['OK']);
      const cut = longOutcomes.filter((o) => o.code !== Status.OK);
      expect(cut.length).toBeGreaterThan(0);
      for (const o of cut) {
        expect(o.code).toBe(Status.UNAVAILABLE);
        // a stream cut before its first reply has no server name yet
        expect(['s0', undefined]).toContain(o.server);
        expect(o.replies).toBeLessThan(50);
      }
    });
  });

  describe('a frozen server (SIGSTOP, then SIGCONT)', () => {
    test('calls stuck on it move to other servers after the per-attempt timeout: no call fails', async () => {
      const { fleet, ledger, stack } = await setup(transport, 3, { retry: { perAttemptTimeoutMs: 400 } });
      const load = startLoad(ledger, stack.client, { concurrency: 12, deadlineMs: 5_000 });
      await load.more(300);
      fleet.server('s1').pause();
      const frozenAt = load.finished;
      await load.more(800);
      // On a fast machine 800 calls through the other two servers can finish
      // before the 400 ms per-attempt timeout has fired once: keep s1 frozen
      // (and the load running) until the stuck attempts have timed out and
      // been retried, so that the stall is really exercised.
      await expect.poll(() => stack.retries.stats().retries, { timeout: 10_000 }).toBeGreaterThan(0);
      fleet.server('s1').resume();
      const before = answers(ledger, 's1');
      await load.more(300);
      await load.stop();
      const report = await ledger.check({ allowed: ['OK'], servers: fleet.names() });
      expect(report.total).toBeGreaterThan(frozenAt + 800);
      // the stall was real: attempts timed out and were retried
      expect(stack.retries.stats().retries).toBeGreaterThan(0);
      expect(answers(ledger, 's1')).toBeGreaterThanOrEqual(before);
    });
  });

  describe('a graceful shutdown (GOAWAY) under load', () => {
    test('calls in flight finish, new calls go elsewhere: no call fails, and the server returns', async () => {
      const { fleet, ledger, stack } = await setup(transport, 3);
      const load = startLoad(ledger, stack.client, {
        concurrency: 12,
        streamEvery: 3,
        streamCount: 10,
        streamDelayMs: 20,
      });
      await load.more(300);
      // discovery still lists s2: the shutdown is all the client learns of
      await fleet.stop('s2', 5_000);
      await load.more(400);
      const before = answers(ledger, 's2');
      await fleet.restart('s2');
      await expect.poll(() => answers(ledger, 's2'), { timeout: 20_000 }).toBeGreaterThan(before);
      await load.stop();
      await ledger.check({ allowed: ['OK'], servers: fleet.names() });
    });
  });

  describe('every server down, then back', () => {
    test('calls fail fast with UNAVAILABLE while nothing serves, none hangs, and traffic resumes on all servers', async () => {
      const { fleet, ledger, stack } = await setup(transport, 3, {
        balancer: { failFastMs: 300 },
        outlier: { baseEjectionTimeMs: 500 },
        retry: { maxAttempts: 2 },
      });
      const load = startLoad(ledger, stack.client, { concurrency: 8, deadlineMs: 3_000 });
      await load.more(200);
      await Promise.all([...fleet.names()].map((n) => fleet.kill(n)));
      const downAt = ledger.total;
      await load.more(40);
      const down = ledger.report();
      expect(down.byStatus.UNAVAILABLE ?? 0).toBeGreaterThan(0);
      const okBefore = down.byStatus.OK ?? 0;
      await Promise.all([...fleet.names()].map((n) => fleet.restart(n)));
      const back = Object.fromEntries([...fleet.names()].map((n) => [n, answers(ledger, n)]));
      await expect
        .poll(() => [...fleet.names()].every((n) => answers(ledger, n) > (back[n] ?? 0)), { timeout: 20_000 })
        .toBe(true);
      await load.stop();
      const report = await ledger.check({
        allowed: ['OK', 'UNAVAILABLE', 'DEADLINE_EXCEEDED'],
        servers: fleet.names(),
      });
      expect(report.total).toBeGreaterThan(downAt);
      expect(report.byStatus.OK ?? 0).toBeGreaterThan(okBefore);
    });
  });

  describe('an endpoint that accepts TCP but never speaks HTTP/2', () => {
    const silentServer = async (host: string): Promise<{ address: string; close(): Promise<void> }> => {
      const sockets = new Set<Socket>();
      const server: Server = createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => server.listen(0, host, resolve));
      const port = (server.address() as { port: number }).port;
      return {
        address: `${host}:${port}`,
        close: () =>
          new Promise<void>((resolve) => {
            for (const s of sockets) s.destroy();
            server.close(() => resolve());
          }),
      };
    };

    test('beside real servers: it is never picked and no call fails', async () => {
      const fleet = await Fleet.start(2);
      cleanup.push(() => fleet.close());
      const [host] = pickHosts(1);
      const silent = await silentServer(host!);
      cleanup.push(() => silent.close());
      const ledger = new Ledger();
      const stack = fullStack({
        source: staticList([...fleet.addresses(), silent.address]),
        ledger,
        endpoint: over(transport),
      });
      cleanup.push(() => stack.close());
      await expect.poll(() => stack.balancer.counts().ready, { timeout: 15_000 }).toBe(2);
      const load = startLoad(ledger, stack.client, { concurrency: 8, deadlineMs: 2_000, maxCalls: 600 });
      await load.more(600);
      await load.stop();
      await ledger.check({ allowed: ['OK'], servers: fleet.names() });
      const stats = stack.balancer.stats().endpoints.find((e) => e.address === silent.address);
      expect(stats?.state).not.toBe('ready');
      expect(stats?.picks).toBe(0);
    });

    test('alone: every call fails fast with UNAVAILABLE naming the target, none waits for its deadline', async () => {
      const [host] = pickHosts(1);
      const silent = await silentServer(host!);
      cleanup.push(() => silent.close());
      const ledger = new Ledger({ slackMs: 0 });
      const stack = fullStack({
        source: staticList([silent.address]),
        ledger,
        endpoint: over(transport),
        balancer: { failFastMs: 200 },
        retry: { maxAttempts: 2, initialBackoffMs: 10, maxBackoffMs: 10 },
      });
      cleanup.push(() => stack.close());
      const outcomes = await Promise.all(
        Array.from({ length: 20 }, (_, i) => ledger.unary(stack.client, `m${i}`, { deadlineMs: 10_000 })),
      );
      const report = await ledger.check({ allowed: ['UNAVAILABLE'] });
      expect(report.byStatus).toEqual({ UNAVAILABLE: 20 });
      // the balancer's fail-fast ended them (UNAVAILABLE), not their 10 s deadline (DEADLINE_EXCEEDED)
      for (const o of outcomes)
        expect(o.details).toContain('no ready endpoint for target "echo.reliability"');
    });
  });
});
