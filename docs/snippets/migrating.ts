// Snippets of docs/guides/migrating.md.
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import { ServiceBuilder, timeout } from '@grpc-tower/core';
import {
  ENDPOINT_METADATA_KEY,
  type GrpcRequest,
  type GrpcResponse,
  createChannel,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import { connect, dns } from '@grpc-tower/discover';
import { healthChecked } from '@grpc-tower/health';
import { retry, retryThrottling } from '@grpc-tower/retry';
import { towerClientOptions } from 'grpc-tower';

declare const OrdersClient: grpc.ServiceClientConstructor;
declare const OrdersService: grpc.ServiceDefinition;
declare const caCertificate: Buffer;

export function before(): grpc.Client {
  // #region before
  // a plain grpc-js client: round_robin over DNS, A6 retries and throttling in the service config
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
  const client = new OrdersClient('dns:///orders.internal:50051', grpc.credentials.createSsl(caCertificate), {
    'grpc.service_config': JSON.stringify(serviceConfig),
    'grpc.keepalive_time_ms': 30_000,
  });
  // #endregion before
  return client;
}

export function beforeOneLine(): grpc.Client {
  // #region before-one-line
  const target = 'dns:///orders.internal:50051';
  const credentials = grpc.credentials.createSsl(caCertificate);
  const client = new OrdersClient(target, credentials);
  // #endregion before-one-line
  return client;
}

export function afterOneLine(): grpc.Client {
  // #region after-one-line
  const target = 'dns:///orders.internal:50051';
  const credentials = grpc.credentials.createSsl(caCertificate);
  const client = new OrdersClient(target, credentials, towerClientOptions(target, credentials));
  // #endregion after-one-line
  return client;
}

export function afterWithOptions(): grpc.Client {
  // #region after-options
  // the service config above, as options; everything not named keeps its default
  const target = 'dns:///orders.internal:50051';
  const credentials = grpc.credentials.createSsl(caCertificate); // these connect every endpoint
  const client = new OrdersClient(
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
  // #endregion after-options
  return client;
}

export function after(): grpc.Client {
  // #region after
  // the same client class and call sites; only how it is constructed changes
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
  const client = new OrdersClient('orders.internal:50051', grpc.credentials.createInsecure(), {
    channelOverride: channel,
  });
  // #endregion after
  return client;
}

export function errors(): void {
  // #region errors
  // failures keep their gRPC codes; a trailer names the server that failed
  const onError = (err: grpc.ServiceError): void => {
    const server = err.metadata.get(ENDPOINT_METADATA_KEY)[0]; // 'grpc-tower-endpoint'
    console.warn(`${grpc.status[err.code]} from ${server ?? 'no server'}: ${err.details}`);
  };
  // #endregion errors
  void onError;
}

export function closing(client: grpc.Client): void {
  // #region close
  // client.close() closes the channel it was given: the balancer, its discovery and every connection
  client.close();
  // #endregion close
}
