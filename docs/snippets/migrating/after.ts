// the same client class and call sites; only how it is constructed changes
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import { ServiceBuilder, timeout } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { connect, dns } from '@grpc-tower/discover';
import { healthChecked } from '@grpc-tower/health';
import { retry, retryThrottling } from '@grpc-tower/retry';

const health = healthChecked(); // new: grpc-js has no client-side health checks
const endpoints = connect(dns('orders.internal', 50051), (addr) =>
  health(
    grpcEndpoint(addr.address, {
      credentials: grpc.credentials.createSsl(caCertificate), // per connection, as before
      authority: 'orders.internal', // TLS name and :authority, since addr.address is an IP
      channelOptions: { 'grpc.keepalive_time_ms': 30_000 }, // channel options go here now
    }),
  ),
);
const balancer = p2c(endpoints, { target: 'dns:orders.internal:50051' }); // loadBalancingConfig
const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
  .layer(timeout({ ms: 2_000 })) // methodConfig.timeout (a deadline on the call still applies too)
  .layer(
    retry({
      maxAttempts: 3, // retryPolicy, same names, in ms
      initialBackoffMs: 25,
      maxBackoffMs: 250,
      backoffMultiplier: 2,
      retryableStatusCodes: ['UNAVAILABLE'],
      budget: retryThrottling({ maxTokens: 10, tokenRatio: 0.1 }), // retryThrottling
    }),
  )
  .service(balancer);
const channel = createChannel(stack, {
  target: 'dns:orders.internal:50051',
  services: [OrdersService],
});
// the credentials argument is required by the constructor but unused: the endpoints connect
export const client = new OrdersClient('orders.internal:50051', grpc.credentials.createInsecure(), {
  channelOverride: channel,
});
