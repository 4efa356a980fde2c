import { createClient } from '@connectrpc/connect';
import { towerTransport } from 'grpc-tower/connect';

const transport = towerTransport('dns:///orders.internal:50051', {
  tls: { ca: caCertificate },
});
export const orders = createClient(OrderService, transport);
