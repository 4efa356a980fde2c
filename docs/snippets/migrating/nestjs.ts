// NestJS: the channel goes into the gRPC client's channelOptions
import { credentials } from '@grpc/grpc-js';
import { ClientsModule, Transport } from '@nestjs/microservices';
import { towerChannel } from 'grpc-tower';

const target = 'dns:///orders.internal:50051';

export const ordersClients = ClientsModule.register([
  {
    name: 'ORDERS',
    transport: Transport.GRPC,
    options: {
      url: target, // not used for connecting: Nest's logs and errors name it
      package: 'orders.v1',
      protoPath: 'orders.proto',
      // the one grpc-tower line: Nest's grpc-js clients use this channel
      channelOptions: { channelOverride: towerChannel(target, credentials.createInsecure()) },
    },
  },
]);
