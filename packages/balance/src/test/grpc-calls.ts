// Calls over real gRPC for the balancer's tests: the hooks that close what a
// test opened and check that nothing is left, a client over a balancer, a
// unary echo call, a poll of the balancer's state, and closed loops of
// calls that record which server answered each.
import * as grpc from '@grpc/grpc-js';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import { createChannel } from '@grpc-tower/core/grpc';
import {
  type EchoProtoClient,
  type EchoReply,
  type EchoRequest,
  activeHandles,
  createEchoClient,
  expectNoLeaks,
  loadEchoPackage,
} from '@grpc-tower/testing';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { Balancer } from '../balancer.js';

/**
 * Registers the test file's hooks: the cleanups pushed to the returned list
 * run after each test, the last first; after all of them, every server,
 * client, channel, endpoint and child process must be closed.
 */
export function trackCleanups(): (() => unknown)[] {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  let baseline: ReturnType<typeof activeHandles>;
  beforeAll(() => {
    baseline = activeHandles();
  });
  afterAll(async () => {
    await expectNoLeaks(baseline, { settleMs: 3000 });
  });
  return cleanups;
}

const { EchoService } = loadEchoPackage();

/** A proto-loader echo client over `createChannel(balancer)`, closed with the test's cleanups. */
export function echoClient(
  balancer: Balancer<GrpcRequest, GrpcResponse, string>,
  target: string,
  cleanups: (() => unknown)[],
): EchoProtoClient {
  const channel = createChannel(balancer, { target, services: [EchoService] });
  const c = createEchoClient(target, { channelOverride: channel });
  cleanups.push(async () => {
    c.close();
    await channel.closeAsync();
  });
  return c;
}

/** A call that failed, with the error the client saw. */
export interface Failure {
  readonly err: grpc.ServiceError;
}

/** One unary echo call with a deadline `deadlineMs` from now. */
export function unary(c: EchoProtoClient, req: EchoRequest, deadlineMs = 10_000): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    c.Unary(req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, reply) => {
      if (err) reject(err);
      else resolve(reply as EchoReply);
    });
  });
}

/** Polls `check` every 10 ms until it holds; fails after `ms`, with the balancer's stats. */
export async function until<B extends { stats(): unknown }>(
  balancer: B,
  check: (b: B) => boolean,
  ms = 15_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!check(balancer)) {
    if (Date.now() > end)
      throw new Error(`condition not met within ${ms} ms: ${JSON.stringify(balancer.stats())}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** `workers` closed loops of `perWorker` calls; returns the server name of each reply, and the failures. */
export async function load(
  c: EchoProtoClient,
  workers: number,
  perWorker: number,
  req: EchoRequest = { message: 'x' },
): Promise<{ servers: string[]; failures: Failure[] }> {
  const names: string[] = [];
  const failures: Failure[] = [];
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let i = 0; i < perWorker; i++) {
        try {
          names.push((await unary(c, req)).server);
        } catch (err) {
          failures.push({ err: err as grpc.ServiceError });
        }
      }
    }),
  );
  return { servers: names, failures };
}
