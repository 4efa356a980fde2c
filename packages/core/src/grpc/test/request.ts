/** A `GrpcRequest` for tests that call an endpoint straight, with its defaults. */
import * as grpc from '@grpc/grpc-js';
import { RequestMessages } from '../messages.js';
import type { CallKind, GrpcRequest } from '../types.js';

/** A first attempt of `method` sending `messages` (one empty message by default). */
export function grpcRequest(
  method: string,
  options: { kind?: CallKind; metadata?: grpc.Metadata; messages?: Buffer[] } = {},
): GrpcRequest {
  return {
    method,
    kind: options.kind ?? 'unary',
    metadata: options.metadata ?? new grpc.Metadata(),
    messages: RequestMessages.of(...(options.messages ?? [Buffer.alloc(0)])),
    host: undefined,
    credentials: undefined,
    attempt: 0,
  };
}
