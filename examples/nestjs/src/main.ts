// Starts two Echo servers, a Nest application calling them through a
// grpc-tower channel, makes a few HTTP requests to it, and shuts down as a
// SIGTERM would: app.close() closes the gRPC client and its channel.
// Run: npm start -w @grpc-tower/example-nestjs
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { type RunningServer, startServer } from './server';

async function main(): Promise<void> {
  const servers: RunningServer[] = [await startServer('a', '127.0.0.1'), await startServer('b', '127.0.0.1')];
  const target = `ipv4:${servers.map((s) => s.address).join(',')}`;
  const app = await NestFactory.create(AppModule.forTarget(target), { logger: ['error', 'warn'] });
  // in production: app.enableShutdownHooks(), and SIGTERM runs app.close()
  await app.listen(0, '127.0.0.1');
  const url = await app.getUrl();
  const tally: Record<string, number> = {};
  for (let i = 0; i < 10; i++) {
    const reply = (await (await fetch(`${url}/echo/hello-${i}`)).json()) as { server: string };
    tally[reply.server] = (tally[reply.server] ?? 0) + 1;
  }
  console.log('replies per server:', tally);
  await app.close();
  for (const s of servers) s.stop();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
