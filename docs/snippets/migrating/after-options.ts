// the service config above, as options; everything not named keeps its default
import * as grpc from '@grpc/grpc-js';
import { retryThrottling } from '@grpc-tower/retry'; // a dependency of grpc-tower
import { towerClientOptions } from 'grpc-tower';

const target = 'dns:///orders.internal:50051';
const credentials = grpc.credentials.createSsl(caCertificate); // these connect every endpoint
export const client = new OrdersClient(
  target,
  credentials, // grpc-js ignores these once channelOverride is set: pass the same ones below
  towerClientOptions(target, credentials, {
    services: [OrdersService], // which methods stream: unary calls stay retryable until their status
    timeoutMs: 2_000, // methodConfig.timeout, for calls that set no deadline
    retry: {
      maxAttempts: 3, // retryPolicy, same names, in ms
      initialBackoffMs: 25,
      maxBackoffMs: 250,
      backoffMultiplier: 2,
      retryableStatusCodes: ['UNAVAILABLE'],
      budget: retryThrottling({ maxTokens: 10, tokenRatio: 0.1 }), // retryThrottling
    },
    channelOptions: { 'grpc.keepalive_time_ms': 30_000 }, // channel options of every connection
  }),
);
