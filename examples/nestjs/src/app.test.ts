// The example as a real NestJS application: two real grpc-js servers, the
// Nest app listening for HTTP, its controller calling them through
// ClientsModule's client over a grpc-tower channel, and app.close() (what a
// SIGTERM runs with enableShutdownHooks) while calls are in flight.
import 'reflect-metadata';
import { activeHandles, expectNoLeaks, pickHosts } from '@grpc-tower/testing';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { AppModule } from './app.module';
import type { SayReply } from './echo';
import { EchoController } from './echo.controller';
import { type RunningServer, startServer } from './server';

const [hostA = '', hostB = '', httpHost = ''] = pickHosts(3);
let servers: RunningServer[] = [];
let app: INestApplication | undefined;

beforeAll(async () => {
  servers = [await startServer('a', hostA), await startServer('b', hostB)];
});

afterEach(async () => {
  await app?.close();
  app = undefined;
});

afterAll(() => {
  for (const s of servers) s.stop();
});

/** The Nest application for both servers, listening on `httpHost`; its base URL. */
async function startApp(): Promise<string> {
  const target = `ipv4:${servers.map((s) => s.address).join(',')}`;
  app = await NestFactory.create(AppModule.forTarget(target), { logger: false });
  await app.listen(0, httpHost);
  return app.getUrl();
}

async function get(url: string): Promise<SayReply> {
  const response = await fetch(url);
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as SayReply;
}

const received = (): number => servers.reduce((n, s) => n + s.received(), 0);

test('HTTP requests to the controller reach both servers through the grpc-tower channel', async () => {
  const url = await startApp();
  const before = received();
  // the second connection may come up a moment after the first: one request
  // at a time until both servers have answered (a bounded number)
  const seen = new Set<string>();
  let sent = 0;
  while (sent < 200 && seen.size < 2) {
    const reply = await get(`${url}/echo/one-${sent}`);
    expect(reply.message).toBe(`one-${sent}`);
    seen.add(reply.server);
    sent++;
  }
  expect([...seen].sort()).toEqual(['a', 'b']);
  const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => get(`${url}/echo/burst-${i}`)));
  expect(replies.map((r) => r.message).sort()).toEqual(
    Array.from({ length: 20 }, (_, i) => `burst-${i}`).sort(),
  );
  console.log('burst replies per server:', {
    a: replies.filter((r) => r.server === 'a').length,
    b: replies.filter((r) => r.server === 'b').length,
  });
  // the servers saw every request once: no call was sent twice
  expect(received() - before).toBe(sent + 20);
});

test('app.close() with calls in flight loses none: each finishes OK', async () => {
  const baseline = activeHandles();
  await startApp();
  const controller = app!.get(EchoController);
  const before = received();
  // calls made by the application itself (a job, a consumer), all in flight
  // at the servers when app.close() starts; Nest then closes ClientsModule's
  // client, which closes its grpc-tower channel
  const calls = Array.from({ length: 10 }, (_, i) => controller.say(`in-flight-${i}`, '500'));
  const settled = Promise.allSettled(calls);
  while (received() - before < calls.length) await new Promise((r) => setTimeout(r, 5));
  const closing = app!.close();
  app = undefined;
  const outcomes = await settled;
  await closing;
  const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []));
  expect(failures).toEqual([]);
  const messages = outcomes.map((o) => (o.status === 'fulfilled' ? o.value.message : ''));
  expect(messages.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `in-flight-${i}`).sort());
  await expectNoLeaks(baseline, { settleMs: 5_000 });
});
