import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';

const transport = createGrpcTransport({
  baseUrl: 'https://orders.internal:50051',
  nodeOptions: { ca: caCertificate },
});
export const orders = createClient(OrderService, transport);
