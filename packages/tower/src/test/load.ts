/**
 * Load and pick recording for the rolling-update tests: a client that
 * starts one unary call at a fixed rate, and a layer that records where
 * each attempt went and how many are in flight per address.
 *
 * @module
 */
import * as grpc from '@grpc/grpc-js';
import { EndpointPicked } from '@grpc-tower/balance';
import type { Layer } from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import type { EchoProtoClient } from '@grpc-tower/testing';

/** One call is started every this many ms by each client. */
export const CALL_EVERY_MS = 4;

/** Records each pick of an endpoint (when, where) and the attempts in flight per address, without changing the call. */
export function picks(
  log: { address: string; at: number }[],
  inFlight = new Map<string, number>(),
): Layer<GrpcRequest, GrpcResponse> {
  return (inner) => ({
    call: (req, ctx) => {
      const before = ctx.get(EndpointPicked);
      let picked: string | undefined;
      const settle = () => {
        if (picked !== undefined) inFlight.set(picked, (inFlight.get(picked) ?? 1) - 1);
      };
      const attempt = inner.call(
        req,
        ctx.withValue(EndpointPicked, (address: string) => {
          picked = address;
          inFlight.set(address, (inFlight.get(address) ?? 0) + 1);
          log.push({ address, at: performance.now() });
          before?.(address);
        }),
      );
      attempt.then(settle, settle);
      return attempt;
    },
  });
}

export interface Load {
  readonly failures: string[];
  readonly calls: number;
  stop(): Promise<void>;
}

/** Starts one unary call every `everyMs` ms (5 s deadline) until stopped; records the failures. */
export function load(client: EchoProtoClient, everyMs = CALL_EVERY_MS): Load {
  const failures: string[] = [];
  const inFlight = new Set<Promise<void>>();
  let calls = 0;
  const timer = setInterval(() => {
    calls++;
    const p = new Promise<void>((resolve) => {
      client.Unary({ message: 'x' }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err) => {
        if (err !== null) failures.push(`${grpc.status[err.code]}: ${err.details}`);
        resolve();
      });
    });
    inFlight.add(p);
    void p.then(() => inFlight.delete(p));
  }, everyMs);
  return {
    failures,
    get calls() {
      return calls;
    },
    stop: async () => {
      clearInterval(timer);
      await Promise.all(inFlight);
    },
  };
}

/** The picks of `address` made after `since` (performance.now() time). */
export function picksAfter(
  log: readonly { address: string; at: number }[],
  address: string,
  since: number,
): number {
  return log.filter((p) => p.address === address && p.at > since).length;
}

/**
 * The first pick of `address` at or after `since`, and how many picks (of
 * any address) were placed between `since` and it; undefined when it got none.
 */
export function firstPick(
  log: readonly { address: string; at: number }[],
  address: string,
  since: number,
): { at: number; before: number } | undefined {
  const first = log.find((p) => p.address === address && p.at >= since);
  if (first === undefined) return undefined;
  return { at: first.at, before: log.filter((p) => p.at >= since && p.at < first.at).length };
}
