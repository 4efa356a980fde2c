// The example's gRPC service, shared by the server and the Nest client:
// its proto file and the message shapes proto-loader gives (camelCase).
import { join } from 'node:path';

/** The proto file both sides load. */
export const ECHO_PROTO = join(__dirname, 'echo.proto');
/** Its package, as `ClientsModule` wants it. */
export const ECHO_PACKAGE = 'nestjs.echo';

export interface SayRequest {
  readonly message: string;
  /** How long the server waits before it answers. */
  readonly delayMs?: number;
}

export interface SayReply {
  readonly message: string;
  /** The name of the server that answered. */
  readonly server: string;
}
