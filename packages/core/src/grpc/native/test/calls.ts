/**
 * What the native endpoint's tests share: endpoints closed after each test,
 * one call straight on an endpoint with its outcome as a value, and the
 * waits and checks around it.
 */
import { insecure } from '@grpc-tower/testing';
import type * as grpc from '@grpc/grpc-js';
import { firstValueFrom, filter } from 'rxjs';
import { afterEach, expect } from 'vitest';
import { newContext } from '../../../context/index.js';
import type { GrpcTowerError } from '../../../errors.js';
import { grpcRequest } from '../../test/request.js';
import { type CallKind, type GrpcResponse, GrpcStatusError } from '../../types.js';
import { type NativeGrpcEndpoint, nativeGrpcEndpoint } from '../endpoint.js';

/** Cleanups run after each test of the file that calls this, last pushed first. */
export function afterEachCleanups(): (() => unknown)[] {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return cleanups;
}

/** A maker of insecure native endpoints that are closed after the test. */
export function endpointsClosedAfter(
  cleanups: (() => unknown)[],
): (address: string, channelOptions?: grpc.ChannelOptions) => NativeGrpcEndpoint {
  return (address, channelOptions = {}) => {
    const ep = nativeGrpcEndpoint(address, { credentials: insecure, channelOptions });
    cleanups.push(() => ep.close({ graceMs: 0 }));
    return ep;
  };
}

/** Resolves once the endpoint is ready. */
export const ready = (ep: NativeGrpcEndpoint): Promise<unknown> =>
  firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'ready')));

/** Options of {@link call}. */
export interface CallOptions {
  readonly metadata?: grpc.Metadata;
  readonly timeoutMs?: number;
  readonly kind?: CallKind;
  readonly messages?: Buffer[];
}

/** One call straight on the endpoint; the response or the error. */
export async function call(
  ep: NativeGrpcEndpoint,
  method: string,
  options: CallOptions = {},
): Promise<GrpcResponse | GrpcTowerError> {
  const scope = newContext(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs });
  try {
    return await ep.call(
      grpcRequest(method, {
        ...options,
        messages: options.messages ?? [Buffer.from('hi')],
      }),
      scope.context,
    );
  } catch (err) {
    return err as GrpcTowerError;
  } finally {
    scope.release();
  }
}

/** Checks that a call failed with a gRPC status, and returns its error. */
export const failure = (r: GrpcResponse | GrpcTowerError): GrpcStatusError => {
  expect(r).toBeInstanceOf(GrpcStatusError);
  return r as GrpcStatusError;
};
