// a plain grpc-js client: round_robin over DNS, A6 retries and throttling in the service config
import * as grpc from '@grpc/grpc-js';

const serviceConfig = {
  loadBalancingConfig: [{ round_robin: {} }],
  methodConfig: [
    {
      name: [{ service: 'shop.Orders' }],
      timeout: '2s',
      retryPolicy: {
        maxAttempts: 3,
        initialBackoff: '0.025s',
        maxBackoff: '0.25s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    },
  ],
  retryThrottling: { maxTokens: 10, tokenRatio: 0.1 },
};
export const client = new OrdersClient(
  'dns:///orders.internal:50051',
  grpc.credentials.createSsl(caCertificate),
  {
    'grpc.service_config': JSON.stringify(serviceConfig),
    'grpc.keepalive_time_ms': 30_000,
  },
);
