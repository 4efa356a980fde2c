import * as grpc from '@grpc/grpc-js';

const target = 'dns:///orders.internal:50051';
const credentials = grpc.credentials.createSsl(caCertificate);
export const client = new OrdersClient(target, credentials);
