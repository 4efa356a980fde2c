// An HTTP controller calling the Echo service through ClientsModule's client.
import { Controller, Get, Inject, type OnModuleInit, Param, Query } from '@nestjs/common';
import type { ClientGrpc } from '@nestjs/microservices';
import { lastValueFrom, type Observable } from 'rxjs';
import type { SayReply, SayRequest } from './echo';

/** The injection token of the Echo client. */
export const ECHO_CLIENT = 'ECHO_CLIENT';

/** The Echo service as Nest's gRPC client exposes it. */
interface EchoService {
  say(request: SayRequest): Observable<SayReply>;
}

@Controller('echo')
export class EchoController implements OnModuleInit {
  readonly #client: ClientGrpc;
  #echo: EchoService | undefined;

  // the token is named, so the injection needs no decorator metadata
  constructor(@Inject(ECHO_CLIENT) client: ClientGrpc) {
    this.#client = client;
  }

  onModuleInit(): void {
    this.#echo = this.#client.getService<EchoService>('Echo');
  }

  /** `GET /echo/:message?delayMs=N`: the server's reply. */
  @Get(':message')
  say(@Param('message') message: string, @Query('delayMs') delayMs?: string): Promise<SayReply> {
    if (this.#echo === undefined) throw new Error('EchoController used before the module was initialised');
    return lastValueFrom(this.#echo.say({ message, delayMs: Number(delayMs ?? 0) }));
  }
}
