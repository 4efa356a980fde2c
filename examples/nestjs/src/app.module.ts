// The Nest module: ClientsModule's gRPC client for the Echo service, whose
// calls go through a grpc-tower channel (discovery, balancing, health
// checks, retries) instead of grpc-js's own, and the controller using it.
import { credentials } from '@grpc/grpc-js';
import { type DynamicModule, Module } from '@nestjs/common';
import { ClientsModule, Transport } from '@nestjs/microservices';
import { towerChannel } from 'grpc-tower';
import { ECHO_PACKAGE, ECHO_PROTO } from './echo';
import { ECHO_CLIENT, EchoController } from './echo.controller';

@Module({})
// biome-ignore lint/complexity/noStaticOnlyClass: a Nest dynamic module is a class with a static factory
export class AppModule {
  /**
   * The application calling the Echo servers of `target`, such as
   * `dns:///echo.internal:50051` or `ipv4:10.0.0.1:50051,10.0.0.2:50051`.
   */
  static forTarget(target: string): DynamicModule {
    const echoClient = ClientsModule.register([
      {
        name: ECHO_CLIENT,
        transport: Transport.GRPC,
        options: {
          url: target,
          package: ECHO_PACKAGE,
          protoPath: ECHO_PROTO,
          // the one grpc-tower line: Nest's grpc-js clients use this channel
          channelOptions: { channelOverride: towerChannel(target, credentials.createInsecure()) },
        },
      },
    ]);
    return { module: AppModule, imports: [echoClient], controllers: [EchoController] };
  }
}
