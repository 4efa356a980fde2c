import { createClient } from '@connectrpc/connect';
import { compressionGzip } from '@connectrpc/connect-node';
import { retryBudget } from '@grpc-tower/retry'; // a dependency of grpc-tower
import { towerTransport } from 'grpc-tower/connect';

// gRPC (the default): Connect-ES's options beside towerChannel's
export const grpc = towerTransport('dns:///orders.internal:50051', {
  tls: { ca: caCertificate, servername: 'orders.internal' },
  interceptors: [], // Connect-ES interceptors, run as Connect-ES runs them
  defaultTimeoutMs: 2_000, // for calls that give no timeoutMs
  retry: { maxAttempts: 3, budget: retryBudget({ percent: 0.1 }) }, // gRPC A6
  health: { service: 'shop.Orders' }, // grpc.health.v1, on by default
  dns: { intervalMs: 10_000 },
});

// the Connect protocol, JSON and gzip: the same stack over HTTP/2 endpoints
export const connect = towerTransport('dns:///orders.internal:8080', {
  protocol: 'connect',
  tls: false, // plaintext h2c, chosen explicitly
  useBinaryFormat: false,
  acceptCompression: [compressionGzip],
  sendCompression: compressionGzip,
  health: { path: '/healthz' }, // HTTP checks, off unless given a path
});

export async function call(): Promise<void> {
  const orders = createClient(OrderService, grpc);
  const order = await orders.getOrder({ id: 7 }, { timeoutMs: 500 });
  console.log(order.item);
  await grpc.close(); // graceful: calls in flight finish within closeGraceMs
  await connect.close();
}
